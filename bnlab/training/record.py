"""What one finished trial hands back: its tables, summary and test predictions (`TrialRecord`).

Training builds it; the run folder (`bnlab.runs`) writes it. Plain data only, so it travels
between processes (from a Dask worker or a backend process) by pickling.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
import pandas as pd


@dataclasses.dataclass(frozen=True)
class TestPredictions:
    """One trial's predicted class for every test image, beside the true labels."""

    predicted: np.ndarray  # uint8, one per test image, in MNIST's order
    labels: np.ndarray  # uint8, the true classes in the same order

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """Everything one finished trial adds to a run folder."""

    variant: str
    seed: int
    epochs: pd.DataFrame  # the per-epoch table (bnlab.common.columns.EPOCH_COLUMNS)
    summary: dict[str, Any]  # one row of trials.csv, without variant and seed
    targets: list[dict[str, Any]]  # rows of targets.csv, without variant and seed
    # with an activation probe: step, unit and one column per percentile (ActivationPercentiles)
    activations: pd.DataFrame | None = None
    test_predictions: TestPredictions | None = None  # the predicted class of every test image
    # with BN layers: the moving statistics against the population's, per layer (bnlab.models.population)
    discrepancy: pd.DataFrame | None = None
    model_file: bytes | None = None  # with training.save_model: the trained model as a .keras file
    # with a config's probes: probe name -> its table (bnlab.config.probes, bnlab.training.mechanisms)
    probe_tables: Mapping[str, pd.DataFrame] = dataclasses.field(default_factory=dict)

    @property
    def folder_name(self) -> str:
        return trial_folder_name(self.variant, self.seed)


def trial_folder_name(variant: str, seed: int) -> str:
    return f"{variant}-seed{seed}"
