"""Time to a target over seeds: Kaplan-Meier medians that count the seeds that never got there.

A seed that has not reached a target when its run ends might have reached it later: it is
right-censored, not dropped and not counted as reached. `kaplan_meier` estimates the median time
to the target from such data, with the interval from the log-log band of the survival function;
`target_statistics` gives it per variant and target from a run's tables (`load_results(...)`
`.targets` and `.trials`). Pure functions, no Keras.

Example:
    >>> kaplan_meier([3, 5, 10, 10], [True, True, False, False])["median"]
    5.0
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bnlab.analysis.pairing import table_order
from bnlab.analysis.stats import CONFIDENCE, check_confidence, check_unique_trials
from bnlab.common import columns
from bnlab.common.checks import require_columns
from bnlab.common.columns import TRIAL_KEYS

_TARGET_COLUMNS = ["variant", "target", "seeds", "reached", "mean_epochs_reached", "km_median_epochs",
                   "lower_bound", "epochs_observed", "km_ci_low", "km_ci_high", "never", "censored_mean"]
_HALF = 0.5 + 1e-9  # S(t) <= 1/2 up to float rounding: 12/24 computed as a product may exceed 0.5


def kaplan_meier(durations, reached, confidence: float = CONFIDENCE, never=None) -> dict:
    """Kaplan-Meier median of the time to reach a target, with a confidence interval.

    A trial that reached the target is an event at its duration; one that did not is
    right-censored at its duration (it might have reached later), unless `never` marks it as
    unable ever to reach (a diverged trial): that one stays at risk at every event time and is
    never an event. The survival function `S(t)` comes from `scipy.stats.ecdf`. The median is
    the smallest event time with `S(t) <= 0.5`, compared with a tolerance of 1e-9 so that an
    exact half (2 of 4 trials reached) counts although the product is computed in floats.
    Without censoring this is the ordinary median for odd counts and the lower of the two
    middle values for even counts.

    The interval inverts the pointwise log-log band of `S` (Greenwood variance): `ci_low` is
    the smallest event time where the band's lower curve is <= 0.5, `ci_high` the smallest
    where its upper curve is. The band is undefined where `S = 0`: there the lower curve is
    taken as 0 (it lies below `S`) and the upper as unknown, never below 0.5.

    Args:
        durations: Per trial, the time to the target if reached, else the time run.
        reached: Per trial, whether the target was reached (booleans).
        confidence: Two-sided confidence level of the interval, in (0, 1).
        never: Per trial, whether it can never reach the target (booleans); None marks none.

    Returns:
        A dict `{"median", "ci_low", "ci_high"}` of floats. `math.inf` means "not reached within
        the trials' durations". Without any event the median and `ci_high` are inf and `ci_low`
        is NaN: with no trial reaching, the band is undefined, so nothing bounds the median
        from below.

    Raises:
        ValueError: If the inputs are empty, of different lengths, contain NaN or negative
            durations, `reached` or `never` is not boolean, a trial is both reached and never,
            or `confidence` is not in (0, 1).

    Example:
        >>> kaplan_meier([3, 5, 10, 10], [True, True, False, False])["median"]
        5.0
    """
    check_confidence(confidence)
    durations, reached = _check_survival_inputs(durations, reached)
    never = _check_never(never, reached)
    if not reached.any():
        return {"median": math.inf, "ci_low": math.nan, "ci_high": math.inf}
    # CensoredData refuses infinite censoring times, so a trial that can never reach is
    # censored just past the longest duration: it is at risk at every event time and never an
    # event, exactly as if censored at +inf, so the estimate over the observed range is the same.
    censored = np.where(never, durations.max() + 1, durations)[~reached]
    survival = scipy_stats.ecdf(scipy_stats.CensoredData(uncensored=durations[reached], right=censored)).sf
    times = np.unique(durations[reached])
    estimate = survival.evaluate(times)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The confidence interval is undefined", RuntimeWarning)
        band = survival.confidence_interval(confidence, method="log-log")
    lower = np.where(estimate <= 0, 0.0, band.low.evaluate(times))
    return {
        "median": _first_time_at_half(times, estimate),
        "ci_low": _first_time_at_half(times, lower),
        "ci_high": _first_time_at_half(times, band.high.evaluate(times)),
    }


def kaplan_meier_median(durations, reached) -> float:
    """Kaplan-Meier median of the time to reach a target; `kaplan_meier(...)["median"]`.

    Args:
        durations: Per trial, the time to the target if reached, else the time run.
        reached: Per trial, whether the target was reached (booleans).

    Returns:
        The median as a float, or `math.inf` when the estimate never drops to 0.5 or below.

    Raises:
        ValueError: As `kaplan_meier`.

    Example:
        >>> kaplan_meier_median([3, 5, 10, 10], [True, True, False, False])
        5.0
    """
    return kaplan_meier(durations, reached)["median"]


def target_statistics(
    targets: pd.DataFrame, trials: pd.DataFrame, variants: Sequence[str] | None = None, unit: str = "epochs"
) -> pd.DataFrame:
    """Per variant and target: how many seeds reached it, and how fast, without dropping any.

    Every trial counts. A trial that reached the target before it diverged did reach it; a
    diverged trial that did not reach it never will, and enters the Kaplan-Meier estimate as
    always at risk and never an event (`kaplan_meier(never=...)`). Other unreached trials are
    censored at their time run. `mean_epochs_reached` averages only the seeds that reached the
    target (`reached` / `seeds` says how many); `censored_mean` averages all seeds, counting
    each unreached seed as `epochs_observed + 1` (one past the longest trial), so unreached seeds
    weigh in; when every trial ran `epochs_observed`, it is a lower bound on the true mean.

    Args:
        targets: The targets table (`load_results(...).targets`).
        trials: The trials table, for each trial's `status` and time run.
        variants: Variant labels in the order wanted; None takes the targets table's order.
            A label with no trials is left out (there is nothing to estimate).
        unit: "epochs" reads `epochs_to_target` and `epochs_run`; "steps" reads
            `steps_to_target` and `steps_run`. With "steps", the columns named `*_epochs*` and
            `epochs_observed` hold optimizer steps (the names stay so readers need not branch),
            and `censored_mean` counts an unreached seed as the longest `steps_run` + 1 step.

    Returns:
        One row per (variant, target), targets in table order, with columns `variant`,
        `target`, `seeds`, `reached`, `mean_epochs_reached` (NaN when none reached),
        `km_median_epochs` (inf when not reached), `lower_bound` (True when the median is not
        reached: read it as "> epochs_observed"), `epochs_observed` (the longest trial's time
        run), `km_ci_low` and `km_ci_high` (the median's 95% interval, see `kaplan_meier`),
        `never` (diverged seeds that did not reach) and `censored_mean`.

    Raises:
        ValueError: If `unit` is unknown, a column is missing, or a target row has no trial.
    """
    names = _unit_columns(unit)
    table = _merge_targets_and_trials(targets, trials, *names)
    rows = []
    for variant in table_order(targets, variants):
        own = table[table["variant"] == variant]
        for target in dict.fromkeys(own["target"]):
            rows.append(_target_row(variant, target, own[own["target"] == target], *names))
    return pd.DataFrame(rows, columns=_TARGET_COLUMNS)


def _unit_columns(unit: str) -> tuple[str, str]:
    """The (time to target, time run) column names of a unit; `units_run` rejects an unknown unit."""
    run = columns.units_run(unit)
    return columns.to_target(unit), run


def _merge_targets_and_trials(targets: pd.DataFrame, trials: pd.DataFrame, to_target: str, run: str):
    """The targets table with each trial's `status` and time run joined on (variant, seed)."""
    require_columns(targets, "targets", [*TRIAL_KEYS, "target", "reached", to_target])
    require_columns(trials, "trials", [*TRIAL_KEYS, "status", run])
    check_unique_trials(trials)
    table = targets.merge(trials[[*TRIAL_KEYS, "status", run]], on=list(TRIAL_KEYS), how="left")
    orphans = table.loc[table[run].isna(), list(TRIAL_KEYS)].drop_duplicates()
    if len(orphans):
        raise ValueError(
            f"Every row of the targets table needs its trial in the trials table (for its {run}). "
            f"Received target rows without a trial: {orphans.to_dict('records')}"
        )
    return table


def _target_row(variant: str, target: float, rows: pd.DataFrame, to_target: str, run: str) -> dict:
    """One row of `target_statistics` from the merged target rows of one variant."""
    reached = rows["reached"].astype(bool).to_numpy()
    runs = rows[run].to_numpy(dtype=float)
    durations = np.where(reached, rows[to_target].to_numpy(dtype=float), runs)
    never = ~reached & (rows["status"] == "diverged").to_numpy()
    estimate = kaplan_meier(durations, reached, never=never)
    observed = int(runs.max())
    return {
        "variant": variant,
        "target": float(target),
        "seeds": int(len(rows)),
        "reached": int(reached.sum()),
        "mean_epochs_reached": float(durations[reached].mean()) if reached.any() else math.nan,
        "km_median_epochs": estimate["median"],
        "lower_bound": math.isinf(estimate["median"]),
        "epochs_observed": observed,
        "km_ci_low": estimate["ci_low"],
        "km_ci_high": estimate["ci_high"],
        "never": int(never.sum()),
        "censored_mean": float(np.where(reached, durations, observed + 1).mean()),
    }


def _first_time_at_half(times: np.ndarray, curve: np.ndarray) -> float:
    """The first time where `curve` is at or below one half (NaN never is), else inf."""
    below = np.flatnonzero(curve <= _HALF)
    return float(times[below[0]]) if below.size else math.inf


def _check_never(never, reached: np.ndarray) -> np.ndarray:
    """Validated boolean `never` flags, one per trial, none on a trial that reached."""
    if never is None:
        return np.zeros_like(reached)
    flags = np.asarray(never).ravel()
    if flags.dtype != bool or flags.size != reached.size:
        raise ValueError(
            f"Expected `never` as {reached.size} booleans, one per trial. "
            f"Received {flags.size} values of dtype {flags.dtype}: {flags.tolist()}"
        )
    if (flags & reached).any():
        raise ValueError(
            "A trial that reached the target cannot be marked `never`. Received both at trials "
            f"{np.flatnonzero(flags & reached).tolist()}"
        )
    return flags


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
