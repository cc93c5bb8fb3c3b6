"""Per-epoch curves of a run (mean over seeds, min-max band) and what every run figure shares.

Every function builds a `matplotlib.figure.Figure` with the object API (no pyplot state, no
show()), so it works on a headless machine and in tests; never imports the runner or Keras. Each
variant keeps one colour in every figure: colours follow the order of `variants`. Pass the run's
trial labels in config order, grid points expanded (`bnlab.analysis.pairing.variant_order`, e.g.
`no_bn-learning_rate0.1`; not `config.variants`, whose labels lack the grid point), so a partially
finished run colours its variants exactly as the finished one will. The figures with one point
per seed (epochs to target, epoch time, overfitting gap) are `bnlab.analysis.seed_figures`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from bnlab.analysis.pairing import table_order
from bnlab.common.checks import require_columns

DPI = 120  # sharp on screen and in a README without multi-megabyte files


def variant_colors(variants: Sequence[str]) -> dict[str, tuple]:
    """Returns one colour per variant label, by position in `variants` (tab10 cycle).

    Args:
        variants: Trial variant labels in config order (`bnlab.analysis.pairing.variant_order`).

    Returns:
        A dict from label to an RGBA tuple.
    """
    palette = colormaps["tab10"].colors
    return {label: palette[index % len(palette)] for index, label in enumerate(variants)}


def plot_validation_accuracy(
    epochs: pd.DataFrame, variants: Sequence[str] | None = None
) -> Figure:
    """Validation accuracy per epoch: mean over seeds as a line, min-max over seeds as a band.

    The y-axis is zoomed to the data (see `_zoomed_limits`), so the differences between
    variants late in training are visible rather than squashed under 1.0.

    Args:
        epochs: The per-epoch table (`load_results(...).epochs`).
        variants: Trial variant labels in config order (fixes order and colours; see the module
            docstring); None takes the table's order.

    Returns:
        The figure, one Line2D labelled with each variant's label.

    Raises:
        ValueError: If the table is empty or lacks a needed column.

    Example:
        >>> labels = variant_order(results.config, results.trials["variant"])
        >>> save_figure(plot_validation_accuracy(results.epochs, labels), "figs/val.png")
    """
    figure, axes = new_axes()
    values = _plot_mean_band(axes, epochs, "val_accuracy", variants)
    axes.set_ylim(*_zoomed_limits(values))
    axes.set_ylabel("validation accuracy (fraction correct)")
    axes.set_title("Validation accuracy per epoch\nline: mean over seeds; band: min to max")
    _legend_outside(axes)
    return figure


def plot_training_loss(
    epochs: pd.DataFrame, variants: Sequence[str] | None = None, log_scale: bool = True
) -> Figure:
    """Training loss per evaluation (training mode, mean of the steps since the previous one), mean and band.

    Args:
        epochs: The per-epoch table (`load_results(...).epochs`).
        variants: Trial variant labels in config order; None takes the table's order.
        log_scale: Whether the y-axis is logarithmic (the loss falls by orders of magnitude).

    Returns:
        The figure, one Line2D labelled with each variant's label.

    Raises:
        ValueError: If the table is empty or lacks a needed column.
    """
    figure, axes = new_axes()
    _plot_mean_band(axes, epochs, "loss", variants)
    if log_scale:
        axes.set_yscale("log")
    axes.set_ylabel("training loss (cross-entropy, nats" + (", log scale)" if log_scale else ")"))
    axes.set_title(
        "Training loss per evaluation (training mode, mean over the steps since the previous one)\n"
        "line: mean over seeds; band: min to max"
    )
    _legend_outside(axes)
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Writes `figure` as a PNG at `DPI` dots per inch, creating the folder.

    Args:
        figure: A figure from this module.
        path: Where to write; must end in ".png".

    Returns:
        The path written, as a Path.

    Raises:
        ValueError: If `path` does not end in ".png".
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_figure writes PNG files; expected a path ending in '.png'. "
                         f"Received: {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, format="png", bbox_inches="tight")  # a title wider than its axes is kept whole
    return path


def _plot_mean_band(axes, epochs, column, variants) -> np.ndarray:
    """Draws mean line and min-max band per variant; returns every finite value plotted."""
    require_columns(epochs, "epochs", ["variant", "seed", "epoch", column], non_empty=True)
    order, colors = order_and_colors(epochs, variants)
    finite = epochs[np.isfinite(epochs[column].astype(float))]
    for variant in order:
        per_epoch = finite[finite["variant"] == variant].groupby("epoch")[column]
        if per_epoch.ngroups == 0:
            continue
        summary = per_epoch.agg(["mean", "min", "max"])
        color = colors[variant]
        axes.fill_between(summary.index, summary["min"], summary["max"], color=color, alpha=0.2,
                          linewidth=0)
        axes.plot(summary.index, summary["mean"], color=color, label=variant, marker="o",
                  markersize=3)
    values = finite.loc[finite["variant"].isin(order), column].to_numpy(dtype=float)
    if values.size == 0:
        raise ValueError(f"Expected finite {column!r} values for the variants {order}. "
                         f"Received none (all NaN or infinite).")
    axes.set_xlabel("epoch")
    axes.xaxis.get_major_locator().set_params(integer=True)
    return values


def _zoomed_limits(values: np.ndarray) -> tuple[float, float]:
    """Y-limits around the values, capped at 1, ignoring far-off low outliers.

    The bottom is the lowest value, unless it lies more than the spread of the bulk (5th to
    95th percentile) below the 5th percentile: a diverged seed or a very slow first epoch
    then leaves the axes instead of flattening every other curve against the top.
    """
    low, high = np.percentile(values, [5, 95])
    bottom = max(float(values.min()), low - (high - low))
    top = float(values.max())
    margin = 0.05 * max(top - bottom, 1e-3)
    return bottom - margin, min(1.0, top + margin)


def _legend_outside(axes) -> None:
    """The variant legend to the right of the axes, where it cannot cover a curve."""
    axes.legend(title="variant", loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)


def order_and_colors(table, variants) -> tuple[list[str], dict]:
    """Variants to draw (in order, present in `table`) and the colours of all of `variants`."""
    labels = table_order(table, variants)
    present = set(table["variant"])
    return [v for v in labels if v in present], variant_colors(labels)


def new_axes(figsize=(9, 5.5)):
    """A constrained-layout figure with one axes."""
    figure = Figure(figsize=figsize, layout="constrained")
    return figure, figure.subplots()
