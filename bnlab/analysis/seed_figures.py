"""Per-variant figures of per-trial figures, one point per seed: epochs to target, epoch time, overfitting gap.

Matplotlib figures with the object API (no pyplot state, no show()), from a run's DataFrames; never
imports the runner or Keras. Colours follow the order of `variants` as in `bnlab.analysis.figures`:
pass the run's trial labels in config order (`bnlab.analysis.pairing.variant_order`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bnlab.analysis.figures import new_axes, order_and_colors
from bnlab.common.checks import require_columns
from bnlab.common.columns import TRIAL_KEYS, to_target

_JITTER = 0.12  # horizontal spread of seed points, in units of the distance between variants
_SEED_POINT = {"color": "black", "s": 14, "zorder": 3, "alpha": 0.7}
# The two measures of training accuracy in the overfitting figure: column, legend text, hatch.
_MODES = (
    ("accuracy", "training mode (Keras accuracy)", "//"),
    ("train_eval_accuracy", "inference mode (training set re-evaluated)", ""),
)


def plot_epochs_to_target(
    targets: pd.DataFrame, trials: pd.DataFrame, variants: Sequence[str] | None = None,
    every_steps: int | None = None, measured_on: str = "validation",
) -> Figure:
    """Epochs (in step mode: steps) each seed needed to reach each target, one panel per target.

    Seeds that never reached a target are drawn as hollow markers on a row labelled
    "not reached" above the last epoch run, so they are seen rather than dropped. Seeds with
    the same epoch are set side by side.

    Args:
        targets: The targets table (`load_results(...).targets`).
        trials: The trials table, for the number of epochs run.
        variants: Trial variant labels in config order; None takes the targets table's order.
        every_steps: in step mode, the steps between two evaluations: the axis then counts
            optimizer steps (a row's `epoch` is its evaluation number); None: epochs.
        measured_on: the set the accuracy is measured on, for the titles ("validation", "test").

    Returns:
        The figure; unreached seeds are a PathCollection labelled "not reached".

    Raises:
        ValueError: If a table is empty or lacks a needed column.
    """
    require_columns(targets, "targets", ["variant", "seed", "target", "reached", to_target("epochs")], non_empty=True)
    require_columns(trials, "trials", ["epochs_run"], non_empty=True)
    order, colors = order_and_colors(targets, variants)
    last_epoch = int(trials["epochs_run"].max())
    target_values = list(dict.fromkeys(targets["target"]))
    figure = Figure(figsize=(1.5 + 4.5 * len(target_values), 5.5), layout="constrained")
    panels = np.atleast_1d(figure.subplots(1, len(target_values), sharey=True))
    for axes, target in zip(panels, target_values):
        rows = targets[targets["target"] == target]
        _plot_target_panel(axes, rows, order, colors, last_epoch, every_steps or 1)
        axes.set_title(f"{measured_on} accuracy \u2265 {target:g}")
    unit = "steps" if every_steps else "epochs"
    panels[0].set_ylabel(f"{unit} to target ({'evaluation' if every_steps else 'epoch'} of first crossing)")
    figure.legend(handles=_reach_handles(), loc="outside lower center", ncols=2)
    figure.suptitle(f"{unit.capitalize()} to reach a {measured_on} accuracy target (one point per seed)")
    return figure


def plot_epoch_time(
    trials: pd.DataFrame, baseline: str = "no_bn", variants: Sequence[str] | None = None
) -> Figure:
    """Steady-state training seconds per epoch per variant: mean bars, seed points, ratios.

    Each bar is annotated with its mean over the baseline's mean (e.g. "1.08x"); without the
    baseline in the table, no ratios are drawn.

    Args:
        trials: The trials table (`steady_epoch_seconds`: mean training time of epochs 2..n).
        baseline: The variant label the ratios are relative to.
        variants: Trial variant labels in config order; None takes the table's order.

    Returns:
        The figure, one BarContainer per variant.

    Raises:
        ValueError: If the table is empty or lacks a needed column.
    """
    require_columns(trials, "trials", ["variant", "seed", "steady_epoch_seconds"], non_empty=True)
    order, colors = order_and_colors(trials, variants)
    seconds = {v: _finite(trials.loc[trials["variant"] == v, "steady_epoch_seconds"])
               for v in order}
    means = {v: float(values.mean()) for v, values in seconds.items() if len(values)}
    figure, axes = new_axes(figsize=(8, 5))
    for position, variant in enumerate(order):
        if variant not in means:
            continue
        axes.bar(position, means[variant], color=colors[variant], label=variant, width=0.6)
        _scatter_seeds(axes, position, seconds[variant])
        if baseline in means:
            # Above the highest seed, so the dots never cover the text.
            axes.annotate(f"{means[variant] / means[baseline]:.2f}x",
                          (position, seconds[variant].max()), xytext=(0, 6),
                          textcoords="offset points", ha="center", va="bottom")
    _label_variants(axes, order)
    axes.set_ylabel("training time per epoch (seconds, epochs 2..n)")
    axes.margins(y=0.12)
    ratio_note = f"label: mean relative to {baseline}" if baseline in means else "no baseline"
    axes.set_title(f"Steady-state epoch time\nbar: mean over seeds; dots: seeds; {ratio_note}")
    return figure


def plot_overfitting_gap(
    epochs: pd.DataFrame, trials: pd.DataFrame, variants: Sequence[str] | None = None
) -> Figure:
    """Training minus validation accuracy at the final and at the best epoch, per variant.

    Two bars per variant: with the training accuracy Keras reports during training (training
    mode: batch statistics, running average over the epoch) and with the training set
    re-evaluated in inference mode. Only the second is comparable with validation accuracy
    (Ioffe & Szegedy 2015, section 3.1); the first is shown to make the difference visible.
    Only complete trials count.

    Args:
        epochs: The per-epoch table.
        trials: The trials table, for `status` and `best_epoch`.
        variants: Trial variant labels in config order; None takes the trials table's order.

    Returns:
        The figure, two panels (final, best epoch) with one BarContainer per mode each.

    Raises:
        ValueError: If a table is empty or lacks a needed column.
    """
    require_columns(epochs, "epochs", ["variant", "seed", "epoch", "accuracy", "val_accuracy",
                                    "train_eval_accuracy"], non_empty=True)
    require_columns(trials, "trials", ["variant", "seed", "status", "best_epoch"], non_empty=True)
    order, colors = order_and_colors(trials, variants)
    gaps = _accuracy_gaps(epochs, trials)
    figure = Figure(figsize=(12, 5), layout="constrained")
    panels = figure.subplots(1, 2, sharey=True)
    titles = {"final": "at the final epoch", "best": "at the epoch of best validation accuracy"}
    for axes, (moment, title) in zip(panels, titles.items()):
        _plot_gap_panel(axes, gaps[gaps["moment"] == moment], order, colors)
        axes.set_title(title)
    panels[0].set_ylabel("training minus validation accuracy (percentage points)")
    figure.legend(handles=_mode_handles(), loc="outside lower center", ncols=2)
    figure.suptitle("Overfitting gap: mean over complete seeds (bars) and each seed (dots)")
    return figure


def _plot_target_panel(axes, rows, order, colors, last_epoch, every_steps) -> None:
    """One panel of `plot_epochs_to_target`: reached seeds filled, unreached hollow on top."""
    not_reached_row = last_epoch + 1.5
    for position, variant in enumerate(order):
        own = rows[rows["variant"] == variant]
        reached = own["reached"].astype(bool).to_numpy()
        y = np.where(reached, own[to_target("epochs")].to_numpy(dtype=float), not_reached_row)
        x = position + _spread(y)
        axes.scatter(x[reached], y[reached], color=colors[variant], s=36, zorder=3,
                     label=f"{variant} reached")
        if not reached.all():
            axes.scatter(x[~reached], y[~reached], facecolors="none", edgecolors=colors[variant],
                         s=48, linewidths=1.5, zorder=3, label="not reached")
    axes.axhline(last_epoch + 0.75, color="grey", linestyle=":", linewidth=1)
    ticks = list(range(1, last_epoch + 1, max(1, (last_epoch + 7) // 8)))
    axes.set_yticks(ticks + [not_reached_row], [f"{t * every_steps:,}" for t in ticks] + ["not reached"])
    axes.set_ylim(0.4, not_reached_row + 0.6)
    reached = [rows.loc[rows["variant"] == v, "reached"].astype(bool) for v in order]
    _label_variants(axes, order, [f"{r.sum()}/{len(r)} reached" for r in reached])


def _spread(values: np.ndarray, step: float = 0.07, widest: float = 0.35) -> np.ndarray:
    """Horizontal offsets that set points with equal values side by side, centred."""
    offsets = np.zeros(len(values))
    for value in np.unique(values):
        same = np.flatnonzero(values == value)
        gap = min(step, widest / max(len(same) - 1, 1))
        offsets[same] = (np.arange(len(same)) - (len(same) - 1) / 2) * gap
    return offsets


def _accuracy_gaps(epochs, trials) -> pd.DataFrame:
    """Per complete trial and moment (final, best epoch): the gap in both modes, in points."""
    complete = trials.loc[trials["status"] == "complete", ["variant", "seed", "best_epoch"]]
    rows = epochs.merge(complete, on=list(TRIAL_KEYS))
    final = rows[rows["epoch"] == rows.groupby(list(TRIAL_KEYS))["epoch"].transform("max")]
    best = rows[rows["epoch"] == rows["best_epoch"]]
    frames = []
    for moment, table in (("final", final), ("best", best)):
        gap = table[list(TRIAL_KEYS)].assign(moment=moment)
        for column, _, _ in _MODES:
            gap[column] = 100 * (table[column] - table["val_accuracy"])
        frames.append(gap)
    return pd.concat(frames, ignore_index=True)


def _plot_gap_panel(axes, gaps, order, colors) -> None:
    """Grouped bars: per variant, training-mode then inference-mode gap, with seed points."""
    width = 0.38
    for index, (column, label, hatch) in enumerate(_MODES):
        offset = (index - 0.5) * width
        means = [gaps.loc[gaps["variant"] == v, column].mean() for v in order]
        positions = np.arange(len(order)) + offset
        axes.bar(positions, means, width=width * 0.95, color=[colors[v] for v in order],
                 alpha=0.55 if hatch else 0.95, hatch=hatch, edgecolor="black", linewidth=0.6,
                 label=label)
        for position, variant in zip(positions, order):
            values = gaps.loc[gaps["variant"] == variant, column].to_numpy(dtype=float)
            _scatter_seeds(axes, position, values, spread=_JITTER * width)
    axes.axhline(0, color="black", linewidth=0.8)
    _label_variants(axes, order)


def _scatter_seeds(axes, position, values, spread=_JITTER) -> None:
    """One black dot per seed around `position`, with a fixed jitter."""
    x = position + np.random.default_rng(1).uniform(-spread, spread, len(values))
    axes.scatter(x, values, **_SEED_POINT)


def _label_variants(axes, order, notes=None) -> None:
    """Variant labels under the x positions, with an optional second line each."""
    labels = [_wrap(label) for label in order]
    if notes:
        labels = [f"{label}\n{note}" for label, note in zip(labels, notes)]
    axes.set_xticks(range(len(order)), labels)
    axes.set_xlim(-0.6, len(order) - 0.4)
    axes.set_xlabel("variant")


def _wrap(label: str, width: int = 12) -> str:
    """A long label split in two lines after the underscore nearest its middle."""
    cuts = [i + 1 for i, char in enumerate(label) if char == "_"]
    if len(label) <= width or not cuts:
        return label
    cut = min(cuts, key=lambda i: abs(i - len(label) / 2))
    return label[:cut] + "\n" + label[cut:]


def _mode_handles() -> list:
    """Legend entries for the two ways of measuring training accuracy."""
    return [Patch(facecolor="lightgrey", edgecolor="black", hatch=hatch, label=label)
            for _, label, hatch in _MODES]


def _reach_handles() -> list:
    """Legend entries for reached (filled) and not reached (hollow) seeds."""
    return [
        Line2D([], [], marker="o", linestyle="", color="grey", label="reached (one seed)"),
        Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="grey",
               label="not reached within the run"),
    ]


def _finite(values: pd.Series) -> np.ndarray:
    """The finite values of a column, as floats."""
    array = values.to_numpy(dtype=float)
    return array[np.isfinite(array)]
