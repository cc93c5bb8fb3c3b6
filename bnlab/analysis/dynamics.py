"""Training dynamics without and with BN: Ioffe & Szegedy 2015, section 4.1, Figure 1.

Figure 1(a) plots test accuracy against training steps for the MNIST network without and
with BN; Figure 1(b, c) the 15th, 50th and 85th percentiles of the input to a typical sigmoid
of the last hidden layer over training (the probe, `bnlab.training.probes.ActivationPercentiles`,
watches the input of whatever nonlinearity the config's variants use). The paper's two claims,
checked here from a run's numbers:

1. the BN network reaches higher test accuracy sooner (declared as claims in
   configs/ioffe2015_fig1.yaml and tested by `bnlab.analysis.comparisons`);
2. without BN the distribution of the nonlinearity's input drifts over training, with BN it
   stays much more stable ("reducing the internal covariate shift").

Pure functions of a run's DataFrames (`epochs`, `activations`) and matplotlib figures built
with the object API; never imports the runner or Keras.

Example:
    >>> results = load_results("runs/ioffe2015_fig1")
    >>> figure = plot_accuracy_by_step(results.epochs, ["without_bn", "with_bn"])
    >>> percentile_drift(results.activations, from_step=5000)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bnlab.analysis.figures import variant_colors
from bnlab.analysis.verdicts import claim_verdict
from bnlab.common.checks import require_columns
from bnlab.common.columns import TRIAL_KEYS

PERCENTILES = ("p15", "p50", "p85")  # the columns ActivationPercentiles writes by default
SETTLING_FRACTION = 0.1  # drift is measured after the first 10% of training (see percentile_drift)
CHECKPOINTS = (0.1, 0.5, 1.0)  # fractions of training at which test accuracy is compared


def plot_accuracy_by_step(epochs: pd.DataFrame, variants: Sequence[str], ylabel: str = "test accuracy") -> Figure:
    """Figure 1(a): accuracy against optimizer steps, mean over seeds with a min-max band.

    Args:
        epochs: the run's per-evaluation table (`variant`, `seed`, `step`, `val_accuracy`).
        variants: labels to draw, in order (fixes the colours).
        ylabel: what `val_accuracy` is in this run (the test set in `ioffe2015_fig1`).

    Returns:
        The figure.
    """
    require_columns(epochs, "per-epoch", ["variant", "seed", "step", "val_accuracy"], non_empty=True)
    colors = variant_colors(variants)
    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.subplots()
    for variant in variants:
        summary = epochs[epochs["variant"] == variant].groupby("step")["val_accuracy"].agg(["mean", "min", "max"])
        if summary.empty:
            continue
        axes.fill_between(summary.index, summary["min"], summary["max"], color=colors[variant], alpha=0.25, linewidth=0)
        axes.plot(summary.index, summary["mean"], color=colors[variant], label=variant)
    values = epochs["val_accuracy"].to_numpy(dtype=float)
    axes.set_ylim(max(float(np.nanpercentile(values, 2)) - 0.01, 0.0), min(float(np.nanmax(values)) + 0.005, 1.0))
    axes.set_xlabel("training steps")
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend(title="variant (band: seeds min-max)")
    return figure


def plot_activation_percentiles(activations: pd.DataFrame, variants: Sequence[str], unit: int, seed: int,
                                activation: str = "relu") -> Figure:
    """Figure 1(b, c): the 15th, 50th and 85th percentiles of one unit's input over training.

    One panel per variant, each on its own vertical scale; the dashed lines mark the end of
    the settling period that `percentile_drift` leaves out.

    Args:
        activations: the run's activation table (`variant`, `seed`, `step`, `unit`, p15, p50, p85).
        variants: labels to draw, one panel each.
        unit: the unit shown (one of the probed units).
        seed: the seed shown.
        activation: the nonlinearity whose input was probed, for the axis label (`build_mlp`'s
            default is relu; the paper's network uses sigmoid).

    Returns:
        The figure.
    """
    require_columns(activations, "activations", ["variant", "seed", "step", "unit", *PERCENTILES], non_empty=True)
    figure = Figure(figsize=(4.2 * len(variants), 4.2), layout="constrained")
    panels = np.atleast_1d(figure.subplots(1, len(variants)))
    settled = SETTLING_FRACTION * activations["step"].max()
    for axes, variant in zip(panels, variants):
        rows = activations.query("variant == @variant and seed == @seed and unit == @unit").sort_values("step")
        for column, style in zip(PERCENTILES, (":", "-", "--")):
            axes.plot(rows["step"], rows[column], style, color="black", label=f"{column[1:]}th percentile")
        axes.axvline(settled, color="grey", linewidth=0.8, linestyle="--")
        axes.set_title(f"{variant}: unit {unit}, seed {seed}")
        axes.set_xlabel("training steps")
        axes.grid(alpha=0.3)
    panels[0].set_ylabel(f"input to the {activation}")
    panels[0].legend()
    return figure


def percentile_drift(activations: pd.DataFrame, from_step: int) -> pd.DataFrame:
    """How far each probed unit's input distribution moves from `from_step` to the end.

    For each (variant, seed, unit), over the records with `step >= from_step`:
    `median_shift` is the range (max - min) of the median, `spread` the mean distance from
    the 15th to the 85th percentile, `spread_change` the range of that distance, and
    `relative_median_shift` and `relative_spread_change` the two ranges divided by `spread`,
    so that networks whose inputs live on different scales compare.

    Args:
        activations: the run's activation table.
        from_step: the first step counted.

    Returns:
        One row per (variant, seed, unit) with the columns above.

    Raises:
        ValueError: a column is missing, or no record is at or after `from_step`.
    """
    require_columns(activations, "activations", ["variant", "seed", "step", "unit", *PERCENTILES])
    window = activations[activations["step"] >= from_step].assign(width=lambda t: t["p85"] - t["p15"])
    if window.empty:
        raise ValueError(f"No activation records at or after step {from_step}; expected from_step "
                         f"<= the last recorded step. Received from_step={from_step}.")
    grouped = window.groupby(["variant", "seed", "unit"], sort=False)
    table = grouped.agg(median_low=("p50", "min"), median_high=("p50", "max"), spread=("width", "mean"),
                        width_low=("width", "min"), width_high=("width", "max")).reset_index()
    table["median_shift"] = table["median_high"] - table["median_low"]
    table["spread_change"] = table["width_high"] - table["width_low"]
    table["relative_median_shift"] = table["median_shift"] / table["spread"]
    table["relative_spread_change"] = table["spread_change"] / table["spread"]
    return table[["variant", "seed", "unit", "median_shift", "spread", "spread_change",
                  "relative_median_shift", "relative_spread_change"]]


def accuracy_at_checkpoints(epochs: pd.DataFrame, fractions: Sequence[float] = CHECKPOINTS) -> pd.DataFrame:
    """Accuracy of every trial at the evaluation nearest to given fractions of its training.

    Args:
        epochs: the run's per-evaluation table (`variant`, `seed`, `step`, `val_accuracy`).
        fractions: of the last recorded step, e.g. 0.1 for the first tenth of training.

    Returns:
        One row per (variant, seed, fraction): `step` (the evaluation used) and `val_accuracy`.
    """
    require_columns(epochs, "per-epoch", ["variant", "seed", "step", "val_accuracy"], non_empty=True)
    last = epochs["step"].max()
    rows = []
    for (variant, seed), trial in epochs.groupby(list(TRIAL_KEYS), sort=False):
        for fraction in fractions:
            nearest = trial.iloc[(trial["step"] - fraction * last).abs().argmin()]
            rows.append({"variant": variant, "seed": seed, "fraction": fraction,
                         "step": int(nearest["step"]), "val_accuracy": float(nearest["val_accuracy"])})
    return pd.DataFrame(rows)


def drift_verdict(windows: dict[int, pd.DataFrame], baseline: str, treated: str) -> str:
    """Claim 2 checked: does the input distribution drift less with BN (`treated`)?

    For each window (first step -> `percentile_drift` table), the two scale-free measures
    are compared: the median relative median shift and the median relative spread change over
    seeds and units. The claim holds when `treated` is lower on both in every window, holds in
    part when it is lower on some, and does not hold when it is lower on none.
    """
    parts, lower = [], []
    for from_step, drift in windows.items():
        medians = drift.groupby("variant")[["relative_median_shift", "relative_spread_change"]].median()
        base, bn = medians.loc[baseline], medians.loc[treated]
        lower += [bn[c] < base[c] for c in medians.columns]
        parts.append(
            f"from step {from_step:,} on, a unit's median moved by {bn['relative_median_shift']:.2f} x its "
            f"15-85 percentile spread with BN against {base['relative_median_shift']:.2f} x without, and the "
            f"spread changed by {bn['relative_spread_change']:.2f} x against {base['relative_spread_change']:.2f} x"
        )
    return (f"Claim 2 (a stable input distribution with BN, a drifting one without) **{claim_verdict(lower)}** here "
            f"({treated} against {baseline}; medians over seeds and probed units): " + "; ".join(parts) + ".")


def drift_windows(activations: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """`percentile_drift` over two windows: from the first record after step 0, and after settling.

    Step 0 is always left out: BN's moving averages start at mean 0 and variance 1, so before
    any update BN in inference mode barely normalizes. The second window starts after the first
    `SETTLING_FRACTION` of training, where every network moves fastest.
    """
    steps = sorted(set(activations["step"]))
    first = next((step for step in steps if step > 0), steps[-1])
    settled = max(first, int(SETTLING_FRACTION * steps[-1]))
    return {start: percentile_drift(activations, start) for start in dict.fromkeys([first, settled])}
