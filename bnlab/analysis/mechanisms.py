"""Why BN helps, from the probe tables of a run (`RunResults.probes`, `bnlab.config.probes`).

- Gradients at initialization (Yang et al. 2019): the per-layer squared gradient norm, and its
  growth toward the input fitted per trial (`init_gradient_growth`) with an interval over seeds.
- The loss landscape and internal covariate shift (Santurkar et al. 2018, sec. 3.1 and 2.2).
- Kernel norms and effective learning rates (van Laarhoven 2017).

Pure functions of a run's tables; figures are matplotlib Figures the report saves.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bnlab.analysis.figures import variant_colors
from bnlab.analysis.stats import mean_interval
from bnlab.config.probes import PROBE_METRICS
from bnlab.runs.results import RunResults

# Yang et al. 2019: with BN before ReLU, the squared gradient norm grows by pi/(pi-1) per layer toward the input
# (wide layers, large batches); without BN at He initialization it stays level
YANG_RELU_GROWTH = math.pi / (math.pi - 1)
LANDSCAPE_COLUMNS = ("loss_range", "gradient_predictiveness", "beta_smoothness")


def growth_table(results: RunResults, confidence: float = 0.95) -> pd.DataFrame:
    """Per trial variant: its depth, the fitted growth of the squared gradient norm per layer toward the
    input (mean over seeds, t interval) and whether Yang et al.'s pi/(pi-1) lies in the interval.

    Returns:
        Columns variant, kernels, seeds, growth, ci_low, ci_high, yang_in_interval; empty without the
        init_gradients probe.
    """
    table = results.probes.get("init_gradients")
    if table is None or "init_gradient_growth" not in results.trials:
        return pd.DataFrame()
    kernels = table.groupby("variant")["depth"].max()
    rows = []
    for variant, group in results.trials.groupby("variant", sort=False):
        interval = mean_interval(group["init_gradient_growth"].dropna().to_numpy(float), confidence)
        rows.append({"variant": variant, "kernels": int(kernels.get(variant, 0)), "seeds": interval["n"],
                     "growth": interval["mean"], "ci_low": interval["ci_low"], "ci_high": interval["ci_high"],
                     "yang_in_interval": bool(interval["ci_low"] <= YANG_RELU_GROWTH <= interval["ci_high"])})
    return pd.DataFrame(rows)


def plot_init_gradients(results: RunResults) -> Figure:
    """Squared gradient norm of each kernel at initialization against its depth (log scale), one line per
    variant (geometric mean over seeds), one panel per network depth."""
    table = results.probes["init_gradients"]
    kernels = table.groupby("variant")["depth"].transform("max")
    panels = sorted(kernels.unique())
    figure, axes = plt.subplots(1, len(panels), squeeze=False, figsize=(4.6 * len(panels), 3.6),
                                constrained_layout=True)
    colors = variant_colors(_base_labels(results, table["variant"].unique()).unique())
    for axis, depth in zip(axes.flat, panels):
        rows = table[kernels == depth]
        for variant, group in rows.groupby("variant", sort=False):
            curve = np.exp(np.log(group["squared_norm"]).groupby(group["depth"]).mean())
            base = _base_labels(results, [variant]).iloc[0]
            axis.plot(curve.index, curve.to_numpy(), marker="o", markersize=2, color=colors[base], label=base)
        axis.set_yscale("log")
        axis.set_title(f"{depth} kernels", fontsize=9)
        axis.set_xlabel("layer (1 = input)")
        axis.legend(fontsize=7)
    axes[0, 0].set_ylabel("squared gradient norm at init")
    return figure


def curves(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean over seeds (and layers) of a probe table's column at each recorded step: columns variant, step, value."""
    by_trial = table.groupby(["variant", "seed", "step"], sort=False)[column].mean().reset_index()
    return by_trial.groupby(["variant", "step"], sort=False)[column].mean().reset_index(name="value")


def plot_probe(results: RunResults, probe: str, columns: tuple[str, ...], log: bool = True) -> Figure:
    """One panel per column of a probe's table against the optimizer step, one line per variant."""
    return _plot_table(results.probes[probe], columns, log)


def plot_kernel_norms(results: RunResults) -> Figure:
    """Norm and effective learning rate of the kernels feeding BN (all kernels where none does) against the step."""
    table = results.probes["kernel_norms"]
    normalized = table["normalized"].astype(bool)
    chosen = table[normalized | ~normalized.groupby(table["variant"]).transform("any")]
    return _plot_table(chosen, ("kernel_norm", "effective_learning_rate", "angle_degrees"), log=True)


def _plot_table(table: pd.DataFrame, columns: tuple[str, ...], log: bool) -> Figure:
    figure, axes = plt.subplots(1, len(columns), squeeze=False, figsize=(4.4 * len(columns), 3.4),
                                constrained_layout=True)
    variants = list(dict.fromkeys(table["variant"]))
    colors = variant_colors(variants)
    for axis, column in zip(axes.flat, columns):
        values = curves(table, column)
        for variant in variants:
            rows = values[values["variant"] == variant]
            axis.plot(rows["step"], rows["value"], marker="o", markersize=2, color=colors[variant], label=variant)
        if log and (values["value"] > 0).all():
            axis.set_yscale("log")
        axis.set_title(column.replace("_", " "), fontsize=9)
        axis.set_xlabel("step")
    axes[0, -1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return figure


def probe_figures_table(results: RunResults) -> pd.DataFrame:
    """Per trial variant, the seed means of every probe figure in the trials table (PROBE_METRICS)."""
    metrics = [m for names in PROBE_METRICS.values() for m in names if m in results.trials]
    if not metrics:
        return pd.DataFrame()
    grouped = results.trials.groupby("variant", sort=False)
    return grouped[metrics].mean().reset_index().assign(seeds=grouped.size().to_numpy())


def _base_labels(results: RunResults, variants) -> pd.Series:
    """The config label of each trial variant (without its grid values)."""
    trials = results.trials.drop_duplicates("variant").set_index("variant")
    column = trials["base_variant"] if "base_variant" in trials else pd.Series(trials.index, index=trials.index)
    return pd.Series([column.get(variant, variant) for variant in variants])

