"""BN's small-batch failure (Wu & He 2018, Fig. 1): test error against the normalization batch.

The normalization batch g of a trial is the number of examples its normalizer takes statistics
over: `virtual_batch_size` for ghost BN and batch renormalization, the training batch for Keras
BatchNormalization (and for ghost or renorm without a virtual batch). Layer, group and weight
normalization, and no normalization, take none: they do not depend on g, so they are drawn as
flat bands across the figure.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bnlab.analysis.stats import mean_interval
from bnlab.models.normalizers import get_normalizer
from bnlab.models.variants import get_variant
from bnlab.runs.results import RunResults

_LINES = {"batch": "BN (ghost slices)", "ghost": "BN (ghost slices)", "renorm": "batch renorm", "noisy": "noisy BN"}
_FLAT = {"layer": "layer norm", "group": "group norm", "weight": "weight norm", "none": "no normalization"}
_COLUMNS = ["variant", "normalizer", "line", "normalization_batch", "seeds", "test_error", "ci_low", "ci_high"]


def normalization_batches(results: RunResults) -> pd.DataFrame:
    """One row per trial variant of `build_mlp`: its label, normalizer, figure line and g (NaN: none).

    Returns:
        Columns variant, normalizer, line, normalization_batch; a user's own model is left out
        (its normalizer is unknown to bnlab).
    """
    rows = []
    for variant in results.config.trial_variants:
        spec = get_variant(variant.name)
        if not spec.is_mlp:
            continue
        settings = spec.mlp_settings(variant.overrides)
        normalizer = get_normalizer(settings["normalization"])
        placed = settings["batch_norm"] != "none" or settings["input_normalization"] != "none"
        name = normalizer.name if placed else "none"
        virtual = settings["virtual_batch_size"] if "virtual_batch_size" in normalizer.options else None
        g = (virtual or results.config.training_for(variant).batch_size) if name in _LINES else math.nan
        rows.append({"variant": variant.label, "normalizer": name, "line": _LINES.get(name) or _FLAT[name],
                     "normalization_batch": g})
    return pd.DataFrame(rows, columns=["variant", "normalizer", "line", "normalization_batch"])


def varies_normalization_batch(results: RunResults) -> bool:
    """Whether a run trains a batch-statistics normalizer at two or more normalization batches."""
    batches = normalization_batches(results)["normalization_batch"].dropna()
    return batches.nunique() >= 2


def small_batch_table(results: RunResults, confidence: float = 0.95) -> pd.DataFrame:
    """Test error per trial variant: mean over seeds and its t interval, with normalizer and g.

    Returns:
        Columns variant, normalizer, line, normalization_batch, seeds, test_error, ci_low, ci_high,
        ordered by line then g.
    """
    trials = results.trials.dropna(subset=["test_accuracy"])
    rows = []
    for row in normalization_batches(results).itertuples(index=False):
        errors = 1.0 - trials.loc[trials["variant"] == row.variant, "test_accuracy"].to_numpy(dtype=float)
        interval = mean_interval(errors, confidence)
        rows.append({**row._asdict(), "seeds": interval["n"], "test_error": interval["mean"],
                     "ci_low": interval["ci_low"], "ci_high": interval["ci_high"]})
    table = pd.DataFrame(rows, columns=_COLUMNS)
    return table.sort_values(["line", "normalization_batch"], kind="stable").reset_index(drop=True)


def variance_ratio_table(results: RunResults) -> pd.DataFrame:
    """Moving variance / population variance at the end of training against g, beside (g-1)/g.

    Keras and bnlab's ghost layers keep the mean of biased batch (slice) variances, which is (g-1)/g of
    the population variance for i.i.d. examples; the run's discrepancy table measures it per layer.

    Returns:
        Columns variant, normalization_batch, layers, variance_ratio (median over layers, units and
        seeds), expected ((g-1)/g); empty for a run without the discrepancy table.
    """
    table = results.discrepancy
    if table.empty or "variance_ratio_median" not in table:
        return pd.DataFrame(columns=["variant", "normalization_batch", "layers", "variance_ratio", "expected"])
    batches = normalization_batches(results).dropna(subset=["normalization_batch"]).set_index("variant")
    measured = table.groupby("variant", sort=False).agg(layers=("layer", "nunique"),
                                                         variance_ratio=("variance_ratio_median", "median"))
    rows = measured.join(batches["normalization_batch"], how="inner").reset_index()
    rows["expected"] = (rows["normalization_batch"] - 1) / rows["normalization_batch"]
    return rows[["variant", "normalization_batch", "layers", "variance_ratio", "expected"]]


def plot_small_batch(table: pd.DataFrame, confidence: float = 0.95) -> Figure:
    """Test error against the normalization batch, one line per normalizer, bands over seeds.

    Args:
        table: `small_batch_table(...)`.
        confidence: the level of the bands (the table's intervals), for the caption.

    Returns:
        The figure: batch-statistics normalizers as lines over g (log 2 axis), the others as flat
        bands across it.
    """
    figure, axes = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    varying = table.dropna(subset=["normalization_batch"])
    for line, rows in varying.groupby("line", sort=False):
        axes.plot(rows["normalization_batch"], 100 * rows["test_error"], marker="o", label=line)
        axes.fill_between(rows["normalization_batch"], _percent(rows["ci_low"]), _percent(rows["ci_high"]), alpha=0.2)
    span = [varying["normalization_batch"].min(), varying["normalization_batch"].max()]
    for line, rows in table[table["normalization_batch"].isna()].groupby("line", sort=False):
        mean, low, high = (_percent(rows[c].mean()) for c in ("test_error", "ci_low", "ci_high"))
        drawn = axes.plot(span, [mean, mean], linestyle="--", label=line)[0]
        if np.isfinite([low, high]).all():
            axes.fill_between(span, [low, low], [high, high], alpha=0.15, color=drawn.get_color())
    axes.set_xscale("log", base=2)
    axes.set_xticks(sorted(varying["normalization_batch"].unique()),
                    labels=[f"{g:g}" for g in sorted(varying["normalization_batch"].unique())])
    axes.set_xlabel("normalization batch g (examples a normalizer takes statistics over)")
    axes.set_ylabel("test error (%)")
    axes.set_title(f"Test error against the normalization batch (bands: {confidence:.0%} t intervals over seeds)",
                   fontsize=9)
    axes.legend(fontsize=8)
    return figure


def _percent(error):
    """An error (or its interval bound) in percent, clipped to [0, 100]: with few seeds a t interval overshoots."""
    return np.clip(100 * np.asarray(error, dtype=float), 0.0, 100.0)
