"""Training one trial in a process that received plain data only: a Dask worker, a backend process.

Such a process gets the config as a plain mapping, a variant label and a seed; it loads MNIST
itself (kept between its trials) and returns the trial's `TrialRecord`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

_SPLITS: dict = {}  # this process's data, kept between its trials: (dataset, source) -> Splits


def train_from_data(config_data: dict, label: str, seed: int, data_source, log_dir: Path | None,
                    on_epoch: Callable[[dict], object]):
    """Train the trial (`label`, `seed`) of the config `config_data` in this process.

    Args:
        config_data: `ExperimentConfig.to_dict()` of the run.
        label: the trial variant's label (grid points included).
        seed: the trial's seed.
        data_source: passed to `load_mnist` (None: bnlab's own copy).
        log_dir: TensorBoard folder of the trial, or None.
        on_epoch: receives each per-epoch row.

    Returns:
        The trial's `TrialRecord`.
    """
    from bnlab.config import load_config
    from bnlab.training import trial

    config = load_config(config_data)
    variant = next(v for v in config.trial_variants if v.label == label)
    trial.set_determinism(config.training.deterministic)
    key = (config.dataset, data_source)
    if key not in _SPLITS:
        _SPLITS.clear()
        _SPLITS[key] = trial.load_splits(config, data_source)
    return trial.train_trial(config, variant, seed, _SPLITS[key], on_epoch, log_dir=log_dir)


def plain_row(row: dict) -> dict:
    """A per-epoch row as plain Python numbers, to send between processes (msgpack, pickle)."""
    return {key: int(value) if key in ("epoch", "step") else float(value) for key, value in row.items()}
