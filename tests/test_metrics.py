import math
import re

import numpy as np
import pandas as pd
import pytest

from bnlab.training import summary as metrics
from bnlab.training.targets import epochs_to_target, seconds_to_target, steps_to_target


def make_epochs(val_accuracy, **columns):
    """Builds a per-epoch table from lists; columns not given get constant placeholder values."""
    count = len(val_accuracy)
    defaults = {
        "epoch": list(range(1, count + 1)),
        "step": [1000 * e for e in range(1, count + 1)],
        "train_seconds": [1.0] * count,
        "val_seconds": [100.0] * count,
        "train_eval_seconds": [50.0] * count,
        "loss": [0.5] * count,
        "accuracy": [0.5] * count,
        "val_loss": [0.5] * count,
        "val_accuracy": list(val_accuracy),
        "train_eval_loss": [0.25] * count,
        "train_eval_accuracy": [0.75] * count,
    }
    defaults.update(columns)
    return pd.DataFrame(defaults)


def make_trial():
    """Five epochs: 0.97 first reached at epoch 3, 0.98 at epoch 4 (the best), then a dip.

    Validation and re-evaluation take far longer than training, and the training-mode
    `loss`/`accuracy` differ from the inference-mode figures, so a function that reads the wrong
    column gets a visibly wrong answer.
    """
    return make_epochs(
        val_accuracy=[0.9, 0.95, 0.97, 0.98, 0.975],
        train_seconds=[6.0, 2.5, 2.0, 2.0, 2.5],
        loss=[1.0, 0.8, 0.6, 0.4, 0.2],
        accuracy=[0.5, 0.6, 0.7, 0.8, 0.9],
        val_loss=[0.4, 0.2, 0.125, 0.09, 0.1],
        train_eval_loss=[0.375, 0.15, 0.0625, 0.03, 0.01],
        train_eval_accuracy=[0.9, 0.96, 0.99, 0.995, 1.0],
    )


# epochs_to_target


@pytest.mark.parametrize("target", [0.9, 0.95, 0.96, 0.97, 0.98])
def test_a_float32_accuracy_exactly_at_the_target_reaches_it(target):
    # Keras scores in float32: 950 of 1,000 right is 0.949999988 (below the float64 0.95)
    right = round(target * 1000)
    accuracy = float(np.float32(right) / np.float32(1000))
    epochs = make_epochs(val_accuracy=[0.5, accuracy])
    assert epochs_to_target(epochs, target) == 2
    assert metrics.target_table(epochs, [target])[0]["reached"] is True


def test_one_example_short_of_the_target_does_not_reach_it():
    epochs = make_epochs(val_accuracy=[0.5, float(np.float32(949) / np.float32(1000))])
    assert epochs_to_target(epochs, 0.95) is None


@pytest.mark.parametrize(
    "target, expected",
    [(0.9, 1), (0.93, 2), (0.95, 2), (0.97, 3), (0.975, 4), (0.98, 4)],
)
def test_epochs_to_target_returns_first_epoch_reaching_target(target, expected):
    assert epochs_to_target(make_trial(), target) == expected


def test_epochs_to_target_is_none_when_never_reached():
    assert epochs_to_target(make_trial(), 0.99) is None


def test_epochs_to_target_counts_exact_equality_as_reached():
    epochs = make_epochs(val_accuracy=[0.5, 0.98, 0.99])
    assert epochs_to_target(epochs, 0.98) == 2


def test_epochs_to_target_accepts_target_one():
    epochs = make_epochs(val_accuracy=[0.5, 0.99, 1.0])
    assert epochs_to_target(epochs, 1.0) == 3
    assert epochs_to_target(epochs, 1) == 3


def test_epochs_to_target_counts_first_crossing_even_if_accuracy_drops_later():
    epochs = make_epochs(val_accuracy=[0.5, 0.96, 0.8, 0.97, 0.9])
    assert epochs_to_target(epochs, 0.95) == 2


def test_epochs_to_target_returns_epoch_column_value_not_row_position():
    epochs = make_epochs(val_accuracy=[0.5, 0.99], epoch=[3, 4])
    assert epochs_to_target(epochs, 0.9) == 4


def test_epochs_to_target_skips_missing_accuracy():
    epochs = make_epochs(val_accuracy=[math.nan, 0.5, 0.99])
    assert epochs_to_target(epochs, 0.9) == 3


def test_epochs_to_target_returns_plain_int():
    assert type(epochs_to_target(make_trial(), 0.97)) is int


def test_epochs_to_target_needs_only_epoch_and_val_accuracy():
    epochs = pd.DataFrame({"epoch": [1, 2], "val_accuracy": [0.5, 0.99]})
    assert epochs_to_target(epochs, 0.9) == 2


# seconds_to_target


@pytest.mark.parametrize(
    "target, expected",
    [(0.9, 6.0), (0.95, 8.5), (0.97, 10.5), (0.98, 12.5)],
)
def test_seconds_to_target_sums_training_seconds_through_reaching_epoch(target, expected):
    # val_seconds (100 each) and train_eval_seconds (50 each) must not be counted; the first epoch's
    # 6.0 s, its graph compilation included, counts in full (README: "seconds_to_T")
    assert seconds_to_target(make_trial(), target) == expected


def test_seconds_to_target_is_none_when_never_reached():
    assert seconds_to_target(make_trial(), 0.99) is None


def test_seconds_to_target_uses_first_crossing():
    epochs = make_epochs(val_accuracy=[0.5, 0.96, 0.8, 0.97], train_seconds=[3.0, 1.5, 1.0, 1.0])
    assert seconds_to_target(epochs, 0.95) == 4.5


def test_seconds_to_target_returns_plain_float():
    assert type(seconds_to_target(make_trial(), 0.97)) is float


# first_epoch_seconds and steady_epoch_seconds


def test_first_epoch_seconds_is_training_time_of_first_epoch():
    assert metrics.first_epoch_seconds(make_trial()) == 6.0


def test_steady_epoch_seconds_excludes_first_epoch():
    assert metrics.steady_epoch_seconds(make_trial()) == 2.25


def test_steady_epoch_seconds_with_two_epochs_is_the_second():
    epochs = make_epochs(val_accuracy=[0.5, 0.6], train_seconds=[9.0, 1.5])
    assert metrics.steady_epoch_seconds(epochs) == 1.5


def test_steady_epoch_seconds_is_none_for_one_epoch():
    epochs = make_epochs(val_accuracy=[0.5], train_seconds=[9.0])
    assert metrics.steady_epoch_seconds(epochs) is None


# best_epoch


def test_best_epoch_is_epoch_of_highest_val_accuracy():
    assert metrics.best_epoch(make_trial()) == 4


def test_best_epoch_picks_earliest_on_ties():
    epochs = make_epochs(val_accuracy=[0.9, 0.97, 0.95, 0.97])
    assert metrics.best_epoch(epochs) == 2


def test_best_epoch_ignores_missing_accuracy():
    epochs = make_epochs(val_accuracy=[math.nan, 0.9, 0.8])
    assert metrics.best_epoch(epochs) == 2


def test_best_epoch_rejects_all_missing_accuracy():
    epochs = make_epochs(val_accuracy=[math.nan, math.nan])
    with pytest.raises(ValueError, match="at least one known val_accuracy"):
        metrics.best_epoch(epochs)


def test_best_epoch_returns_plain_int():
    assert type(metrics.best_epoch(make_trial())) is int


# overfitting_gap


@pytest.mark.parametrize(
    "epoch, expected",
    [(1, (0.0, 0.025)), (4, (0.015, 0.06)), (5, (0.025, 0.09))],
)
def test_overfitting_gap_uses_inference_mode_training_figures(epoch, expected):
    accuracy_gap, loss_gap = metrics.overfitting_gap(make_trial(), epoch)
    assert (accuracy_gap, loss_gap) == pytest.approx(expected)


def test_overfitting_gap_is_exact_for_representable_values():
    epochs = make_epochs(
        val_accuracy=[0.75],
        val_loss=[0.5],
        train_eval_accuracy=[1.0],
        train_eval_loss=[0.125],
    )
    assert metrics.overfitting_gap(epochs, 1) == (0.25, 0.375)


def test_overfitting_gap_can_be_negative():
    epochs = make_epochs(
        val_accuracy=[0.75], val_loss=[0.25], train_eval_accuracy=[0.5], train_eval_loss=[0.5]
    )
    assert metrics.overfitting_gap(epochs, 1) == (-0.25, -0.25)


@pytest.mark.parametrize("epoch", [0, 6, -1])
def test_overfitting_gap_rejects_unknown_epoch(epoch):
    with pytest.raises(ValueError, match=rf"Epoch {epoch} is not in .* from 1 to 5"):
        metrics.overfitting_gap(make_trial(), epoch)


# summarize_trial


def test_summarize_trial_keys_are_exact():
    summary = metrics.summarize_trial(make_trial(), targets=(0.97, 0.98))
    assert list(summary) == [
        "epochs_run",
        "steps_run",
        "first_epoch_seconds",
        "steady_epoch_seconds",
        "total_train_seconds",
        "final_val_accuracy",
        "best_val_accuracy",
        "best_epoch",
        "final_train_eval_accuracy",
        "final_train_mode_accuracy",
        "final_accuracy_gap",
        "final_loss_gap",
        "best_accuracy_gap",
        "best_loss_gap",
        "epochs_to_0.97",
        "seconds_to_0.97",
        "steps_to_0.97",
        "epochs_to_0.98",
        "seconds_to_0.98",
        "steps_to_0.98",
    ]


def test_summarize_trial_values():
    summary = metrics.summarize_trial(make_trial(), targets=(0.97, 0.98))
    assert summary == pytest.approx(
        {
            "epochs_run": 5,
            "steps_run": 5000,
            "first_epoch_seconds": 6.0,
            "steady_epoch_seconds": 2.25,
            "total_train_seconds": 15.0,
            "final_val_accuracy": 0.975,
            "best_val_accuracy": 0.98,
            "best_epoch": 4,
            "final_train_eval_accuracy": 1.0,
            "final_train_mode_accuracy": 0.9,  # the last epoch's training-mode accuracy, not the re-evaluation
            "final_accuracy_gap": 0.025,
            "final_loss_gap": 0.09,
            "best_accuracy_gap": 0.015,
            "best_loss_gap": 0.06,
            "epochs_to_0.97": 3,
            "seconds_to_0.97": 10.5,
            "steps_to_0.97": 3000,
            "epochs_to_0.98": 4,
            "seconds_to_0.98": 12.5,
            "steps_to_0.98": 4000,
        }
    )


def test_summarize_trial_returns_plain_python_types():
    summary = metrics.summarize_trial(make_trial(), targets=(0.97,))
    types = {key: type(value) for key, value in summary.items()}
    int_keys = {"epochs_run", "steps_run", "best_epoch", "epochs_to_0.97", "steps_to_0.97"}
    assert {key for key, kind in types.items() if kind is int} == int_keys
    assert {key for key, kind in types.items() if kind is float} == set(summary) - int_keys


def test_summarize_trial_unreached_target_is_none():
    summary = metrics.summarize_trial(make_trial(), targets=(0.99,))
    assert summary["epochs_to_0.99"] is None
    assert summary["seconds_to_0.99"] is None


def test_summarize_trial_one_epoch_has_no_steady_time():
    epochs = make_epochs(val_accuracy=[0.9], train_seconds=[7.5])
    summary = metrics.summarize_trial(epochs, targets=())
    assert summary["steady_epoch_seconds"] is None
    assert summary["first_epoch_seconds"] == 7.5
    assert summary["total_train_seconds"] == 7.5
    assert summary["best_epoch"] == 1


@pytest.mark.parametrize(
    "target, key",
    [(0.98, "0.98"), (0.975, "0.975"), (0.9, "0.9"), (1, "1"), (1.0, "1"), (0.995, "0.995")],
)
def test_summarize_trial_formats_target_keys_with_g(target, key):
    summary = metrics.summarize_trial(make_trial(), targets=(target,))
    assert f"epochs_to_{key}" in summary
    assert f"seconds_to_{key}" in summary


def test_summarize_trial_rejects_targets_with_same_key():
    with pytest.raises(ValueError, match=r"Targets must be distinct.*Received: \[0.98, 0.98\]"):
        metrics.summarize_trial(make_trial(), targets=(0.98, 0.98))


def test_summarize_trial_requires_every_contract_column():
    epochs = make_trial().drop(columns=["train_eval_seconds"])
    with pytest.raises(ValueError, match=r"missing required columns: \['train_eval_seconds'\]"):
        metrics.summarize_trial(epochs, targets=(0.98,))


# target_table


def test_target_table_rows():
    assert metrics.target_table(make_trial(), targets=(0.97, 0.99)) == [
        {"target": 0.97, "reached": True, "epochs_to_target": 3, "seconds_to_target": 10.5, "steps_to_target": 3000},
        {"target": 0.99, "reached": False, "epochs_to_target": None, "seconds_to_target": None,
         "steps_to_target": None},
    ]


def test_target_table_of_a_table_without_steps():
    rows = metrics.target_table(make_trial().drop(columns="step"), targets=(0.97,))
    assert rows == [{"target": 0.97, "reached": True, "epochs_to_target": 3, "seconds_to_target": 10.5,
                     "steps_to_target": None}]


def test_target_table_keeps_target_order():
    rows = metrics.target_table(make_trial(), targets=(0.98, 0.9))
    assert [row["target"] for row in rows] == [0.98, 0.9]
    assert [row["epochs_to_target"] for row in rows] == [4, 1]


def test_target_table_with_no_targets_is_empty():
    assert metrics.target_table(make_trial(), targets=()) == []


# Validation at the boundary


ALL_FUNCTIONS = [
    lambda epochs: epochs_to_target(epochs, 0.98),
    lambda epochs: seconds_to_target(epochs, 0.98),
    metrics.first_epoch_seconds,
    metrics.steady_epoch_seconds,
    metrics.best_epoch,
    lambda epochs: metrics.overfitting_gap(epochs, 1),
    lambda epochs: metrics.summarize_trial(epochs, (0.98,)),
    lambda epochs: metrics.target_table(epochs, (0.98,)),
]


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_empty_table_is_rejected(function):
    with pytest.raises(ValueError, match="per-epoch table is empty.*Received 0 rows"):
        function(make_epochs(val_accuracy=[]))


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_missing_columns_are_listed_with_columns_received(function):
    epochs = pd.DataFrame({"val_acc": [0.9], "seconds": [1.0]})
    with pytest.raises(
        ValueError,
        match=r"missing required columns: \['epoch'.*Received columns: \['val_acc', 'seconds'\]",
    ):
        function(epochs)


def test_missing_columns_message_names_only_missing_ones():
    epochs = make_trial().drop(columns=["val_accuracy"])
    with pytest.raises(ValueError, match=r"missing required columns: \['val_accuracy'\]\."):
        epochs_to_target(epochs, 0.98)


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_non_dataframe_is_rejected(function):
    with pytest.raises(TypeError, match="pandas DataFrame. Received: dict"):
        function({"epoch": [1], "val_accuracy": [0.9]})


@pytest.mark.parametrize("epoch", [[2, 1, 3], [1, 1, 2]])
def test_epochs_out_of_order_or_repeated_are_rejected(epoch):
    epochs = make_epochs(val_accuracy=[0.5, 0.6, 0.7], epoch=epoch)
    message = "ascending order. Received epochs: " + re.escape(str(epoch))
    with pytest.raises(ValueError, match=message):
        metrics.best_epoch(epochs)


BAD_TARGETS = [0, 0.0, -0.5, 1.01, 98, math.nan, "0.98", None, True]


@pytest.mark.parametrize("target", BAD_TARGETS)
@pytest.mark.parametrize(
    "function",
    [
        metrics.epochs_to_target,
        metrics.seconds_to_target,
        lambda epochs, target: metrics.summarize_trial(epochs, (0.97, target)),
        lambda epochs, target: metrics.target_table(epochs, (0.97, target)),
    ],
)
def test_target_outside_unit_interval_is_rejected(function, target):
    with pytest.raises(ValueError, match=r"in \(0, 1\].*Received: " + re.escape(repr(target))):
        function(make_trial(), target)


# steps_to_target


@pytest.mark.parametrize(
    "steps, target, expected",
    [
        ([500, 1000, 1500, 2000, 2500], 0.97, 1500),  # the step of the first row reaching it
        ([500, 1000, 1500, 2000, 2500], 0.9, 500),
        ([500, 1000, 1500, 2000, 2500], 0.99, None),  # never reached
        ([64, 128, 200, 256, 320], 0.98, 256),  # steps need not be evenly spaced
    ],
)
def test_steps_to_target(steps, target, expected):
    assert steps_to_target(make_trial().assign(step=steps), target) == expected


def test_steps_to_target_needs_a_step_column():
    with pytest.raises(ValueError, match="step"):
        steps_to_target(make_trial().drop(columns="step"), 0.97)
