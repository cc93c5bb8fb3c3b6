"""The report section on BN's statistics at inference (Wu & Johnson 2021), registered as a report study.

It applies to a run that evaluated other modes than the moving averages (`evaluation.modes`) or that
recorded the discrepancy table (every run with BN layers); `bnlab.report.write` imports this module.
"""

from __future__ import annotations

from bnlab.analysis.population import discrepancy_summary, evaluated_modes, mode_table, plot_evaluation_modes
from bnlab.report.studies import Section, register_study
from bnlab.runs.results import RunResults

_FIGURE = "evaluation_modes.png"
_EXPLANATION = (
    "Keras evaluates a BN network with exponential moving averages of the training batches' statistics "
    "(momentum 0.99, the biased batch variance: (B-1)/B of the population's for batches of B). Wu & Johnson "
    "2021 (sec. 3) recompute the population statistics with the weights frozen (PreciseBN), and compare "
    "with normalizing each evaluated batch by its own statistics, as in training (sec. 4).")


def _applies(results: RunResults) -> bool:
    return bool(evaluated_modes(results)) or not results.discrepancy.empty


@register_study("population_statistics", applies=_applies)
def population_section(results: RunResults, baseline: str) -> Section:
    """Validation accuracy per evaluation mode and the moving statistics' discrepancy, per variant."""
    parts, figures = ["## BN's statistics at inference (Wu & Johnson 2021)", _EXPLANATION], {}
    modes = evaluated_modes(results)
    if modes:
        confidence = results.config.analysis.confidence
        parts.append(f"Final validation accuracy per evaluation mode (seed means), and each mode minus the moving "
                     f"averages (paired by seed, {confidence:.0%} t interval):\n\n"
                     + mode_table(results, confidence).to_markdown(index=False, floatfmt=".4f"))
        figures[_FIGURE] = plot_evaluation_modes(results)
        parts.append(f"![evaluation modes](figures/{_FIGURE})\n\n*Validation accuracy against the epoch under "
                     "each evaluation mode, mean over seeds, one panel per variant.*")
    summary = discrepancy_summary(results)
    if not summary.empty:
        parts.append(
            "Moving statistics against the population statistics of each BN layer's inputs at the end of "
            f"training (over the first {results.config.evaluation.precise_bn_examples:,} training images; "
            "medians over seeds). `mean_shift`: |moving mean - population mean| / population std over the "
            "channels; `variance_ratio`: moving variance / population variance (1 is exact):\n\n"
            + summary.to_markdown(index=False, floatfmt=".4g"))
    return Section("\n\n".join(parts), figures)
