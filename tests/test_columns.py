"""The run tables' column names (bnlab.common.columns): exact names, one place to build them."""

import types

import pytest

from bnlab.common import columns


@pytest.mark.parametrize(
    "target, key",
    [(0.98, "0.98"), (0.975, "0.975"), (0.9, "0.9"), (1, "1"), (1.0, "1"), (0.1 + 0.88, "0.98")],
)
def test_target_key_has_six_significant_digits(target, key):
    assert columns.target_key(target) == key


def test_per_target_names():
    assert columns.epochs_to(0.98) == "epochs_to_0.98"
    assert columns.steps_to(0.98) == "steps_to_0.98"
    assert columns.seconds_to(0.98) == "seconds_to_0.98"
    assert columns.reached(0.97) == "reached_0.97"
    assert columns.tried(0.97) == "tried_0.97"
    assert columns.censored_epochs_to(0.95) == "censored_epochs_to_0.95"


@pytest.mark.parametrize("time", ["epochs", "steps", "seconds"])
def test_time_to_is_the_named_column_of_each_time(time):
    assert columns.time_to(time, 0.9) == f"{time}_to_0.9"
    assert columns.time_unit(columns.time_to(time, 0.9)) == time
    assert columns.to_target(time) == f"{time}_to_target"


def test_time_to_an_unknown_time_lists_the_choices():
    with pytest.raises(ValueError, match=r"Unknown time 'epoch'\. Available: epochs, steps, seconds\."):
        columns.time_to("epoch", 0.9)


@pytest.mark.parametrize("column, expected", [
    ("epochs_to_0.98", True), ("steps_to_1", True), ("seconds_to_0.9", True),
    ("test_accuracy", False), ("steady_epoch_seconds", False), ("epochs_run", False),
])
def test_is_time_to_target(column, expected):
    assert columns.is_time_to_target(column) is expected
    assert (columns.time_unit(column) is not None) is expected


def test_units_run_and_its_choices():
    assert columns.units_run("epochs") == "epochs_run"
    assert columns.units_run("steps") == "steps_run"
    with pytest.raises(ValueError, match=r"Unknown unit 'seconds'\. Available: epochs, steps\."):
        columns.units_run("seconds")


@pytest.mark.parametrize("step_mode, unit", [(True, "steps"), (False, "epochs")])
def test_progress_unit_follows_step_mode(step_mode, unit):
    config = types.SimpleNamespace(training=types.SimpleNamespace(step_mode=step_mode))
    assert columns.progress_unit(config) == unit


def test_target_row_names_the_targets_table():
    assert columns.TARGET_ROW == ("target", "reached", *(columns.to_target(t) for t in ("epochs", "seconds", "steps")))
    assert columns.TRIAL_KEYS == ("variant", "seed")


def test_the_trial_summary_uses_these_names():
    from bnlab.training import summary

    assert summary.EPOCH_COLUMNS is columns.EPOCH_COLUMNS
