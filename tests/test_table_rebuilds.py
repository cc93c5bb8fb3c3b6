"""When a session rebuilds the run-level tables (bnlab.runs.table_rebuilds): within their share of the
run's time, and always at the session's end."""

from __future__ import annotations

import pytest

from bnlab.runs import table_rebuilds
from bnlab.runs.table_rebuilds import RATIO, TableRebuilds


@pytest.fixture
def clock(monkeypatch):
    """A settable clock for the schedule, and a rebuild that takes `cost` seconds of it; rebuilds are counted."""
    state = {"now": 0.0, "cost": 1.0, "rebuilds": 0}

    def rebuild(run_dir, order):
        state["now"] += state["cost"]
        state["rebuilds"] += 1

    monkeypatch.setattr(table_rebuilds.time, "perf_counter", lambda: state["now"])
    monkeypatch.setattr(table_rebuilds.folder, "rebuild_tables", rebuild)
    return state


def test_trials_that_come_faster_than_rebuilds_allow_wait_for_the_next_one(clock):
    tables = TableRebuilds("run", [])
    tables.after_trial()  # the first trial: rebuilt
    assert clock["rebuilds"] == 1
    for _ in range(RATIO - 1):  # a trial every second after a rebuild of 1 s: within 20 s, none
        clock["now"] += 1
        tables.after_trial()
    assert clock["rebuilds"] == 1 and tables.stale
    clock["now"] += 1
    tables.after_trial()  # 20 s after it: the share allows one
    assert clock["rebuilds"] == 2 and not tables.stale


def test_the_end_of_a_session_rebuilds_what_is_stale_and_only_that(clock):
    tables = TableRebuilds("run", [])
    tables.finish()  # nothing trained, yet a killed session may have left the tables behind: rebuilt
    assert clock["rebuilds"] == 1
    tables.finish()
    assert clock["rebuilds"] == 1
    clock["now"] += 1
    tables.after_trial()  # skipped: 1 s after a rebuild of 1 s
    tables.finish()
    assert clock["rebuilds"] == 2


def test_cheap_rebuilds_follow_every_trial(clock):
    clock["cost"] = 0.01
    tables = TableRebuilds("run", [])
    for _ in range(5):
        clock["now"] += 1  # trials of 1 s
        tables.after_trial()
    assert clock["rebuilds"] == 5
