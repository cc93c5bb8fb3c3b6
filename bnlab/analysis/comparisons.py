"""Paired comparisons of trial variants in a run, each ending in a verdict, and the config's claims checked.

A comparison pairs two trial labels seed by seed on one per-trial figure and gives the mean
difference with its t interval over seeds, a paired t-test and, with a margin, an equivalence
test (TOST). For test accuracy it adds what the per-example predictions show: the exact McNemar
test pooled over seeds and a bootstrap interval that resamples seeds and test images together
(`bnlab.analysis.significance`), so that both sources of noise, the seeds and the 10,000-image test
set, are on the table. The p-values of all the comparisons in a report form one Holm family.
A claim with a `baseline_metric` pairs one figure of the variant with another of the baseline, often
the same variant (PreciseBN against moving-average accuracy); test predictions exist for the
moving averages only, so such a comparison has no per-example part.

Every trial counts with the figures it recorded, diverged ones included: a diverged trial's
accuracy is that of its diverged weights, and a seed that never reached a target counts as one
evaluation past the end of its run (`figure_values`). Leaving diverged seeds out would favour
the variant that diverges.

Example:
    >>> results = load_results("runs/placement")
    >>> tables = evaluate(results, [("bn_before_activation", "no_bn")], ["test_accuracy"])
    >>> tables.comparisons[["variant", "figure", "mean", "p_difference_holm", "verdict"]]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bnlab.analysis import significance
from bnlab.analysis.sign_test import paired_sign_test
from bnlab.analysis.verdicts import INCONCLUSIVE, claim_verdict
from bnlab.common.columns import is_time_to_target, time_unit, units_run
from bnlab.config import AnalysisConfig, ClaimConfig
from bnlab.config.metrics import ACCURACY_METRICS
from bnlab.runs.results import RunResults

_LOWER_IS_BETTER = ("final_accuracy_gap", "best_accuracy_gap", "final_loss_gap", "best_loss_gap",
                    "steady_epoch_seconds", "first_epoch_seconds", "total_train_seconds")  # and times to targets
_COLUMNS = ["variant", "baseline", "figure", "margin", "n", "mean", "std", "ci_low", "ci_high", "p_difference",
            "p_equivalence", "mcnemar_p", "mcnemar_seeds", "bootstrap_low", "bootstrap_high"]  # of `compare`'s rows
_CLAIM_COLUMNS = ["id", "statement", "source", "expect", "baseline_metric", "test"]  # a claim's own, then its row
_EXPECTED_OUTCOME = {"higher": "better", "lower": "worse", "equivalent": "equivalent"}  # on the raw direction


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The report's comparisons and claims, with Holm-adjusted p-values over both together.

    Attributes:
        comparisons: one row per (variant, baseline, figure): `variant`, `baseline`, `figure`, `n`
            (pairs), `mean`, `std`, `ci_low`, `ci_high` (t interval over seeds), `margin`,
            `p_difference`, `p_equivalence`, `mcnemar_p` (pooled over seeds), `mcnemar_seeds` (how many
            seeds' own McNemar p is below alpha, e.g. "4/5") and `bootstrap_low`/`bootstrap_high`
            (test accuracy with saved predictions, else NaN), the Holm-adjusted `p_difference_holm`
            and `p_equivalence_holm`, and `verdict` (better, worse, equivalent, inconclusive).
        claims: one row per declared claim: the same columns plus `id`, `statement`, `source`,
            `expect`, `baseline_metric` (the baseline's figure, None when it is `figure`), `test` (t or
            sign; a sign test's row has a `median`, and its interval is the median's) and
            `claim_verdict` (holds, does not hold, inconclusive).
        family: how many tests the Holm correction counted.
    """

    comparisons: pd.DataFrame
    claims: pd.DataFrame
    family: int


def higher_is_better(figure: str) -> bool:
    """Whether a larger value of a per-trial figure is the better outcome (accuracy, not epochs or gaps)."""
    return not (is_time_to_target(figure) or figure.startswith(_LOWER_IS_BETTER))


def figure_values(trials: pd.DataFrame, label: str, figure: str) -> pd.Series:
    """One trial label's figure per seed; an unreached target counts one evaluation past the run's end.

    `epochs_to_T` of a seed that never reached T is its `epochs_run` + 1; `steps_to_T` its
    `steps_run` plus one evaluation interval. A diverged seed stopped early and never reaches, so it
    counts from the longest run of the table instead. Other missing figures stay NaN (left out of pairs).
    """
    rows = trials[trials["variant"] == label]
    values = rows[figure].astype(float).to_numpy() if figure in rows else np.full(len(rows), np.nan)
    epochs_run, steps_run = units_run("epochs"), units_run("steps")
    if time_unit(figure) == "epochs":
        values = np.where(np.isnan(values), _run_length(trials, rows, epochs_run) + 1, values)
    elif time_unit(figure) == "steps" and steps_run in rows:
        interval = rows[steps_run] / rows[epochs_run]
        values = np.where(np.isnan(values), _run_length(trials, rows, steps_run) + interval, values)
    return pd.Series(values, index=rows["seed"].to_numpy(), dtype=float)


def _run_length(trials: pd.DataFrame, rows: pd.DataFrame, column: str) -> pd.Series:
    """Each trial's time run; a diverged trial stopped early and never reaches, so it counts the longest run."""
    return rows[column].where(rows["status"] != "diverged", trials[column].max())


def compare(results: RunResults, variant: str, baseline: str, figure: str, margin: float | None,
            analysis: AnalysisConfig, baseline_figure: str | None = None, test: str = "t") -> dict:
    """One comparison, `variant - baseline` paired by seed, before the Holm correction.

    `baseline_figure` is the baseline's figure when it is not `figure` (a claim's `baseline_metric`);
    the McNemar and bootstrap columns then stay empty, as test predictions are the moving averages' only.
    `test` "sign" tests the median difference instead of the mean (a claim's `test`): `ci_low` and
    `ci_high` are then the median's interval, and the row has a `median`.
    """
    against = baseline_figure or figure
    differences = paired_differences(results.trials, variant, baseline, figure, baseline_figure)
    paired = paired_sign_test if test == "sign" else significance.paired_test
    tested = paired(differences.to_numpy(), margin, analysis.confidence)
    row = {"variant": variant, "baseline": baseline, "figure": figure, "margin": margin, **tested,
           "mcnemar_p": math.nan, "mcnemar_seeds": "", "bootstrap_low": math.nan, "bootstrap_high": math.nan}
    if figure == "test_accuracy" and against == figure and results.predictions is not None:
        row.update(_example_level(results, variant, baseline, list(differences.index), analysis))
    return row


def paired_differences(trials: pd.DataFrame, variant: str, baseline: str, figure: str,
                       baseline_figure: str | None = None) -> pd.Series:
    """`variant - baseline` per seed (indexed by seed) on `figure` (the baseline's: `baseline_figure` when
    given), over the seeds where both have a value (`figure_values`): what `compare` tests."""
    pairs = pd.concat({"variant": figure_values(trials, variant, figure),
                       "baseline": figure_values(trials, baseline, baseline_figure or figure)}, axis=1).dropna()
    return pairs["variant"] - pairs["baseline"]


def _example_level(results: RunResults, variant: str, baseline: str, seeds: list, analysis) -> dict:
    """McNemar per seed and pooled, and the bootstrap over seeds x test images, from the predictions."""
    mine, theirs = results.predictions.correct(variant), results.predictions.correct(baseline)
    seeds = [seed for seed in seeds if seed in mine and seed in theirs]
    if not seeds:
        return {}
    mcnemar = significance.mcnemar_table({s: mine[s] for s in seeds}, {s: theirs[s] for s in seeds})
    differences = np.stack([mine[s].astype(float) - theirs[s].astype(float) for s in seeds])
    low, high = significance.paired_bootstrap_interval(differences, analysis.confidence,
                                                       analysis.bootstrap_resamples, seed=0, over="both")
    per_seed = mcnemar["p_value"].iloc[:-1]
    return {"mcnemar_p": float(mcnemar["p_value"].iloc[-1]),
            "mcnemar_seeds": f"{int((per_seed < analysis.alpha).sum())}/{len(per_seed)}",
            "bootstrap_low": low, "bootstrap_high": high}


def evaluate(results: RunResults, pairs: Sequence[tuple[str, str]], figures: Sequence[str]) -> Evaluation:
    """Every (variant, baseline) pair on every figure, and the config's claims, with one Holm family.

    Args:
        results: a run read by `load_results`.
        pairs: (variant label, baseline label) pairs to compare.
        figures: per-trial figures compared for each pair; the analysis margin applies to
            accuracy figures only (`bnlab.config.metrics.ACCURACY_METRICS`).

    Returns:
        An `Evaluation`.
    """
    analysis = results.config.analysis
    rows = [compare(results, variant, base, figure, _margin(figure, analysis), analysis)
            for figure in figures for variant, base in pairs]
    claims = [{**_claim_columns(claim), **compare(results, *claim.labels(), claim.metric, claim.margin, analysis,
                                                  claim.baseline_metric, claim.test)}
              for claim in results.config.claims]
    table = pd.DataFrame(rows + claims)
    table = table.reindex(columns=list(dict.fromkeys([*_CLAIM_COLUMNS, *_COLUMNS, *table.columns])))  # even when empty
    family = _add_holm(table)
    table["verdict"] = [_verdict(row, analysis.alpha) for _, row in table.iterrows()]
    comparisons = table.iloc[: len(rows)].drop(columns=_CLAIM_COLUMNS).reset_index(drop=True)
    claimed = table.iloc[len(rows):].reset_index(drop=True)
    claimed = claimed.assign(claim_verdict=[_claim_verdict(row, analysis.alpha) for _, row in claimed.iterrows()])
    return Evaluation(comparisons, claimed, family)


def _margin(figure: str, analysis: AnalysisConfig) -> float | None:
    return analysis.equivalence_margin if figure in ACCURACY_METRICS else None


def _claim_columns(claim: ClaimConfig) -> dict:
    return dict(zip(_CLAIM_COLUMNS, (claim.id, claim.statement, claim.source, claim.expect, claim.baseline_metric,
                                     claim.test)))


def _add_holm(table: pd.DataFrame) -> int:
    """Holm-adjusted columns over every test of the table; returns the family size."""
    table["p_difference_holm"] = significance.holm(table["p_difference"].to_numpy(dtype=float))
    table["p_equivalence_holm"] = significance.holm(table["p_equivalence"].to_numpy(dtype=float))
    return int(table["p_difference"].notna().sum())


def _verdict(row, alpha: float) -> str:
    if row["n"] < 2:
        return "inconclusive"
    return significance.verdict(row["p_difference_holm"], row["p_equivalence_holm"], row["mean"], alpha,
                                higher_is_better(row["figure"]))


def _claim_verdict(row, alpha: float) -> str:
    """holds, does not hold or inconclusive: the raw-direction outcome against the claim's `expect`."""
    if row["n"] < 2:
        return INCONCLUSIVE
    center = row["median"] if row["test"] == "sign" else row["mean"]  # the figure its test is about
    outcome = significance.verdict(row["p_difference_holm"], row["p_equivalence_holm"], center, alpha, True)
    if outcome == "inconclusive":
        return INCONCLUSIVE
    return claim_verdict([outcome == _EXPECTED_OUTCOME[row["expect"]]])


def seed_plan(results: RunResults, pairs: Sequence[tuple[str, str]], figure: str, effect: float,
              power: float = 0.8) -> pd.DataFrame:
    """How many seeds each paired comparison needs to detect `effect` with `power`, from this run's spread.

    Returns:
        One row per pair: `variant`, `baseline`, `figure`, `n` (pairs in this run), `std` (of the
        paired differences), `seeds_needed` (None when more than 1,000 or the spread is unknown).
    """
    rows = []
    alpha = results.config.analysis.alpha
    for variant, baseline in pairs:
        row = compare(results, variant, baseline, figure, None, results.config.analysis)
        std = row["std"]
        needed = (significance.seeds_for_power(std, effect, power, alpha)
                  if std > 0 and math.isfinite(std) else None)
        rows.append({"variant": variant, "baseline": baseline, "figure": figure, "n": row["n"], "std": std,
                     "seeds_needed": needed})
    return pd.DataFrame(rows, columns=["variant", "baseline", "figure", "n", "std", "seeds_needed"])
