"""One trial's learning curves as a figure, for the MLflow run that tracking logs per trial.

The run-level figures (every variant and seed) are `bnlab.analysis.figures`'; this one draws a
single trial's per-epoch table as it is saved, with the object API (no pyplot state).
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from bnlab.common.checks import require_columns

# (column prefix, legend label, line style): training mode as Keras reports it, training
# re-evaluated in inference mode, and validation
_LINES = (("", "training (training mode)", "-"), ("train_eval_", "training (inference mode)", "--"),
          ("val_", "validation", ":"))


def plot_trial_curves(epochs: pd.DataFrame, title: str = "") -> Figure:
    """One trial's learning curves: loss and accuracy per epoch, training and validation.

    Training figures are drawn twice, as Keras reports them (training mode, running average)
    and re-evaluated in inference mode, so BN's train/inference difference shows.

    Args:
        epochs: the per-epoch table of ONE trial (`bnlab.common.columns.EPOCH_COLUMNS`).
        title: the figure's title, e.g. "bn_input seed 0".

    Returns:
        A Figure with a loss panel (log scale) and an accuracy panel.

    Raises:
        TypeError, ValueError: `epochs` is not a DataFrame, lacks a column, or has no rows.

    Example:
        >>> figure = plot_trial_curves(record.epochs, "bn_input seed 0")
        >>> figure.savefig("learning_curves.png")
    """
    require_columns(epochs, "epochs", ["epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                                     "train_eval_loss", "train_eval_accuracy"], non_empty=True)
    figure = Figure(figsize=(10, 4.2), layout="constrained")
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for prefix, label, style in _LINES:
        loss_axes.plot(epochs["epoch"], epochs[f"{prefix}loss"], style, marker="o", markersize=3, label=label)
        accuracy_axes.plot(epochs["epoch"], epochs[f"{prefix}accuracy"], style, marker="o", markersize=3,
                           label=label)
    loss_axes.set_yscale("log")
    loss_axes.set_ylabel("loss (cross-entropy, log scale)")
    accuracy_axes.set_ylabel("accuracy (fraction correct)")
    for axes in (loss_axes, accuracy_axes):
        axes.set_xlabel("epoch")
        axes.xaxis.get_major_locator().set_params(integer=True)
    accuracy_axes.legend(loc="lower right")
    figure.suptitle(title or "Learning curves of one trial")
    return figure
