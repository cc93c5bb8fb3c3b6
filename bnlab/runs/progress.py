"""Progress display of a run: trials done / total, the current trial's epoch and metrics, ETA."""

from __future__ import annotations

import rich.progress
from rich.console import Console


class NullProgress:
    """Receives `run_experiment`'s progress events and shows nothing (library and test use)."""

    def start(self, total_trials, finished_trials, pending, epochs, steps=None):
        pass

    def epoch(self, row):
        pass

    def trial_done(self, record):
        pass

    def stop(self):
        pass


Progress = NullProgress  # the interface: any object with these four methods


class RichProgress(NullProgress):
    """A rich progress bar over all epochs still to train, with one line per finished trial."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.bar = None

    def start(self, total_trials, finished_trials, pending, epochs, steps=None):
        """`epochs`: evaluations per trial; `steps`: optimizer steps per trial in step mode."""
        self.pending, self.epochs, self.steps = list(pending), epochs, steps
        self.trials_done, self.total_trials = finished_trials, total_trials
        if finished_trials:
            self.console.print(f"Resuming: {finished_trials} of {total_trials} trials already finished.")
        self.bar = rich.progress.Progress(
            rich.progress.TextColumn("{task.description}"),
            rich.progress.BarColumn(),
            rich.progress.MofNCompleteColumn(),
            rich.progress.TextColumn("evaluations" if steps else "epochs"),
            rich.progress.TimeElapsedColumn(),
            rich.progress.TextColumn("ETA"),
            rich.progress.TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.bar.add_task(self._title(), total=len(self.pending) * epochs)
        self.bar.start()

    def _title(self, row=None) -> str:
        done = f"trials {self.trials_done}/{self.total_trials}"
        if row is None:
            return done
        # rows carry their own trial: with parallel trials (Dask) they arrive interleaved
        where = f"step {row['step']}/{self.steps}" if self.steps else f"epoch {row['epoch']}/{self.epochs}"
        return (
            f"{done} | {row['variant']} seed {row['seed']}"
            f" | {where} loss {row['loss']:.4f} val_acc {row['val_accuracy']:.4f}"
        )

    def epoch(self, row):
        self.bar.update(self.task, advance=1, description=self._title(row))

    def trial_done(self, record):
        self.trials_done += 1
        skipped = self.epochs - len(record.epochs)  # a diverged trial stops early
        self.bar.update(self.task, advance=skipped, description=self._title())
        summary = record.summary
        self.bar.console.print(
            f"{record.variant} seed {record.seed}: {summary['status']}, "
            f"best val_acc {summary['best_val_accuracy']:.4f} (epoch {summary['best_epoch']}), "
            f"test_acc {summary['test_accuracy']:.4f}",
            soft_wrap=True,
        )

    def stop(self):
        if self.bar is not None:
            self.bar.stop()
