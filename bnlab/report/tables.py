"""The report's verdict tables: declared claims, comparisons with the baseline, and steps or epochs to target.

Markdown from a run and its `comparisons.Evaluation`; every number is computed elsewhere
(`bnlab.analysis.comparisons`, `bnlab.analysis.survival`), so the tables only format and explain them.
"""

from __future__ import annotations

import pandas as pd

from bnlab.analysis.comparisons import Evaluation
from bnlab.common.columns import progress_unit, time_unit
from bnlab.config.metrics import ALL_PROBE_METRICS
from bnlab.report.findings import (
    accuracy_set,
    count_text,
    median_interval_text,
    median_text,
    target_table,
    verdict_text,
)
from bnlab.runs.results import RunResults

_FIGURE_NAMES = {"test_accuracy": "test acc", "steady_epoch_seconds": "epoch s", "final_accuracy_gap": "acc gap"}


def _number(value: float, digits: int = 4) -> str:
    return "n/a" if pd.isna(value) else f"{value:+,.{digits}f}"


def _p(value: float) -> str:
    if pd.isna(value):
        return "n/a"
    return "<0.0001" if value < 1e-4 else f"{value:.2g}"


def _holm(row) -> str:
    """The Holm-adjusted p of the difference test, and of the equivalence test when a margin was declared."""
    equivalence = "—" if pd.isna(row["p_equivalence_holm"]) else _p(row["p_equivalence_holm"])
    return f"{_p(row['p_difference_holm'])} / {equivalence}"


def _digits(figure: str) -> int:
    """Decimals to show: accuracies and gaps 4, seconds 2, epochs 1, steps none."""
    if time_unit(figure) == "steps":
        return 0
    if time_unit(figure) == "epochs":
        return 1
    return 4 if "accuracy" in figure or "gap" in figure else 2


def _difference(row) -> str:
    """The mean difference with its t interval, or for a sign-tested claim the median with the median's."""
    digits = _digits(row["figure"])
    number = _significant if row["figure"] in ALL_PROBE_METRICS else (lambda value: _number(value, digits))
    sign = row.get("test") == "sign"
    center = f"median {number(row['median'])}" if sign else number(row["mean"])
    if pd.isna(row["ci_low"]):
        return center + (" [too few seeds for an interval]" if sign and row["n"] >= 2 else "")
    return f"{center} [{number(row['ci_low'])}, {number(row['ci_high'])}]"


def _significant(value: float) -> str:
    """A probe's figure, whose scale varies from 1e-4 (an effective learning rate) to 1e2: 3 significant digits."""
    return "n/a" if pd.isna(value) else f"{value:+.3g}"


def _examples(row) -> tuple[str, str]:
    """(bootstrap interval over seeds x test images, pooled McNemar p with the seeds whose own p is
    below the level), or dashes without predictions."""
    if pd.isna(row["bootstrap_low"]):
        return "—", "—"
    return (f"[{row['bootstrap_low']:+.4f}, {row['bootstrap_high']:+.4f}]",
            f"{_p(row['mcnemar_p'])} ({row['mcnemar_seeds']} seeds)")


def _claim_baseline(row) -> str:
    """The baseline of a claim, with its own metric when that is not the claim's: 'bn_g4 (final_val_accuracy)'."""
    metric = row.get("baseline_metric")
    return f"{row['baseline']} ({metric})" if isinstance(metric, str) else row["baseline"]


def method_note(results: RunResults, evaluation: Evaluation) -> str:
    """How the verdicts were reached: tests, correction, margin, what counts."""
    analysis = results.config.analysis
    equivalence_tests = sum(int(table["p_equivalence"].notna().sum())
                            for table in (evaluation.comparisons, evaluation.claims) if len(table))
    margin = ("no equivalence margin is declared (analysis.equivalence_margin), so none is called equivalent"
              if not equivalence_tests else
              f"equivalence: two one-sided tests (TOST) within the margin shown, Holm-corrected over the "
              f"{equivalence_tests} such tests")
    return (f"Paired by seed: difference [{analysis.confidence:.0%} t interval over seeds]; p from the paired "
            f"t-test, Holm-corrected over the report's {evaluation.family} tests (claims and baseline table "
            f"together), level {analysis.alpha:g}; {margin}. Verdict: equivalent if the equivalence test passes, "
            "else better or worse if the difference test does, else inconclusive. For test accuracy the bootstrap "
            "interval resamples seeds and the 10,000 test images together (both sources of noise; the test set "
            "alone is worth about ±0.0027 at 98%; with few seeds it understates the seeds' share), and McNemar's "
            "exact test pools the seeds' discordant images (in brackets: seeds whose own test is significant). "
            "Every trial counts, a diverged one with the figures it recorded; a seed that never reached a target "
            "counts one evaluation past the end of its run.")


def claims_markdown(results: RunResults, evaluation: Evaluation) -> str:
    """The config's declared claims with their verdicts, or "" for a config without claims."""
    if evaluation.claims.empty:
        return ""
    lines = ["| claim | compared | metric | pairs | difference [95% CI] | bootstrap (seeds x images) | McNemar p "
             "| p (Holm): difference / equivalence | verdict |", "|---|---|---|---:|---|---|---:|---:|---|"]
    for _, row in evaluation.claims.iterrows():
        bootstrap, mcnemar = _examples(row)
        lines.append(f"| **{row['id']}**: {row['statement']} ({row['source']}) | {row['variant']} vs "
                     f"{_claim_baseline(row)}, expected {row['expect']} | {row['figure']}"
                     f" | {int(row['n'])} | {_difference(row)} | {bootstrap} | {mcnemar} | "
                     f"{_holm(row)} | **{row['claim_verdict']}** |")
    return "## Claims\n\n" + "\n".join(lines) + "\n\n" + method_note(results, evaluation) + _sign_note(evaluation)


def _sign_note(evaluation: Evaluation) -> str:
    """How a claim declared with `test: sign` was tested, when one was."""
    signed = evaluation.claims[evaluation.claims["test"] == "sign"]["id"].tolist()
    if not signed:
        return ""
    return (f" Claims declared with `test: sign` ({', '.join(signed)}): the median of the per-seed differences "
            "with its distribution-free interval (order statistics; none when the seeds are too few for the "
            "level), and the exact sign test's p (the seeds on each side of zero, binomial), in the same Holm "
            "family; the verdict follows the median's direction. For outcomes that split (a network that trains "
            "in some seeds and diverges in others) where a t interval is no guide.")


def comparison_markdown(results: RunResults, evaluation: Evaluation, baseline: str) -> str:
    """Each variant against the baseline (at its own grid point) on the compared figures, with a verdict."""
    table = evaluation.comparisons
    if table.empty:
        return f"No `{baseline}` trials in this run, so no comparison against it."
    lines = ["| variant | against | figure | pairs | difference [95% CI] | bootstrap (seeds x images) | McNemar p "
             "| p (Holm): difference / equivalence | margin | verdict |",
             "|---|---|---|---:|---|---|---:|---:|---:|---|"]
    for _, row in table.iterrows():
        bootstrap, mcnemar = _examples(row)
        margin = "—" if pd.isna(row["margin"]) else f"±{row['margin']:g}"
        lines.append(f"| {row['variant']} | {row['baseline']} | {_FIGURE_NAMES.get(row['figure'], row['figure'])} "
                     f"| {int(row['n'])} | {_difference(row)} | {bootstrap} | {mcnemar} | "
                     f"{_holm(row)} | {margin} | {verdict_text(row)} |")
    return "\n".join(lines) + "\n\n" + method_note(results, evaluation)


def targets_markdown(results: RunResults) -> str:
    """Per variant and target: seeds that reached it, the Kaplan-Meier median with its interval, the mean."""
    table = target_table(results)
    counted = progress_unit(results.config)
    lines = [f"| variant | target ({accuracy_set(results)} accuracy) | reached | never (diverged) | median {counted} "
             f"(Kaplan-Meier) [95% CI] | mean {counted}, seeds that reached |", "|---|---:|---:|---:|---:|---:|"]
    for _, row in table.iterrows():
        mean = row["mean_epochs_reached"]
        lines.append(
            f"| {row['variant']} | {row['target']:g} | {row['reached']}/{row['seeds']} | {row['never']} | "
            f"{median_text(row)}{'' if row['lower_bound'] else median_interval_text(row)} | "
            f"{'—' if pd.isna(mean) else count_text(round(mean, 1))} |"
        )
    note = (f"A seed that did not reach a target is censored at its last evaluation; a diverged seed that had not "
            f"reached it never does. With few seeds a median can rest on one seed: 'reached' says how many got "
            f"there. '> N': the median was not reached within the N {counted} run; the interval is the "
            "median's, from the survival curve's log-log band ('inf': its upper end was not reached).")
    return "\n".join(lines) + "\n\n" + note
