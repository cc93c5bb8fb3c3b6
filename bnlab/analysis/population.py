"""BN's statistics at inference: validation accuracy under each evaluation mode, and how far the moving
averages are from the population statistics (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm").

Pure functions of a run's tables (`RunResults`): the modes a run evaluated are the per-epoch columns
`mode_column("val_accuracy", mode)`; the discrepancy table is `bn_discrepancy.csv`.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bnlab.analysis.stats import mean_interval
from bnlab.common.columns import EVALUATION_MODES, final_mode_accuracy, mode_column
from bnlab.runs.results import RunResults

MODE_NAMES = {"moving_average": "moving averages", "precise_bn": "PreciseBN", "batch_statistics": "batch statistics"}


def evaluated_modes(results: RunResults) -> list[str]:
    """The evaluation modes besides the moving averages that the run recorded."""
    return [mode for mode in EVALUATION_MODES if mode_column("val_accuracy", mode) in results.epochs]


def mode_table(results: RunResults, confidence: float = 0.95) -> pd.DataFrame:
    """Per variant: final validation accuracy under each mode (seed means), and each mode minus the moving
    averages, paired by seed, with its t interval.

    Returns:
        Columns variant, seeds, moving_average, one per mode, then for each mode `MODE_minus_moving`,
        `MODE_ci_low`, `MODE_ci_high`.
    """
    rows = []
    trials = results.trials.dropna(subset=["final_val_accuracy"])
    for variant, group in trials.groupby("variant", sort=False):
        row = {"variant": variant, "seeds": len(group), "moving_average": group["final_val_accuracy"].mean()}
        for mode in evaluated_modes(results):
            values = group[final_mode_accuracy(mode)]
            interval = mean_interval((values - group["final_val_accuracy"]).to_numpy(), confidence)
            row.update({mode: values.mean(), f"{mode}_minus_moving": interval["mean"],
                        f"{mode}_ci_low": interval["ci_low"], f"{mode}_ci_high": interval["ci_high"]})
        rows.append(row)
    return pd.DataFrame(rows)


def discrepancy_summary(results: RunResults) -> pd.DataFrame:
    """Per variant and BN layer, the medians over seeds of the discrepancy table's columns (empty without BN)."""
    table = results.discrepancy
    if table.empty or "layer" not in table:
        return pd.DataFrame()
    columns = ["channels", "mean_shift_median", "mean_shift_max", "variance_ratio_median", "variance_ratio_min",
               "variance_ratio_max"]
    summary = table.groupby(["variant", "layer"], sort=False)[columns].median().reset_index()
    return summary.assign(seeds=table.groupby(["variant", "layer"], sort=False).size().to_numpy())


def plot_evaluation_modes(results: RunResults) -> Figure:
    """Validation accuracy against the epoch for each variant (one panel each), one line per evaluation mode."""
    variants = list(dict.fromkeys(results.epochs["variant"]))
    columns = min(3, len(variants))
    figure, axes = plt.subplots(math.ceil(len(variants) / columns), columns, squeeze=False, sharey=True,
                                figsize=(4.2 * columns, 3.2 * math.ceil(len(variants) / columns)),
                                constrained_layout=True)
    modes = {"moving_average": "val_accuracy",
             **{mode: mode_column("val_accuracy", mode) for mode in evaluated_modes(results)}}
    for axis, variant in zip(axes.flat, variants):
        rows = results.epochs[results.epochs["variant"] == variant]
        for mode, column in modes.items():
            mean = rows.groupby("epoch")[column].mean()
            axis.plot(mean.index, mean.to_numpy(), marker="o", markersize=3, label=MODE_NAMES[mode])
        axis.set_title(variant, fontsize=9)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axis in axes.flat[len(variants):]:
        axis.set_visible(False)
    axes[0, 0].set_ylabel("validation accuracy (mean over seeds)")
    axes[0, 0].legend(fontsize=8)
    return figure
