"""Ctrl-C and SIGTERM during a trial's save land after it (bnlab.runs.interrupts): a save is never cut in half."""

from __future__ import annotations

import signal

import pytest

from bnlab.cli.run import Terminated, terminate_as_interrupt
from bnlab.runs import experiment
from bnlab.runs.interrupts import deferred_interrupts


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt, as in a terminal (a background shell may have it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_in_the_block_is_raised_when_the_block_ends(ctrl_c_raises):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            signal.raise_signal(signal.SIGINT)
            done.append("the rest of the block")
    assert done == ["the rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back


def test_without_a_signal_the_block_runs_and_nothing_is_raised(ctrl_c_raises):
    with deferred_interrupts():
        value = 1
    assert value == 1 and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_during_a_trials_save_stops_the_run_after_the_save(monkeypatch):
    written = []

    def save_trial(run_dir, record):  # the signal lands halfway through the files
        written.append("trial.json")
        signal.raise_signal(signal.SIGTERM)
        written.append("trial folder")

    class Tables:
        def after_trial(self):
            written.append("tables")

    monkeypatch.setattr(experiment.folder, "save_trial", save_trial)
    with terminate_as_interrupt(), pytest.raises(Terminated):
        experiment._save("run", object(), Tables())
    assert written == ["trial.json", "trial folder", "tables"]
