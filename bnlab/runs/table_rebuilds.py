"""When a session rebuilds the run-level tables from the trial folders.

Every trial's files are written the moment it finishes (`bnlab.runs.folder.save_trial`); the run's
tables (trials.csv, epochs.csv, test_predictions.npz, ...) gather every trial folder, so rebuilding
them costs more with every trial: 1.5 s at lr_sweep's 120 trials on the 2-core machine, and rebuilt
after each trial they took about 90 of its 1,138 s (docs/speed.md). A session rebuilds them after
a trial only when the time since the last rebuild is at least `RATIO` times what that rebuild took, so
they cost at most 1/`RATIO` of the run (small runs still see them after every trial), and always once
more when the session ends, however it ends (completed, stopped, failed). Only a killed process
leaves them behind its trial folders, until the next session (the resume) rebuilds them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from bnlab.runs import folder

RATIO = 20  # the time between rebuilds over the rebuild's own time: at most 5% of a run


class TableRebuilds:
    """A session's rebuilds of `run_dir`'s tables; `order`: every (variant, seed) of the config, in table order."""

    def __init__(self, run_dir: Path, order: list[tuple[str, int]]):
        self.run_dir, self.order = run_dir, order
        self.cost, self.ended = 0.0, -math.inf  # the last rebuild's seconds, and when it ended
        self.stale = True  # a killed earlier session may have left them behind its trial folders

    def after_trial(self) -> None:
        """A trial's folder was written: rebuild now if that keeps the rebuilds within their share."""
        self.stale = True
        if time.perf_counter() - self.ended >= RATIO * self.cost:
            self.now()

    def now(self) -> None:
        """Rebuild the tables from every finished trial folder."""
        started = time.perf_counter()
        folder.rebuild_tables(self.run_dir, self.order)
        self.ended = time.perf_counter()
        self.cost, self.stale = self.ended - started, False

    def finish(self) -> None:
        """At the session's end: rebuild unless the tables already hold every trial folder."""
        if self.stale:
            self.now()
