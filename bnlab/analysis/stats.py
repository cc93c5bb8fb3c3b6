"""Statistics over seeds from a run's tables; pure functions, no Keras.

Every function reads the DataFrames that `load_results` returns (`.trials`, `.targets`; see
docs/USAGE.md, "What a run folder holds") and returns plain numbers or a new DataFrame. Nothing is
dropped silently: diverged trials, missing figures and unreached targets are counted in their
own columns.

Confidence intervals are for the mean over seeds, from Student's t with n - 1 degrees of
freedom. With one value there is no spread to estimate, so std and the interval are NaN.
Times to a target, where a seed may never get there, are `bnlab.analysis.survival`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bnlab.analysis.pairing import table_order
from bnlab.common.checks import require_columns
from bnlab.common.columns import TRIAL_KEYS

CONFIDENCE = 0.95  # the usual two-sided level; mean_interval() takes another when asked

_STATISTICS_COLUMNS = ["variant", "figure", "n", "mean", "std", "ci_low", "ci_high",
                       "excluded", "missing"]
_DIFFERENCE_COLUMNS = ["variant", "baseline", "figure", "n_pairs", "mean_difference", "std_difference",
                       "ci_low", "ci_high"]


def mean_interval(values, confidence: float = CONFIDENCE) -> dict:
    """Returns the count, mean, standard deviation and t confidence interval of `values`.

    Args:
        values: Finite numbers, e.g. one figure of each seed of a variant. May be empty.
        confidence: Two-sided confidence level of the interval for the mean, in (0, 1).

    Returns:
        A dict `{"n", "mean", "std", "ci_low", "ci_high"}` of plain Python numbers. `std` uses
        ddof=1; the interval is `mean -+ t.ppf((1 + confidence) / 2, n - 1) * std / sqrt(n)`.
        With n == 1, `std`, `ci_low` and `ci_high` are NaN; with n == 0 everything but `n` is.

    Raises:
        ValueError: If a value is NaN or infinite, or `confidence` is not in (0, 1).

    Example:
        >>> mean_interval([1.0, 2.0, 3.0])["mean"]
        2.0
    """
    check_confidence(confidence)
    array = np.asarray(values, dtype=float).ravel()
    if not np.isfinite(array).all():
        raise ValueError(
            "mean_interval() needs finite values; drop missing ones first and report how many. "
            f"Received: {array.tolist()}"
        )
    n = int(array.size)
    mean = float(array.mean()) if n else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    std = float(array.std(ddof=1))
    half_width = float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return {
        "n": n, "mean": mean, "std": std, "ci_low": mean - half_width, "ci_high": mean + half_width
    }


def variant_statistics(
    trials: pd.DataFrame, figures: str | Sequence[str], variants: Sequence[str] | None = None
) -> pd.DataFrame:
    """Mean, std and 95% confidence interval over seeds of per-trial figures, per variant.

    Only trials whose status is "complete" count. A diverged trial is left out and counted in
    `excluded`; a complete trial without the figure (NaN) is left out and counted in `missing`.

    Args:
        trials: The trials table (`load_results(...).trials`).
        figures: One column name or several, e.g. `["best_val_accuracy", "test_accuracy"]`.
        variants: Variant labels in the order wanted; None takes the table's order. A label
            with no trials gets a row with n == 0.

    Returns:
        One row per (variant, figure), variants in order, with columns `variant`, `figure`,
        `n`, `mean`, `std`, `ci_low`, `ci_high`, `excluded`, `missing`.

    Raises:
        ValueError: If a column is missing from the table.

    Example:
        >>> order = variant_order(results.config, results.trials["variant"])  # bnlab.analysis.pairing
        >>> table = variant_statistics(results.trials, ["test_accuracy"], order)
        >>> table[["variant", "mean", "ci_low", "ci_high"]]
    """
    figures = [figures] if isinstance(figures, str) else list(figures)
    require_columns(trials, "trials", [*TRIAL_KEYS, "status", *figures])
    rows = []
    for variant in table_order(trials, variants):
        own = trials[trials["variant"] == variant]
        complete = own[own["status"] == "complete"]
        for figure in figures:
            values = complete[figure].to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            rows.append({
                "variant": variant,
                "figure": figure,
                **mean_interval(finite),
                "excluded": int(len(own) - len(complete)),
                "missing": int(len(values) - len(finite)),
            })
    return pd.DataFrame(rows, columns=_STATISTICS_COLUMNS)


def paired_differences(
    trials: pd.DataFrame,
    figure: str,
    baseline: str = "no_bn",
    variants: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per variant, the mean difference `variant - baseline` of a figure, paired by seed.

    Pairing by seed removes the part of the seed-to-seed spread that both variants share
    (the same seed draws the same data order). Only seeds where both trials are complete and
    have the figure form a pair: a description of the complete trials, like `variant_statistics`.
    The report's verdicts come from `bnlab.evaluate_run` (`analysis.comparisons`), which counts
    diverged trials too and adds the tests; without divergence the two give the same intervals.

    Args:
        trials: The trials table (`load_results(...).trials`).
        figure: A per-trial column, e.g. "test_accuracy".
        baseline: The variant label to subtract.
        variants: Variant labels in the order wanted (the baseline is skipped); None takes the
            table's order.

    Returns:
        One row per variant other than the baseline, with columns `variant`, `baseline`,
        `figure`, `n_pairs`, `mean_difference`, `std_difference`, `ci_low`, `ci_high` (95%
        t interval of the mean difference; NaN with fewer than two pairs).

    Raises:
        ValueError: If the baseline has no trials, a column is missing, or a (variant, seed)
            appears twice.
    """
    require_columns(trials, "trials", [*TRIAL_KEYS, "status", figure])
    present = table_order(trials)
    if baseline not in present:
        raise ValueError(
            f"The baseline variant {baseline!r} has no trials in the table. Expected one of the "
            f"variants present: {present}. Received: baseline={baseline!r}"
        )
    check_unique_trials(trials)
    usable = trials[(trials["status"] == "complete") & np.isfinite(trials[figure].astype(float))]
    base = usable.loc[usable["variant"] == baseline, ["seed", figure]]
    rows = [_paired_row(usable, base, variant, baseline, figure)
            for variant in table_order(trials, variants) if variant != baseline]
    return pd.DataFrame(rows, columns=_DIFFERENCE_COLUMNS)


def _paired_row(usable: pd.DataFrame, base: pd.DataFrame, variant: str, baseline: str, figure: str) -> dict:
    """One row of `paired_differences`: the variant's seeds paired with the baseline's."""
    own = usable.loc[usable["variant"] == variant, ["seed", figure]]
    pairs = own.merge(base, on="seed", suffixes=("", "_baseline"))
    summary = mean_interval(pairs[figure] - pairs[f"{figure}_baseline"])
    return {
        "variant": variant, "baseline": baseline, "figure": figure,
        "n_pairs": summary["n"], "mean_difference": summary["mean"], "std_difference": summary["std"],
        "ci_low": summary["ci_low"], "ci_high": summary["ci_high"],
    }


def check_confidence(confidence: float) -> None:
    """Raises unless `confidence` is a level in (0, 1)."""
    if not 0 < confidence < 1:
        raise ValueError(f"Expected a confidence level in (0, 1), e.g. 0.95. Received: {confidence!r}")


def check_unique_trials(trials: pd.DataFrame) -> None:
    """Raises if a (variant, seed) appears twice in the trials table."""
    duplicated = trials.duplicated(list(TRIAL_KEYS), keep=False)
    if duplicated.any():
        raise ValueError(
            "Expected one row per (variant, seed) in the trials table. Received duplicates: "
            f"{trials.loc[duplicated, list(TRIAL_KEYS)].drop_duplicates().to_dict('records')}"
        )
