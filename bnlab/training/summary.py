"""Derived figures from one trial's per-epoch table.

Every function here is pure: it reads a pandas DataFrame with one row per epoch, in order, and
returns plain Python numbers (`int`, `float`, or `None`, never numpy scalars or NaN for "not
reached"). The table's columns are the contract in `EPOCH_COLUMNS`:

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
  the end of the epoch.

Overfitting gaps use the inference-mode training figures, not `loss`/`accuracy`: in training
mode BN normalizes with batch statistics and the figures are averaged while the weights still
move, so they are not comparable with validation figures computed with the moving statistics
(Ioffe & Szegedy 2015, section 3.1).
"""

import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bnlab.common.checks import require_columns

EPOCH_COLUMNS = (
    "epoch",
    "step",
    "train_seconds",
    "val_seconds",
    "train_eval_seconds",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "train_eval_loss",
    "train_eval_accuracy",
)

_GAP_COLUMNS = ("epoch", "val_loss", "val_accuracy", "train_eval_loss", "train_eval_accuracy")


def _check_epochs(epochs: pd.DataFrame, required: Sequence[str]) -> None:
    """Raises unless `epochs` is a non-empty DataFrame with `required` columns, epochs ascending."""
    require_columns(epochs, "per-epoch", required)
    if epochs.empty:
        raise ValueError(
            "The per-epoch table is empty; expected one row per epoch run. "
            f"Received 0 rows with columns: {list(epochs.columns)}"
        )
    if not epochs["epoch"].is_monotonic_increasing or not epochs["epoch"].is_unique:
        raise ValueError(
            "The per-epoch table must have one row per epoch in ascending order. "
            f"Received epochs: {epochs['epoch'].tolist()}"
        )


def _check_target(target: float) -> None:
    """Raises unless `target` is a validation accuracy in (0, 1]."""
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not 0 < target <= 1:
        raise ValueError(
            "A target is a validation accuracy in (0, 1], e.g. 0.98. "
            f"Received: {target!r}"
        )


def _target_key(target: float) -> str:
    """The text of `target` in summary keys: 0.98 -> '0.98'."""
    return f"{target:g}"


def _check_targets(targets: Sequence[float]) -> None:
    """Raises unless every target is valid and no two share a summary key."""
    for target in targets:
        _check_target(target)
    keys = [_target_key(target) for target in targets]
    if len(set(keys)) != len(keys):
        raise ValueError(
            "Targets must be distinct when written with 6 significant digits (f'{t:g}'). "
            f"Received: {list(targets)}"
        )


def _first_reaching_row(epochs: pd.DataFrame, target: float) -> int | None:
    """Position of the first row whose val_accuracy >= target, or None.

    Compared at float32 precision: Keras computes accuracy in float32, where 950 of 1,000
    right is 0.949999988, below the float64 0.95 but equal to float32(0.95).
    """
    accuracy = epochs["val_accuracy"].to_numpy(dtype=float, na_value=np.nan).astype(np.float32)
    with np.errstate(invalid="ignore"):
        reached = accuracy >= np.float32(target)
    return int(reached.argmax()) if reached.any() else None


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


def epochs_to_target(epochs: pd.DataFrame, target: float) -> int | None:
    """Returns the first epoch whose validation accuracy reaches `target`.

    Args:
        epochs: One trial's per-epoch table (see the module docstring).
        target: Validation accuracy to reach, in (0, 1]. Reaching means `val_accuracy >= target`.

    Returns:
        The `epoch` value of the first row that reaches `target`, or `None` if no row does.
        A later drop below `target` does not matter: the first crossing counts.

    Raises:
        ValueError: If the table is empty, lacks `epoch` or `val_accuracy`, or `target` is not in
            (0, 1].
    """
    _check_epochs(epochs, ("epoch", "val_accuracy"))
    _check_target(target)
    row = _first_reaching_row(epochs, target)
    return None if row is None else int(epochs["epoch"].iloc[row])


def steps_to_target(epochs: pd.DataFrame, target: float) -> int | None:
    """Returns the optimizer steps taken when validation accuracy first reached `target`.

    Args:
        epochs: One trial's per-epoch table (see the module docstring).
        target: Validation accuracy to reach, in (0, 1].

    Returns:
        The `step` value of the first row that reaches `target`, or `None` if no row does.

    Raises:
        ValueError: If the table is empty, lacks `epoch`, `step` or `val_accuracy`, or `target`
            is not in (0, 1].
    """
    _check_epochs(epochs, ("epoch", "step", "val_accuracy"))
    _check_target(target)
    row = _first_reaching_row(epochs, target)
    return None if row is None else int(epochs["step"].iloc[row])


def seconds_to_target(epochs: pd.DataFrame, target: float) -> float | None:
    """Returns the training time spent until validation accuracy first reaches `target`.

    Only `train_seconds` counts: validation and inference-mode re-evaluation are measurement
    overhead of the experiment, not part of training. The first epoch's `train_seconds` counts
    in full, one-off graph tracing and compilation included (1 to 2.5 s a trial on a 2-core CPU):
    it is time a user waits for, and it is not separable from that epoch's training.

    Args:
        epochs: One trial's per-epoch table (see the module docstring).
        target: Validation accuracy to reach, in (0, 1].

    Returns:
        The sum of `train_seconds` up to and including the first epoch that reaches `target`, or
        `None` if no epoch does.

    Raises:
        ValueError: If the table is empty, lacks `epoch`, `train_seconds` or `val_accuracy`, or
            `target` is not in (0, 1].
    """
    _check_epochs(epochs, ("epoch", "train_seconds", "val_accuracy"))
    _check_target(target)
    row = _first_reaching_row(epochs, target)
    return None if row is None else float(epochs["train_seconds"].iloc[: row + 1].sum())


def first_epoch_seconds(epochs: pd.DataFrame) -> float:
    """Returns the training time of the first epoch, which includes graph tracing and compilation.

    Args:
        epochs: One trial's per-epoch table (see the module docstring).

    Returns:
        `train_seconds` of the first row.

    Raises:
        ValueError: If the table is empty or lacks `epoch` or `train_seconds`.
    """
    _check_epochs(epochs, ("epoch", "train_seconds"))
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
    _check_epochs(epochs, ("epoch", "train_seconds"))
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
    _check_epochs(epochs, ("epoch", "val_accuracy"))
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
    _check_epochs(epochs, _GAP_COLUMNS)
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
        `final_train_eval_accuracy`, `final_accuracy_gap`, `final_loss_gap`,
        `best_accuracy_gap`, `best_loss_gap`, then for each target `t`, `f"epochs_to_{t:g}"`,
        `f"seconds_to_{t:g}"` and `f"steps_to_{t:g}"`. Figures that do not exist (a target never reached, the steady
        time of a one-epoch trial) are `None`.

    Raises:
        ValueError: If the table is empty or lacks a column of `EPOCH_COLUMNS`, a target is not
            in (0, 1], or two targets share a key.

    Example:
        >>> summary = summarize_trial(epochs, targets=(0.97, 0.98))
        >>> summary["epochs_to_0.98"], summary["seconds_to_0.98"]
        (4, 12.5)
    """
    _check_epochs(epochs, EPOCH_COLUMNS)
    _check_targets(targets)
    final = epochs.iloc[-1]
    best = best_epoch(epochs)
    final_accuracy_gap, final_loss_gap = overfitting_gap(epochs, int(final["epoch"]))
    best_accuracy_gap, best_loss_gap = overfitting_gap(epochs, best)
    summary = {
        "epochs_run": len(epochs),
        "steps_run": int(final["step"]) if "step" in epochs else None,
        "first_epoch_seconds": first_epoch_seconds(epochs),
        "steady_epoch_seconds": steady_epoch_seconds(epochs),
        "total_train_seconds": float(epochs["train_seconds"].sum()),
        "final_val_accuracy": float(final["val_accuracy"]),
        "best_val_accuracy": float(epochs["val_accuracy"].max()),
        "best_epoch": best,
        "final_train_eval_accuracy": float(final["train_eval_accuracy"]),
        "final_accuracy_gap": final_accuracy_gap,
        "final_loss_gap": final_loss_gap,
        "best_accuracy_gap": best_accuracy_gap,
        "best_loss_gap": best_loss_gap,
    }
    for target in targets:
        key = _target_key(target)
        summary[f"epochs_to_{key}"] = epochs_to_target(epochs, target)
        summary[f"seconds_to_{key}"] = seconds_to_target(epochs, target)
        summary[f"steps_to_{key}"] = steps_to_target(epochs, target)
    return summary


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
    _check_epochs(epochs, ("epoch", "train_seconds", "val_accuracy"))
    return [_target_row(epochs, target) for target in targets]


def _target_row(epochs: pd.DataFrame, target: float) -> dict:
    """One row of `target_table`."""
    epoch = epochs_to_target(epochs, target)
    return {
        "target": float(target),
        "reached": epoch is not None,
        "epochs_to_target": epoch,
        "seconds_to_target": seconds_to_target(epochs, target),
        "steps_to_target": steps_to_target(epochs, target) if "step" in epochs else None,
    }
