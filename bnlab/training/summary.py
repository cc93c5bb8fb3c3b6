"""Derived figures from one trial's per-epoch table.

Every function here is pure: it reads a pandas DataFrame with one row per epoch, in order, and
returns plain Python numbers (`int`, `float`, or `None`, never numpy scalars or NaN for "not
reached"). The table's columns are the contract in `EPOCH_COLUMNS` (`bnlab.common.columns`);
when a target is first reached is `bnlab.training.targets`:

- `epoch`: 1-based number of the evaluation: the end of each epoch, or in step mode
  (`training.steps`) every `training.eval_every_steps` optimizer steps.
- `step`: optimizer steps taken when the row was recorded.
- `train_seconds`: wall time of the training since the previous evaluation (in epoch mode,
  of that epoch's training pass alone).
- `val_seconds`: wall time of the validation evaluation of that epoch.
- `train_eval_seconds`: wall time of re-evaluating the training set in inference mode.
- `loss`, `accuracy`: training-mode figures as Keras computes them, averaged over the training
  steps since the previous row (in epoch mode: over the epoch), with the weights still moving.
- `val_loss`, `val_accuracy`: validation figures.
- `train_eval_loss`, `train_eval_accuracy`: the training set re-evaluated in inference mode at
  the end of the epoch: at every evaluation but the trial's last, on `train_eval_examples`
  training images drawn with the trial's seed (`evaluation.train_eval_examples`, 10,000 by
  default: a sampling error of sqrt(p (1 - p) / n), 0.001 at 99% accuracy, which adds to the
  seed-to-seed spread because each seed draws its own images); at the last, on all of them.
- `train_eval_examples`: how many training images that re-evaluation scored (absent from runs
  made before the option existed: all of them every time).

Overfitting gaps use the inference-mode training figures, not `loss`/`accuracy`: in training
mode BN normalizes with batch statistics and the figures are averaged while the weights still
move, so they are not comparable with validation figures computed with the moving statistics
(Ioffe & Szegedy 2015, section 3.1).
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bnlab.common.columns import (
    EPOCH_COLUMNS,
    EVALUATION_MODES,
    epochs_to,
    final_mode_accuracy,
    mode_column,
    seconds_to,
    steps_to,
    to_target,
)
from bnlab.training.targets import check_epochs, check_targets, epochs_to_target, seconds_to_target, steps_to_target

_GAP_COLUMNS = ("epoch", "val_loss", "val_accuracy", "train_eval_loss", "train_eval_accuracy")


def _row_of_epoch(epochs: pd.DataFrame, epoch: int) -> pd.Series:
    """The row whose `epoch` column equals `epoch`."""
    matches = epochs[epochs["epoch"] == epoch]
    if matches.empty:
        raise ValueError(
            f"Epoch {epoch!r} is not in the per-epoch table. Expected an epoch from "
            f"{int(epochs['epoch'].iloc[0])} to {int(epochs['epoch'].iloc[-1])}. "
            f"Received: {epoch!r}"
        )
    return matches.iloc[0]


def first_epoch_seconds(epochs: pd.DataFrame) -> float:
    """Returns the training time of the first epoch, which includes graph tracing and compilation.

    Args:
        epochs: One trial's per-epoch table (see the module docstring).

    Returns:
        `train_seconds` of the first row.

    Raises:
        ValueError: If the table is empty or lacks `epoch` or `train_seconds`.
    """
    check_epochs(epochs, ("epoch", "train_seconds"))
    return float(epochs["train_seconds"].iloc[0])


def steady_epoch_seconds(epochs: pd.DataFrame) -> float | None:
    """Returns the mean training time per epoch once compilation is done.

    Args:
        epochs: One trial's per-epoch table (see the module docstring).

    Returns:
        The mean `train_seconds` over every epoch after the first, or `None` when only one epoch
        was run (the first epoch includes compilation, so it is no steady-state figure).

    Raises:
        ValueError: If the table is empty or lacks `epoch` or `train_seconds`.
    """
    check_epochs(epochs, ("epoch", "train_seconds"))
    if len(epochs) < 2:
        return None
    return float(epochs["train_seconds"].iloc[1:].mean())


def best_epoch(epochs: pd.DataFrame) -> int:
    """Returns the epoch with the highest validation accuracy.

    Args:
        epochs: One trial's per-epoch table (see the module docstring).

    Returns:
        The `epoch` value of the row with the highest `val_accuracy`; the earliest on ties.

    Raises:
        ValueError: If the table is empty, lacks `epoch` or `val_accuracy`, or every
            `val_accuracy` is missing.
    """
    check_epochs(epochs, ("epoch", "val_accuracy"))
    accuracy = epochs["val_accuracy"]
    if accuracy.isna().all():
        raise ValueError(
            "Expected at least one known val_accuracy to pick the best epoch. "
            f"Received: {accuracy.tolist()}"
        )
    # nanargmax returns the first position of the maximum, hence the earliest epoch on ties.
    position = int(np.nanargmax(accuracy.to_numpy(dtype=float, na_value=np.nan)))
    return int(epochs["epoch"].iloc[position])


def overfitting_gap(epochs: pd.DataFrame, epoch: int) -> tuple[float, float]:
    """Returns how far validation figures trail training figures at one epoch.

    Training figures are the inference-mode re-evaluation (`train_eval_*`), so both sides are
    computed the same way (see the module docstring).

    Args:
        epochs: One trial's per-epoch table (see the module docstring).
        epoch: The `epoch` value to read.

    Returns:
        `(accuracy_gap, loss_gap)` where `accuracy_gap = train_eval_accuracy - val_accuracy` and
        `loss_gap = val_loss - train_eval_loss`; positive values mean overfitting.

    Raises:
        ValueError: If the table is empty or lacks a column the gaps need, or `epoch` is not in
            the table (the message gives the available range).
    """
    check_epochs(epochs, _GAP_COLUMNS)
    row = _row_of_epoch(epochs, epoch)
    accuracy_gap = row["train_eval_accuracy"] - row["val_accuracy"]
    loss_gap = row["val_loss"] - row["train_eval_loss"]
    return float(accuracy_gap), float(loss_gap)


def summarize_trial(
    epochs: pd.DataFrame, targets: Sequence[float]
) -> dict[str, float | int | None]:
    """Returns the derived figures of one trial as one flat dict.

    Args:
        epochs: One trial's per-epoch table (see the module docstring).
        targets: Validation accuracies to reach, each in (0, 1]; may be empty.

    Returns:
        A dict with keys `epochs_run`, `steps_run` (None without a `step` column),
        `first_epoch_seconds`, `steady_epoch_seconds`,
        `total_train_seconds`, `final_val_accuracy`, `best_val_accuracy`, `best_epoch`,
        `final_train_eval_accuracy`, `final_train_mode_accuracy` (the last epoch's training-mode
        accuracy, as Keras reports it while training), `final_accuracy_gap`, `final_loss_gap`,
        `best_accuracy_gap`, `best_loss_gap`, then for each target `t` the columns
        `bnlab.common.columns.epochs_to(t)`, `seconds_to(t)` and `steps_to(t)` (`epochs_to_0.98`...).
        Figures that do not exist (a target never reached, the steady time of a one-epoch trial) are `None`.

    Raises:
        ValueError: If the table is empty or lacks a column of `EPOCH_COLUMNS`, a target is not
            in (0, 1], or two targets share a key.

    Example:
        >>> summary = summarize_trial(epochs, targets=(0.97, 0.98))
        >>> summary["epochs_to_0.98"], summary["seconds_to_0.98"]
        (4, 12.5)
    """
    check_epochs(epochs, EPOCH_COLUMNS)
    check_targets(targets)
    final = epochs.iloc[-1]
    best = best_epoch(epochs)
    return {
        "epochs_run": len(epochs),
        "steps_run": int(final["step"]) if "step" in epochs else None,
        "first_epoch_seconds": first_epoch_seconds(epochs),
        "steady_epoch_seconds": steady_epoch_seconds(epochs),
        "total_train_seconds": float(epochs["train_seconds"].sum()),
        "final_val_accuracy": float(final["val_accuracy"]),
        "best_val_accuracy": float(epochs["val_accuracy"].max()),
        "best_epoch": best,
        "final_train_eval_accuracy": float(final["train_eval_accuracy"]),
        "final_train_mode_accuracy": float(final["accuracy"]),
        **_gaps(epochs, {"final": int(final["epoch"]), "best": best}),
        **_times_to_targets(epochs, targets),
        **_final_mode_accuracies(final),
    }


def _final_mode_accuracies(final: pd.Series) -> dict[str, float]:
    """`final_val_accuracy_MODE` for each evaluation mode the table has columns of (none by default)."""
    return {final_mode_accuracy(mode): float(final[mode_column("val_accuracy", mode)])
            for mode in EVALUATION_MODES if mode_column("val_accuracy", mode) in final.index}


def _gaps(epochs: pd.DataFrame, moments: dict[str, int]) -> dict[str, float]:
    """`{moment}_accuracy_gap` and `{moment}_loss_gap` at each moment's epoch, in the order given."""
    gaps = {}
    for moment, epoch in moments.items():
        gaps[f"{moment}_accuracy_gap"], gaps[f"{moment}_loss_gap"] = overfitting_gap(epochs, epoch)
    return gaps


def _times_to_targets(epochs: pd.DataFrame, targets: Sequence[float]) -> dict[str, float | int | None]:
    """Epochs, seconds and steps to each target, under their trials-table column names."""
    times = {}
    for target in targets:
        times[epochs_to(target)] = epochs_to_target(epochs, target)
        times[seconds_to(target)] = seconds_to_target(epochs, target)
        times[steps_to(target)] = steps_to_target(epochs, target)
    return times


def target_table(epochs: pd.DataFrame, targets: Sequence[float]) -> list[dict]:
    """Returns, for each target, whether and when validation accuracy reached it.

    Args:
        epochs: One trial's per-epoch table (see the module docstring).
        targets: Validation accuracies to reach, each in (0, 1].

    Returns:
        One dict per target, in the order given: `{"target": t, "reached": bool,
        "epochs_to_target": int | None, "seconds_to_target": float | None,
        "steps_to_target": int | None}` (steps are None for a table without `step`).

    Raises:
        ValueError: If the table is empty, lacks `epoch`, `train_seconds` or `val_accuracy`, or a
            target is not in (0, 1].
    """
    check_epochs(epochs, ("epoch", "train_seconds", "val_accuracy"))
    return [_target_row(epochs, target) for target in targets]


def _target_row(epochs: pd.DataFrame, target: float) -> dict:
    """One row of `target_table`, its keys in the order of `bnlab.common.columns.TARGET_ROW`."""
    epoch = epochs_to_target(epochs, target)
    return {
        "target": float(target),
        "reached": epoch is not None,
        to_target("epochs"): epoch,
        to_target("seconds"): seconds_to_target(epochs, target),
        to_target("steps"): steps_to_target(epochs, target) if "step" in epochs else None,
    }
