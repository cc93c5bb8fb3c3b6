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

from bnlab.analysis.figures import variant_colors
from bnlab.analysis.verdicts import claim_verdict
from bnlab.common.checks import require_columns
from bnlab.common.columns import TRIAL_KEYS, censored_epochs_to, epochs_to, reached, to_target


def sweep_table(trials: pd.DataFrame, targets: pd.DataFrame, axis: str) -> pd.DataFrame:
    """One row per (base variant, grid value): outcome over seeds.

    Args:
        trials: the run's trials table, with `base_variant` and the `axis` column.
        targets: the run's targets table.
        axis: the grid column, e.g. "learning_rate".

    Returns:
        Columns `base_variant`, the axis, `seeds`, `diverged` (count), `final_val_accuracy`
        (mean over the seeds that did not diverge; NaN when all did), and for each target T
        `epochs_to_T` (mean over the seeds that reached it), `reached_T` (count) and
        `censored_epochs_to_T` (mean over all seeds, a seed that never reached T counting as one
        epoch more than the longest trial ran, so that one lucky seed does not win); the names
        come from `bnlab.common.columns`.
    """
    require_columns(trials, "trials", ["variant", "seed", "base_variant", axis, "status", "final_val_accuracy"],
                    non_empty=True)
    require_columns(targets, "targets", ["variant", "seed", "target", "reached", to_target("epochs")])
    keys = trials[["variant", "seed", "base_variant", axis]]
    reaching = targets.merge(keys, on=list(TRIAL_KEYS))
    never = int(trials["epochs_run"].max()) + 1 if "epochs_run" in trials else np.nan
    rows = []
    for (variant, value), group in trials.groupby(["base_variant", axis], sort=False):
        finished = group[group["status"] != "diverged"]
        row = {"base_variant": variant, axis: value, "seeds": len(group),
               "diverged": int((group["status"] == "diverged").sum()),
               "final_val_accuracy": finished["final_val_accuracy"].mean() if len(finished) else np.nan}
        point = reaching[(reaching["base_variant"] == variant) & (reaching[axis] == value)]
        for target, hits in point.groupby("target"):
            row.update(_target_cells(target, hits, never))
        rows.append(row)
    return pd.DataFrame(rows)


def _target_cells(target: float, hits: pd.DataFrame, never: float) -> dict:
    """`epochs_to_T`, `reached_T` and `censored_epochs_to_T` of one sweep point from its target rows."""
    done = hits[hits["reached"].astype(bool)]
    epochs = to_target("epochs")
    return {
        epochs_to(target): done[epochs].mean() if len(done) else np.nan,
        reached(target): len(done),
        censored_epochs_to(target): hits[epochs].where(hits["reached"].astype(bool), never).astype(float).mean(),
    }


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


def plot_learning_rate_sweep(table: pd.DataFrame, axis: str, target: float, variants: Sequence[str],
                             never: float) -> Figure:
    """Final validation accuracy and epochs to `target` against the grid value, per variant.

    Diverged seeds are marked by crosses at the bottom of the accuracy panel. The right panel
    shows the censored mean epochs to `target` (`sweep_table`); the dashed line is the value
    of a seed that never reached it.

    Args:
        table: from `sweep_table`.
        axis: the grid column (a log scale is used: learning rates span decades).
        target: which target's epochs to draw.
        variants: base variant labels, in config order (fixes colours).
        never: the epochs counted for a seed that never reached `target` (see `sweep_table`).

    Returns:
        The figure.
    """
    column = censored_epochs_to(target)
    require_columns(table, "sweep", ["base_variant", axis, "diverged", "final_val_accuracy", column], non_empty=True)
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
        epochs_axes.plot(rows[axis], rows[column], "o-", color=colors[variant], label=variant)
    for axes in (accuracy_axes, epochs_axes):
        axes.set_xscale("log")
        axes.set_xlabel(axis.replace("_", " "))
        axes.grid(alpha=0.3)
    accuracy_axes.set_ylabel("final validation accuracy (mean of non-diverged seeds)")
    accuracy_axes.set_title("x at the bottom: a seed diverged")
    finite = table["final_val_accuracy"].dropna()
    if len(finite):
        accuracy_axes.set_ylim(max(0.0, float(finite.min()) - 0.02), 1.0)
    epochs_axes.axhline(never, color="grey", linestyle="--", linewidth=0.8)
    epochs_axes.set_ylabel(f"epochs to {target:g} validation accuracy (mean over seeds)")
    epochs_axes.set_title(f"dashed: never reached ({never:g} counted)")
    epochs_axes.legend(title="variant")
    return figure


def robustness_verdict(table: pd.DataFrame, axis: str, accuracy: float, targets: Sequence[float],
                       baseline: str) -> list[str]:
    """The claim checked for each variant against `baseline` (the variant without BN).

    A variant tolerates larger values when its largest usable value (see `usable_values`)
    exceeds the baseline's; it reaches a target sooner when its fewest censored epochs to the
    target over the grid are fewer than the baseline's. The claim holds for a variant when
    both are true for every target, in part when some are.

    Returns:
        One sentence per variant other than the baseline, each with its verdict and numbers.
    """
    largest = usable_values(table, axis, accuracy).set_index("base_variant")["largest"].fillna(-np.inf)
    name = axis.replace("_", " ")
    lines = []
    for variant in largest.index.drop(baseline):
        tolerant = largest[variant] > largest[baseline]
        speeds = [(_fastest(table, variant, axis, t), _fastest(table, baseline, axis, t), t) for t in targets]
        sooner = [mine[0] < theirs[0] for mine, theirs, _ in speeds]
        checks = [tolerant, *sooner]
        verdict = claim_verdict(checks)
        speed_text = "; ".join(f"{t:g} in {mine[0]:.1f} epochs at {mine[1]:g} against {theirs[0]:.1f} at {theirs[1]:g}"
                               for mine, theirs, t in speeds)
        lines.append(
            f"{variant}: the claim **{verdict}**. Largest usable {name} {_largest_text(largest[variant])} against "
            f"{_largest_text(largest[baseline])} for {baseline}; fewest epochs to {speed_text}. "
            + _beyond_text(table, variant, axis, largest[baseline], min(targets))
        )
    return lines


def _beyond_text(table, variant, axis, limit, target) -> str:
    """Where the variant still reaches `target` in every seed above the baseline's usable range."""
    rows = table[(table["base_variant"] == variant) & (table[axis] > limit)]
    full = rows[rows[reached(target)] == rows["seeds"]]
    where = ", ".join(f"{r[axis]:g} ({r[epochs_to(target)]:.1f} epochs)" for _, r in full.iterrows())
    return (f"Above {_largest_text(limit)}, every seed reached {target:g} at {where or 'no value'}.")


def _largest_text(value) -> str:
    return "none" if not np.isfinite(value) else f"{value:g}"


def _fastest(table, variant, axis, target) -> tuple[float, float]:
    """(fewest censored epochs to target over the grid, the grid value giving them)."""
    rows = table[table["base_variant"] == variant]
    column = censored_epochs_to(target)
    best = rows.loc[rows[column].idxmin()]
    return float(best[column]), float(best[axis])
