"""The report's headline sentences, each written from the run's numbers.

Every sentence says which set (validation or test), which unit (epochs, or optimizer steps in
step mode) and how many seeds stand behind it. Pure functions of `RunResults` and the report's
`comparisons.Evaluation`; no Keras.
"""

from __future__ import annotations

import math

import pandas as pd

from bnlab.analysis import stats, survival
from bnlab.analysis.comparisons import Evaluation
from bnlab.analysis.pairing import baseline_pairs, resolve_baseline, trial_labels
from bnlab.common.columns import progress_unit
from bnlab.runs.results import RunResults


def accuracy_set(results: RunResults) -> str:
    """The set `val_accuracy` is measured on: "test" when the config validates on it."""
    return "test" if results.config.dataset.validation == "test" else "validation"


def target_table(results: RunResults) -> pd.DataFrame:
    """`survival.target_statistics` of the run, in its own unit, variants in report order."""
    return survival.target_statistics(results.targets, results.trials, trial_labels(results),
                                      progress_unit(results.config))


def count_text(value: float) -> str:
    """A median or bound in epochs or steps: 4, 14,500, '> 15'."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def median_text(row) -> str:
    """A target row's Kaplan-Meier median: '> N' when not reached within the N run."""
    return f"> {count_text(row['epochs_observed'])}" if row["lower_bound"] else count_text(row["km_median_epochs"])


def median_interval_text(row) -> str:
    """The median's 95% interval, as '[low, high]' ('inf' when the upper end was not reached)."""
    low, high = row["km_ci_low"], row["km_ci_high"]
    if pd.isna(low):
        return ""
    return f" [{count_text(low)}, {'inf' if math.isinf(high) else count_text(high)}]"


def verdict_text(row) -> str:
    """A comparison's verdict in words, with the margin it used when it says equivalent."""
    if row["verdict"] == "equivalent":
        return f"equivalent within ±{row['margin']:g}"
    return row["verdict"]


def findings(results: RunResults, baseline: str, evaluation: Evaluation) -> list[str]:
    """A few sentences generated from the numbers: speed to target, accuracy, cost, gap, caveats."""
    lines = [target_finding(results), accuracy_finding(results, baseline, evaluation),
             cost_finding(results, baseline), gap_finding(results)]
    diverged = results.trials[results.trials["status"] != "complete"]
    if len(diverged):
        names = ", ".join(f"{r.variant} seed {r.seed}" for r in diverged.itertuples())
        lines.append(f"{len(diverged)} trial(s) diverged: {names}. They are left out of the per-variant means "
                     "and count with their recorded figures in the paired comparisons and claims; a diverged "
                     "seed that had not reached a target never does.")
    if len(results.config.seeds) < 3:
        lines.append("With fewer than 3 seeds the intervals are wide or missing: treat these "
                     "sentences as a first look, not a result.")
    training = results.config.training
    if training.step_mode:
        lines.append(f"This run counts optimizer steps: an evaluation every {training.eval_every_steps:,} steps; "
                     "epoch seconds are the training seconds between two evaluations.")
    return [line for line in lines if line]


def target_finding(results: RunResults) -> str:
    """The highest target whose median some variant reached, and who reached it first."""
    table = target_table(results)
    missed = []
    for target in sorted(results.config.targets, reverse=True):
        rows = table[table["target"] == target]
        if rows["lower_bound"].all():
            missed.append(f"{target:.1%}")
            continue
        prefix = f"No variant's median reached {', '.join(missed)} within the run. " if missed else ""
        return prefix + first_to_target(results, rows, target)
    return f"No variant's median reached any target ({', '.join(missed)}) within the run."


def first_to_target(results: RunResults, rows: pd.DataFrame, target: float) -> str:
    """Who reaches `target` first: the lowest Kaplan-Meier median, then more seeds reaching, then
    the lower mean over all seeds (an unreached seed counting past the run), never the lucky seed."""
    ranked = rows[~rows["lower_bound"]].assign(_missing=lambda t: t["seeds"] - t["reached"])
    ranked = ranked.sort_values(["km_median_epochs", "_missing", "censored_mean"], kind="stable")
    best = ranked.iloc[0]
    tied = ranked[(ranked["km_median_epochs"] == best["km_median_epochs"])
                  & (ranked["_missing"] == best["_missing"]) & (ranked["censored_mean"] == best["censored_mean"])]
    what, counted = f"{target:.1%} {accuracy_set(results)} accuracy", progress_unit(results.config)
    others = "; ".join(f"{row['variant']} {median_text(row)} ({row['reached']}/{row['seeds']})"
                       for _, row in rows.iterrows() if row["variant"] not in set(tied["variant"]))
    others_text = f" Others, median {counted} (seeds that reached it): {others}." if others else ""
    median = f"median {count_text(best['km_median_epochs'])}{median_interval_text(best)} {counted}"
    if len(tied) > 1:
        names = " and ".join(f"**{v}**" for v in tied["variant"])
        return f"{names} tie for the first to reach {what}: {median} ({best['reached']}/{best['seeds']} seeds)."\
            + others_text
    return (f"**{best['variant']}** reaches {what} first: {median} (95% interval; {best['reached']}/{best['seeds']} "
            f"seeds reached it).{others_text}")


def accuracy_finding(results: RunResults, baseline: str, evaluation: Evaluation) -> str:
    """The highest mean test accuracy, and its paired comparison with its baseline."""
    table = stats.variant_statistics(results.trials, ["test_accuracy"], trial_labels(results)).dropna(subset=["mean"])
    if table.empty:
        return ""
    best = table.sort_values("mean", ascending=False, kind="stable").iloc[0]
    text = f"Highest mean test accuracy: **{best['variant']}**, {_interval_text(best)} (mean [95% CI] over seeds)."
    rows = evaluation.comparisons
    row = rows[(rows["variant"] == best["variant"]) & (rows["figure"] == "test_accuracy")]
    if len(row) and row.iloc[0]["n"] >= 2:
        row = row.iloc[0]
        text += (f" Against {row['baseline']}, paired by seed: {row['mean']:+.4f} [{row['ci_low']:+.4f}, "
                 f"{row['ci_high']:+.4f}], {verdict_text(row)} (Holm-adjusted p {row['p_difference_holm']:.2g}).")
    return text


def _interval_text(row) -> str:
    if pd.isna(row["ci_low"]):
        return f"{row['mean']:.4f}"
    return f"{row['mean']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]"


def cost_finding(results: RunResults, baseline: str) -> str:
    """Each variant's steady epoch time as a ratio to its baseline's."""
    complete = results.trials[results.trials["status"] == "complete"]
    means = complete.groupby("variant")["steady_epoch_seconds"].mean().dropna()
    pairs = [(v, base) for v, base in baseline_pairs(results, baseline) if v in means and base in means]
    if not pairs:
        return ""
    bases = list(dict.fromkeys(base for _, base in pairs))
    label = resolve_baseline(results, baseline)
    against = (f"{label} ({means[label]:.2f} s)" if bases == [label] else f"{label} at the same grid point")
    ratios = ", ".join(f"{v} {means[v] / means[base]:.2f}x" for v, base in pairs)
    return (f"Cost of an epoch against {against}: {ratios}. Epoch "
            "times come from one shared machine; trials are interleaved seed by seed so that "
            "load falls on all variants alike.")


def gap_finding(results: RunResults) -> str:
    """The smallest and the largest mean overfitting gap at the final evaluation."""
    order = trial_labels(results)
    table = stats.variant_statistics(results.trials, ["final_accuracy_gap"], order).dropna(subset=["mean"])
    if table.empty:
        return ""
    table = table.sort_values("mean", kind="stable")
    low, high = table.iloc[0], table.iloc[-1]
    return (f"Overfitting gap at the final evaluation (inference-mode training accuracy minus "
            f"{accuracy_set(results)} accuracy): smallest {low['variant']} {low['mean']:.4f}, largest "
            f"{high['variant']} {high['mean']:.4f}.")
