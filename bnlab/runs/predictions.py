"""Per-example test predictions of a run: one trial's file, the run-level file, and reading them back.

Each finished trial writes `trials/LABEL-seedN/test_predictions.npz` (its predicted class for
every test image, and the true labels); the run folder gathers them into one
`test_predictions.npz` beside the tables, which paired tests over examples (McNemar, the
bootstrap over examples and seeds in `bnlab.analysis.significance`) read through `load_results`.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pandas as pd

from bnlab.training.record import TestPredictions

FILE_NAME = "test_predictions.npz"


@dataclasses.dataclass(frozen=True)
class RunPredictions:
    """Every finished trial's test predictions.

    Attributes:
        labels: the true class of each test image.
        trials: `variant` and `seed` of each row of `predicted`.
        predicted: one row per trial, the predicted class of each test image.
    """

    labels: np.ndarray
    trials: pd.DataFrame
    predicted: np.ndarray

    def correct(self, variant: str) -> dict[int, np.ndarray]:
        """Seed -> whether each test image was classified right, for one variant label."""
        rows = self.trials.index[self.trials["variant"] == variant]
        return {int(self.trials.at[row, "seed"]): self.predicted[row] == self.labels for row in rows}


def to_bytes(**arrays: np.ndarray) -> bytes:
    """A compressed .npz file's bytes (written atomically by the caller)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def trial_file_bytes(predictions: TestPredictions) -> bytes:
    return to_bytes(predicted=predictions.predicted, labels=predictions.labels)


def gather(folders: list[tuple[str, int, Path]]) -> bytes | None:
    """The run-level file from the trial folders that hold one; None when none does."""
    found = [(variant, seed, folder / FILE_NAME) for variant, seed, folder in folders
             if (folder / FILE_NAME).is_file()]
    if not found:
        return None
    loaded = [np.load(path) for _, _, path in found]
    return to_bytes(
        variant=np.array([variant for variant, _, _ in found]),
        seed=np.array([seed for _, seed, _ in found], dtype=np.int64),
        predicted=np.stack([data["predicted"] for data in loaded]),
        labels=loaded[0]["labels"],
    )


def load_run_predictions(run_dir: Path) -> RunPredictions | None:
    """The run-level predictions of a run folder, or None for a run without them (older runs)."""
    path = run_dir / FILE_NAME
    if not path.is_file():
        return None
    with np.load(path) as data:
        trials = pd.DataFrame({"variant": data["variant"].astype(str), "seed": data["seed"]})
        return RunPredictions(data["labels"], trials, data["predicted"])
