"""The claims figure: for each claim a config declares, every seed's difference, the interval and the verdict.

One panel a claim, each on its own scale (claims compare accuracies, epochs, seconds): the per-seed
differences `variant - baseline` as points, under them the interval the claim's test gives (the mean's
t interval, or the median's distribution-free interval for `test: sign`) with its centre, zero as a
dashed line and, for a claim with a margin, the band of equivalence. The panel's colour is the verdict.
Made from `bnlab.analysis.comparisons.evaluate`'s claim rows; never imports the runner or Keras.

Example:
    >>> evaluation = evaluate_run(results)
    >>> save_figure(plot_claims(results.trials, evaluation.claims, 0.95), "figures/claims.png")
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bnlab.analysis.comparisons import paired_differences

VERDICT_COLORS = {"holds": "tab:green", "does not hold": "tab:red", "inconclusive": "tab:gray"}
_SEEDS_Y, _INTERVAL_Y = 0.5, 0.0  # where the points and the interval sit in a panel


def plot_claims(trials: pd.DataFrame, claims: pd.DataFrame, confidence: float) -> Figure:
    """One panel per claim row (`Evaluation.claims`), top to bottom in the config's order.

    Args:
        trials: the run's per-trial table (`RunResults.trials`).
        claims: the claim rows, with `id`, `variant`, `baseline`, `figure`, `baseline_metric`, `test`,
            `expect`, `n`, `mean`, `median` (sign tests), `ci_low`, `ci_high`, `margin`, `claim_verdict`.
        confidence: the intervals' level (`analysis.confidence`), for the legend.

    Raises:
        ValueError: no claim rows.
    """
    if claims.empty:
        raise ValueError("plot_claims: expected at least one claim row, received none.")
    figure = Figure(figsize=(8, 0.6 + 1.6 * len(claims)), layout="constrained")
    for axes, (_, row) in zip(figure.subplots(len(claims), 1, squeeze=False)[:, 0], claims.iterrows()):
        baseline_metric = row["baseline_metric"] if isinstance(row["baseline_metric"], str) else None
        differences = paired_differences(trials, row["variant"], row["baseline"], row["figure"], baseline_metric)
        _claim_panel(axes, differences.to_numpy(), row, confidence)
    return figure


def _claim_panel(axes, differences: np.ndarray, row, confidence: float) -> None:
    color = VERDICT_COLORS.get(row["claim_verdict"], "tab:gray")
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(differences))  # the same picture every time
    axes.scatter(differences, _SEEDS_Y + jitter, s=16, color=color, alpha=0.7, zorder=3,
                 label=f"seeds ({len(differences)})")
    sign = row["test"] == "sign"
    center = row["median"] if sign else row["mean"]
    if math.isfinite(row["ci_low"]) and math.isfinite(row["ci_high"]):
        axes.plot([row["ci_low"], row["ci_high"]], [_INTERVAL_Y] * 2, color=color, linewidth=3, zorder=2,
                  label=f"{confidence:.0%} interval of the {'median' if sign else 'mean'}")
    if math.isfinite(center):
        axes.plot([center], [_INTERVAL_Y], marker="D", color="black", zorder=4, linestyle="none",
                  label="median" if sign else "mean")
    margin = row["margin"]
    if isinstance(margin, float) and math.isfinite(margin):
        axes.axvspan(-margin, margin, color="tab:blue", alpha=0.12, label=f"equivalence margin ±{margin:g}")
    axes.axvline(0, color="black", linestyle="--", linewidth=0.8)
    axes.set_ylim(-0.5, 1.0)
    axes.set_yticks([])
    against = row["baseline_metric"] if isinstance(row["baseline_metric"], str) else row["figure"]
    axes.set_xlabel(f"{row['figure']} of {row['variant']} minus {against} of {row['baseline']}")
    axes.set_title(f"{row['id']}: {row['claim_verdict']} (expected {row['expect']}; {row['test']} test, "
                   f"{int(row['n'])} pairs)", color=color, loc="left", fontsize=10)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, fontsize=8)
