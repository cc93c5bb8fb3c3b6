"""Statistics over seeds from a run's tables; pure functions, no Keras.

Every function reads the DataFrames that `load_results` returns (`.trials`, `.targets`; see
README "What a run folder holds") and returns plain numbers or a new DataFrame. Nothing is
dropped silently: diverged trials, missing figures and unreached targets are counted in their
own columns.

Confidence intervals are for the mean over seeds, from Student's t with n - 1 degrees of
freedom. With one value there is no spread to estimate, so std and the interval are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bnlab.checks import require_columns

CONFIDENCE = 0.95  # the usual two-sided level; describe() takes another when asked

_TRIAL_KEYS = ("variant", "seed")
_STATISTICS_COLUMNS = ["variant", "figure", "n", "mean", "std", "ci_low", "ci_high",
                       "excluded", "missing"]


def describe(values, confidence: float = CONFIDENCE) -> dict:
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
        >>> describe([1.0, 2.0, 3.0])["mean"]
        2.0
    """
    if not 0 < confidence < 1:
        raise ValueError(
            f"Expected a confidence level in (0, 1), e.g. 0.95. Received: {confidence!r}"
        )
    array = np.asarray(values, dtype=float).ravel()
    if not np.isfinite(array).all():
        raise ValueError(
            "describe() needs finite values; drop missing ones first and report how many. "
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
        >>> table = variant_statistics(results.trials, ["test_accuracy"],
        ...                            [v.label for v in results.config.variants])
        >>> table[["variant", "mean", "ci_low", "ci_high"]]
    """
    figures = [figures] if isinstance(figures, str) else list(figures)
    require_columns(trials, "trials", [*_TRIAL_KEYS, "status", *figures])
    rows = []
    for variant in _variant_order(trials, variants):
        own = trials[trials["variant"] == variant]
        complete = own[own["status"] == "complete"]
        for figure in figures:
            values = complete[figure].to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            rows.append({
                "variant": variant,
                "figure": figure,
                **describe(finite),
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
    have the figure form a pair.

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
    require_columns(trials, "trials", [*_TRIAL_KEYS, "status", figure])
    present = list(dict.fromkeys(trials["variant"]))
    if baseline not in present:
        raise ValueError(
            f"The baseline variant {baseline!r} has no trials in the table. Expected one of the "
            f"variants present: {present}. Received: baseline={baseline!r}"
        )
    _check_unique_trials(trials)
    usable = trials[(trials["status"] == "complete") & np.isfinite(trials[figure].astype(float))]
    base = usable.loc[usable["variant"] == baseline, ["seed", figure]]
    rows = []
    for variant in _variant_order(trials, variants):
        if variant == baseline:
            continue
        own = usable.loc[usable["variant"] == variant, ["seed", figure]]
        pairs = own.merge(base, on="seed", suffixes=("", "_baseline"))
        summary = describe(pairs[figure] - pairs[f"{figure}_baseline"])
        rows.append({
            "variant": variant, "baseline": baseline, "figure": figure,
            "n_pairs": summary["n"], "mean_difference": summary["mean"],
            "std_difference": summary["std"],
            "ci_low": summary["ci_low"], "ci_high": summary["ci_high"],
        })
    return pd.DataFrame(rows, columns=["variant", "baseline", "figure", "n_pairs",
                                       "mean_difference", "std_difference", "ci_low", "ci_high"])


def kaplan_meier_median(durations, reached) -> float:
    """Kaplan-Meier median of the epochs needed to reach a target, with censoring.

    A trial that reached the target is an event at its epochs-to-target; one that did not is
    right-censored at its last epoch (it might have reached later). The survival estimate is
    `S(t) = prod over event times t_i <= t of (1 - d_i / n_i)`, with d_i trials reaching at t_i
    and n_i trials still at risk (durations >= t_i; a trial censored at t_i is still at risk
    there). The median is the smallest duration t with `S(t) <= 0.5`. Without censoring this is
    the ordinary median for odd counts and the lower of the two middle values for even counts.

    Args:
        durations: Per trial, epochs to the target if reached, else the epochs run.
        reached: Per trial, whether the target was reached (booleans).

    Returns:
        The median as a float, or `math.inf` when the estimate never drops to 0.5 or below
        (the median is not reached: it lies beyond the longest trial).

    Raises:
        ValueError: If the inputs are empty, of different lengths, contain NaN or negative
            durations, or `reached` is not boolean.

    Example:
        >>> kaplan_meier_median([3, 5, 10, 10], [True, True, False, False])
        5.0
    """
    durations, reached = _check_survival_inputs(durations, reached)
    survival = 1.0
    for time in np.unique(durations[reached]):
        at_risk = np.count_nonzero(durations >= time)
        events = np.count_nonzero((durations == time) & reached)
        survival *= 1 - events / at_risk
        if survival <= 0.5:
            return float(time)
    return math.inf


def target_statistics(
    targets: pd.DataFrame, trials: pd.DataFrame, variants: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per variant and target: how many seeds reached it, and how fast, without dropping any.

    Every trial counts, diverged or not: a trial that reached the target before it diverged
    did reach it. Unreached trials enter the Kaplan-Meier median censored at their
    `epochs_run` from the trials table; `mean_epochs_reached` averages only the seeds that
    reached the target, and `reached` / `seeds` says how many those are.

    Args:
        targets: The targets table (`load_results(...).targets`).
        trials: The trials table, for each trial's `epochs_run`.
        variants: Variant labels in the order wanted; None takes the targets table's order.
            A label with no trials is left out (there is nothing to estimate).

    Returns:
        One row per (variant, target), targets in table order, with columns `variant`,
        `target`, `seeds`, `reached`, `mean_epochs_reached` (NaN when none reached),
        `km_median_epochs` (inf when not reached), `lower_bound` (True when the median is not
        reached: read it as "> epochs_observed epochs") and `epochs_observed` (the longest
        trial's `epochs_run`).

    Raises:
        ValueError: If a column is missing or a target row has no trial in the trials table.
    """
    require_columns(targets, "targets", [*_TRIAL_KEYS, "target", "reached", "epochs_to_target"])
    require_columns(trials, "trials", [*_TRIAL_KEYS, "epochs_run"])
    _check_unique_trials(trials)
    table = targets.merge(trials[[*_TRIAL_KEYS, "epochs_run"]], on=list(_TRIAL_KEYS), how="left")
    orphans = table.loc[table["epochs_run"].isna(), list(_TRIAL_KEYS)].drop_duplicates()
    if len(orphans):
        raise ValueError(
            "Every row of the targets table needs its trial in the trials table (for its "
            f"epochs_run). Received target rows without a trial: {orphans.to_dict('records')}"
        )
    rows = []
    for variant in _variant_order(targets, variants):
        own = table[table["variant"] == variant]
        for target in dict.fromkeys(own["target"]):
            rows.append(_target_row(variant, target, own[own["target"] == target]))
    return pd.DataFrame(rows, columns=["variant", "target", "seeds", "reached",
                                       "mean_epochs_reached", "km_median_epochs",
                                       "lower_bound", "epochs_observed"])


def _target_row(variant: str, target: float, rows: pd.DataFrame) -> dict:
    """One row of `target_statistics` from the merged target rows of one variant."""
    reached = rows["reached"].astype(bool).to_numpy()
    durations = np.where(reached, rows["epochs_to_target"], rows["epochs_run"]).astype(float)
    median = kaplan_meier_median(durations, reached)
    return {
        "variant": variant,
        "target": float(target),
        "seeds": int(len(rows)),
        "reached": int(reached.sum()),
        "mean_epochs_reached": float(durations[reached].mean()) if reached.any() else math.nan,
        "km_median_epochs": median,
        "lower_bound": math.isinf(median),
        "epochs_observed": int(rows["epochs_run"].max()),
    }


def _check_survival_inputs(durations, reached) -> tuple[np.ndarray, np.ndarray]:
    """Validated float durations and boolean reached flags of equal, non-zero length."""
    durations = np.asarray(durations, dtype=float).ravel()
    flags = np.asarray(reached).ravel()
    if durations.size == 0 or durations.size != flags.size:
        raise ValueError(
            "Expected one duration and one reached flag per trial, at least one trial. "
            f"Received {durations.size} durations and {flags.size} flags."
        )
    if flags.dtype != bool:
        raise ValueError(
            f"Expected `reached` as booleans. Received dtype {flags.dtype}: {flags.tolist()}"
        )
    if np.isnan(durations).any() or (durations < 0).any():
        raise ValueError(
            "Expected non-negative durations (epochs to target, or epochs run when not reached). "
            f"Received: {durations.tolist()}"
        )
    return durations, flags


def _variant_order(table: pd.DataFrame, variants: Sequence[str] | None) -> list[str]:
    """The labels asked for, or the table's labels in order of first appearance."""
    return list(dict.fromkeys(table["variant"])) if variants is None else list(variants)


def _check_unique_trials(trials: pd.DataFrame) -> None:
    """Raises if a (variant, seed) appears twice in the trials table."""
    duplicated = trials.duplicated(list(_TRIAL_KEYS), keep=False)
    if duplicated.any():
        raise ValueError(
            "Expected one row per (variant, seed) in the trials table. Received duplicates: "
            f"{trials.loc[duplicated, list(_TRIAL_KEYS)].drop_duplicates().to_dict('records')}"
        )
