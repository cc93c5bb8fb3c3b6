"""Learning-rate robustness across a grid axis (after Santurkar et al. 2018, arXiv 1805.11604).

The claim checked: networks with BN tolerate much larger learning rates than the same network
without BN, and reach accuracy targets sooner at them. A run whose config has a `grid` over
`training.optimizer.learning_rate` holds one trial per (variant, learning rate, seed); its
trials table has `base_variant` (the config's variant label) and `learning_rate` columns.

Pure functions of the trials and targets tables, and a matplotlib figure (object API).

Example:
    >>> results = load_results("runs/lr_sweep")
    >>> sweep_table(results.trials, results.targets, "learning_rate")
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bnlab.checks import require_columns
from bnlab.figures import variant_colors


def sweep_table(trials: pd.DataFrame, targets: pd.DataFrame, axis: str) -> pd.DataFrame:
    """One row per (base variant, grid value): outcome over seeds.

    Args:
        trials: the run's trials table, with `base_variant` and the `axis` column.
        targets: the run's targets table.
        axis: the grid column, e.g. "learning_rate".

    Returns:
        Columns `base_variant`, the axis, `seeds`, `diverged` (count), `final_val_accuracy`
        (mean over the seeds that did not diverge; NaN when all did), and for each target T
        `epochs_to_T` (mean over the seeds that reached it) and `reached_T` (count).
    """
    require_columns(trials, "trials", ["variant", "seed", "base_variant", axis, "status", "final_val_accuracy"],
                    non_empty=True)
    require_columns(targets, "targets", ["variant", "seed", "target", "reached", "epochs_to_target"])
    keys = trials[["variant", "seed", "base_variant", axis]]
    reached = targets.merge(keys, on=["variant", "seed"])
    rows = []
    for (variant, value), group in trials.groupby(["base_variant", axis], sort=False):
        finished = group[group["status"] != "diverged"]
        row = {"base_variant": variant, axis: value, "seeds": len(group),
               "diverged": int((group["status"] == "diverged").sum()),
               "final_val_accuracy": finished["final_val_accuracy"].mean() if len(finished) else np.nan}
        for target, hits in reached[(reached["base_variant"] == variant) & (reached[axis] == value)].groupby("target"):
            done = hits[hits["reached"].astype(bool)]
            row[f"epochs_to_{target:g}"] = done["epochs_to_target"].mean() if len(done) else np.nan
            row[f"reached_{target:g}"] = len(done)
        rows.append(row)
    return pd.DataFrame(rows)


def usable_values(table: pd.DataFrame, axis: str, accuracy: float) -> pd.DataFrame:
    """Per base variant, the grid values at which no seed diverged and mean accuracy >= `accuracy`.

    Returns:
        Columns `base_variant`, `usable` (sorted list of values), `largest` (NaN when none).
    """
    ok = table[(table["diverged"] == 0) & (table["final_val_accuracy"] >= accuracy)]
    rows = []
    for variant in dict.fromkeys(table["base_variant"]):
        values = sorted(ok.loc[ok["base_variant"] == variant, axis])
        rows.append({"base_variant": variant, "usable": values, "largest": values[-1] if values else np.nan})
    return pd.DataFrame(rows)


def plot_learning_rate_sweep(table: pd.DataFrame, axis: str, target: float, variants: Sequence[str]) -> Figure:
    """Final validation accuracy and epochs to `target` against the grid value, per variant.

    Diverged seeds are counted in crosses at the bottom of the accuracy panel; a value at
    which no seed reached the target has no point in the right panel.

    Args:
        table: from `sweep_table`.
        axis: the grid column (a log scale is used: learning rates span decades).
        target: which target's epochs to draw.
        variants: base variant labels, in config order (fixes colours).

    Returns:
        The figure.
    """
    require_columns(table, "sweep", ["base_variant", axis, "diverged", "final_val_accuracy", f"epochs_to_{target:g}"],
                    non_empty=True)
    colors = variant_colors(variants)
    figure = Figure(figsize=(12, 4.8), layout="constrained")
    accuracy_axes, epochs_axes = figure.subplots(1, 2)
    for variant in variants:
        rows = table[table["base_variant"] == variant].sort_values(axis)
        if rows.empty:
            continue
        accuracy_axes.plot(rows[axis], rows["final_val_accuracy"], "o-", color=colors[variant], label=variant)
        diverged = rows[rows["diverged"] > 0]
        accuracy_axes.scatter(diverged[axis], np.zeros(len(diverged)), marker="x", s=60, color=colors[variant],
                              transform=accuracy_axes.get_xaxis_transform(), clip_on=False)
        epochs_axes.plot(rows[axis], rows[f"epochs_to_{target:g}"], "o-", color=colors[variant], label=variant)
    for axes in (accuracy_axes, epochs_axes):
        axes.set_xscale("log")
        axes.set_xlabel(axis.replace("_", " "))
        axes.grid(alpha=0.3)
    accuracy_axes.set_ylabel("final validation accuracy (mean of non-diverged seeds)")
    accuracy_axes.set_title("x at the bottom: a seed diverged")
    finite = table["final_val_accuracy"].dropna()
    if len(finite):
        accuracy_axes.set_ylim(max(0.0, float(finite.min()) - 0.02), 1.0)
    epochs_axes.set_ylabel(f"epochs to {target:g} validation accuracy (mean of seeds reaching it)")
    epochs_axes.set_title("no point: no seed reached it")
    epochs_axes.legend(title="variant")
    return figure


def robustness_verdict(table: pd.DataFrame, axis: str, accuracy: float, target: float, baseline: str) -> str:
    """The claim checked against `baseline` (the variant without BN), from a `sweep_table`.

    It holds when every other variant's largest usable value (see `usable_values`) exceeds
    the baseline's, and at each of the values above the baseline's largest usable one, every
    seed of the other variant reaches `target`.
    """
    largest = usable_values(table, axis, accuracy).set_index("base_variant")["largest"].fillna(-np.inf)
    beyond = table[table[axis] > largest[baseline]]
    holds = all(
        largest[variant] > largest[baseline] and _all_reach(beyond[beyond["base_variant"] == variant], target)
        for variant in largest.index if variant != baseline
    )
    usable = "; ".join(f"{variant} {_largest_text(value)}" for variant, value in largest.items())
    return (
        f"Learning-rate robustness **{'holds' if holds else 'does not hold'}** here. Largest {axis.replace('_', ' ')} "
        f"with no diverged seed and mean final validation accuracy >= {accuracy:g}: {usable}. "
        f"Fewest epochs to {target:g} over the grid (mean over seeds that reached it): "
        + "; ".join(_fastest(table, axis, target)) + "."
    )


def _all_reach(rows: pd.DataFrame, target: float) -> bool:
    return bool(len(rows)) and bool((rows[f"reached_{target:g}"] == rows["seeds"]).all())


def _largest_text(value) -> str:
    return "none" if not np.isfinite(value) else f"{value:g}"


def _fastest(table, axis, target) -> list[str]:
    column = f"epochs_to_{target:g}"
    texts = []
    for variant, rows in table.groupby("base_variant", sort=False):
        rows = rows.dropna(subset=[column])
        if rows.empty:
            texts.append(f"{variant} never")
            continue
        best = rows.loc[rows[column].idxmin()]
        texts.append(f"{variant} {best[column]:.1f} at {best[axis]:g}")
    return texts
