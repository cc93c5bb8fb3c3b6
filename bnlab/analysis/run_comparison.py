"""The numbers of `bnlab compare`: final accuracies per run and variant, and differences between runs.

Pure functions of `load_runs` results (trials labelled "RUN/LABEL", with `run` and `variant_in_run`
columns); no printing. Seeds of two runs are paired only when both have the same seeds of the
variant: then a seed started both trials from the same initial weights, as within one run, and the
difference is `bnlab.analysis.significance.paired_test`'s. Otherwise the two sets of seeds are
independent samples, and the interval is Welch's t interval (unequal variances).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bnlab.analysis.pairing import trial_labels
from bnlab.analysis.significance import paired_test
from bnlab.analysis.stats import CONFIDENCE, variant_statistics
from bnlab.runs.results import LABEL_IN_RUN_COLUMN, RUN_COLUMN, RunResults

FIGURES = ("final_val_accuracy", "test_accuracy")  # what `bnlab compare` compares
PAIRED, WELCH = "paired by seed", "Welch"
DIFFERENCE_COLUMNS = ["variant", "run", "baseline_run", "figure", "test", "n_run", "n_baseline",
                      "mean_difference", "ci_low", "ci_high", "p_value"]


def run_statistics(results: RunResults) -> pd.DataFrame:
    """Mean, std and 95% interval over seeds of `FIGURES`, per run and variant.

    Args:
        results: several runs read by `bnlab.runs.results.load_runs`.

    Returns:
        `bnlab.analysis.stats.variant_statistics` of the trials (complete trials only; diverged
        ones counted in `excluded`), one row per run x variant x figure, with `run` and
        `variant_in_run` columns in front, runs in the order given and variants in config order.
    """
    table = variant_statistics(results.trials, list(FIGURES), trial_labels(results))
    keys = results.trials.drop_duplicates("variant")[["variant", RUN_COLUMN, LABEL_IN_RUN_COLUMN]]
    table = table.merge(keys, on="variant", how="left")
    return table[[RUN_COLUMN, LABEL_IN_RUN_COLUMN, *[c for c in table if c not in keys]]]


def run_differences(results: RunResults, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Each run minus the first run given that has the same variant label, for every figure.

    Args:
        results: several runs read by `bnlab.runs.results.load_runs`.
        confidence: two-sided level of the intervals.

    Returns:
        One row per (variant label, later run, figure) with `DIFFERENCE_COLUMNS`: `test` is
        "paired by seed" (both runs have the same seeds of the variant: paired t) or "Welch"
        (otherwise: Welch's unequal-variance t); `n_run` and `n_baseline` count the complete trials
        with the figure; `mean_difference` is run minus baseline run. Empty when no label is shared.
    """
    trials = results.trials
    usable = trials[trials["status"] == "complete"]
    rows = []
    for label in dict.fromkeys(trials[LABEL_IN_RUN_COLUMN]):
        runs = list(dict.fromkeys(trials.loc[trials[LABEL_IN_RUN_COLUMN] == label, RUN_COLUMN]))
        for run in runs[1:]:
            for figure in FIGURES:
                own, base = (_seed_values(usable, name, label, figure) for name in (run, runs[0]))
                rows.append({"variant": label, "run": run, "baseline_run": runs[0], "figure": figure,
                             **difference(own, base, confidence)})
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)


def _seed_values(usable: pd.DataFrame, run: str, label: str, figure: str) -> pd.Series:
    """Seed -> the figure, over one run's complete trials of a variant that have it."""
    rows = usable[(usable[RUN_COLUMN] == run) & (usable[LABEL_IN_RUN_COLUMN] == label)]
    values = rows.set_index("seed")[figure].astype(float)
    return values[np.isfinite(values)]


def difference(values: pd.Series, baseline: pd.Series, confidence: float = CONFIDENCE) -> dict:
    """`values` minus `baseline` (each seed -> figure): paired by seed when both have the same seeds.

    Returns:
        `test`, `n_run`, `n_baseline`, `mean_difference`, `ci_low`, `ci_high`, `p_value` (NaN
        where fewer than two values leave no spread to estimate).
    """
    counts = {"n_run": len(values), "n_baseline": len(baseline)}
    if len(values) > 1 and set(values.index) == set(baseline.index):
        paired = paired_test((values - baseline.loc[values.index]).to_numpy(), confidence=confidence)
        return {"test": PAIRED, **counts, "mean_difference": paired["mean"], "ci_low": paired["ci_low"],
                "ci_high": paired["ci_high"], "p_value": paired["p_difference"]}
    return {"test": WELCH, **counts, **_welch(values.to_numpy(), baseline.to_numpy(), confidence)}


def _welch(values: np.ndarray, baseline: np.ndarray, confidence: float) -> dict:
    """Welch's t interval and test of mean(values) - mean(baseline)."""
    mean = float(values.mean() - baseline.mean()) if len(values) and len(baseline) else math.nan
    if len(values) < 2 or len(baseline) < 2:
        return {"mean_difference": mean, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    if np.ptp(values) == 0 and np.ptp(baseline) == 0:  # no spread: the limit, as paired_test gives it
        return {"mean_difference": mean, "ci_low": mean, "ci_high": mean, "p_value": float(mean == 0)}
    result = scipy_stats.ttest_ind(values, baseline, equal_var=False)
    interval = result.confidence_interval(confidence)
    return {"mean_difference": mean, "ci_low": float(interval.low), "ci_high": float(interval.high),
            "p_value": float(result.pvalue)}
