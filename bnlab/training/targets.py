"""When one trial's validation accuracy first reaches a target: in epochs, optimizer steps and seconds.

Pure functions of one trial's per-epoch table (`bnlab.common.columns.EPOCH_COLUMNS`; what each
column holds: `bnlab.training.summary`). They return plain Python numbers, `None` for "not reached",
never numpy scalars or NaN. `check_epochs` is the table check every per-trial figure starts with.
"""

import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bnlab.common.checks import require_columns
from bnlab.common.columns import target_key


def check_epochs(epochs: pd.DataFrame, required: Sequence[str]) -> None:
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


def check_target(target: float) -> None:
    """Raises unless `target` is a validation accuracy in (0, 1]."""
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not 0 < target <= 1:
        raise ValueError(
            "A target is a validation accuracy in (0, 1], e.g. 0.98. "
            f"Received: {target!r}"
        )


def check_targets(targets: Sequence[float]) -> None:
    """Raises unless every target is valid and no two share a column name (`target_key`)."""
    for target in targets:
        check_target(target)
    keys = [target_key(target) for target in targets]
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


def epochs_to_target(epochs: pd.DataFrame, target: float) -> int | None:
    """Returns the first epoch whose validation accuracy reaches `target`.

    Args:
        epochs: One trial's per-epoch table (see `bnlab.training.summary`).
        target: Validation accuracy to reach, in (0, 1]. Reaching means `val_accuracy >= target`.

    Returns:
        The `epoch` value of the first row that reaches `target`, or `None` if no row does.
        A later drop below `target` does not matter: the first crossing counts.

    Raises:
        ValueError: If the table is empty, lacks `epoch` or `val_accuracy`, or `target` is not in
            (0, 1].
    """
    check_epochs(epochs, ("epoch", "val_accuracy"))
    check_target(target)
    row = _first_reaching_row(epochs, target)
    return None if row is None else int(epochs["epoch"].iloc[row])


def steps_to_target(epochs: pd.DataFrame, target: float) -> int | None:
    """Returns the optimizer steps taken when validation accuracy first reached `target`.

    Args:
        epochs: One trial's per-epoch table (see `bnlab.training.summary`).
        target: Validation accuracy to reach, in (0, 1].

    Returns:
        The `step` value of the first row that reaches `target`, or `None` if no row does.

    Raises:
        ValueError: If the table is empty, lacks `epoch`, `step` or `val_accuracy`, or `target`
            is not in (0, 1].
    """
    check_epochs(epochs, ("epoch", "step", "val_accuracy"))
    check_target(target)
    row = _first_reaching_row(epochs, target)
    return None if row is None else int(epochs["step"].iloc[row])


def seconds_to_target(epochs: pd.DataFrame, target: float) -> float | None:
    """Returns the training time spent until validation accuracy first reaches `target`.

    Only `train_seconds` counts: validation and inference-mode re-evaluation are measurement
    overhead of the experiment, not part of training. The first epoch's `train_seconds` counts
    in full, one-off graph tracing and compilation included (1 to 2.5 s a trial on a 2-core CPU):
    it is time a user waits for, and it is not separable from that epoch's training.

    Args:
        epochs: One trial's per-epoch table (see `bnlab.training.summary`).
        target: Validation accuracy to reach, in (0, 1].

    Returns:
        The sum of `train_seconds` up to and including the first epoch that reaches `target`, or
        `None` if no epoch does.

    Raises:
        ValueError: If the table is empty, lacks `epoch`, `train_seconds` or `val_accuracy`, or
            `target` is not in (0, 1].
    """
    check_epochs(epochs, ("epoch", "train_seconds", "val_accuracy"))
    check_target(target)
    row = _first_reaching_row(epochs, target)
    return None if row is None else float(epochs["train_seconds"].iloc[: row + 1].sum())
