"""What every executor shares: the `Executor` interface, a trial's outcome, and the errors of a run.

An executor receives the pending (variant, seed) trials of a config and yields each trial's
outcome as it completes: the trial's `TrialRecord`, or a `TrialFailure` when its task raised or
its Dask workers kept dying. Only the caller (`bnlab.runs.experiment`) writes outcomes into the
run folder, so a trial is recorded once whichever executor ran it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from bnlab.config import ExperimentConfig, VariantConfig
from bnlab.training.record import TrialRecord, trial_folder_name

Trial = tuple[VariantConfig, int]
EpochCallback = Callable[[dict], Any]


@dataclasses.dataclass(frozen=True)
class TrialFailure:
    """A trial that ended without a result (its task raised, or its Dask workers kept dying).

    Nothing is written to its trial folder, so the next run of the same command trains it again.
    """

    variant: str  # the variant's label
    seed: int
    error: str  # the exception's type and first line


class ExecutorError(RuntimeError):
    """The executor cannot run trials (e.g. its Dask scheduler cannot be reached)."""


class TrialsFailedError(ExecutorError):
    """Some trials of a run failed on the executor; the others are saved."""

    def __init__(self, failures: list[TrialFailure]):
        names = ", ".join(f"{f.variant} seed {f.seed} ({f.error})" for f in failures)
        super().__init__(
            f"{len(failures)} trial(s) failed on the executor's Dask workers: {names}. The other "
            "trials are saved and metadata.json lists the failures; run the same command "
            "again to train the failed trials."
        )
        self.failures = list(failures)


class Executor(Protocol):
    """Runs trials and hands back each outcome as it completes."""

    def map_trials(
        self, config: ExperimentConfig, trials: list[Trial], on_epoch: EpochCallback
    ) -> Iterator[TrialRecord | TrialFailure]:
        """Train every trial; yield each one's outcome exactly once, in completion order.

        `on_epoch` receives each per-epoch row with `variant` (label) and `seed` added, possibly
        from another thread. The caller closes the iterator (`close()`) when it stops early,
        which must stop or abandon the trials still running.
        """
        ...


def tagged(on_epoch: EpochCallback, variant: str, seed: int) -> EpochCallback:
    """`on_epoch` receiving each row with the trial's `variant` label and `seed` added."""
    return lambda row: on_epoch({"variant": variant, "seed": seed, **row})


def trial_log_dir(tensorboard_dir: Path | None, variant: str, seed: int) -> Path | None:
    """The trial's TensorBoard folder under `tensorboard_dir`; None without TensorBoard."""
    return tensorboard_dir / trial_folder_name(variant, seed) if tensorboard_dir else None


def first_line(error: BaseException) -> str:
    """The error's type and the first line of its message, for a one-line report."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
