"""The small-batch study's report section (Wu & He 2018, Fig. 1), registered as a report study.

It applies to a run that trains a batch-statistics normalizer (BN, ghost BN, batch renorm) at two
or more normalization batches; `bnlab.report.write` imports this module so that it registers.
"""

from __future__ import annotations

from bnlab.analysis.small_batch import (
    plot_small_batch,
    small_batch_table,
    variance_ratio_table,
    varies_normalization_batch,
)
from bnlab.report.studies import Section, register_study
from bnlab.runs.results import RunResults

_FIGURE = "small_batch.png"


@register_study("small_batch", applies=varies_normalization_batch)
def small_batch_section(results: RunResults, baseline: str) -> Section:
    """Test error against the normalization batch, one line per normalizer, with its table."""
    confidence = results.config.analysis.confidence
    table = small_batch_table(results, confidence)
    shown = table.assign(normalization_batch=table["normalization_batch"].map(
        lambda g: "any (none)" if g != g else f"{g:g}"))
    for column in ("test_error", "ci_low", "ci_high"):
        shown[column] = 100 * shown[column]
    batch = results.config.training.batch_size
    markdown = "\n\n".join([
        "## Small normalization batches (Wu & He 2018, Fig. 1)",
        "The claim (Wu & He 2018, Fig. 1; Ioffe 2017, sec. 1): BN's error grows as the batch it takes "
        "statistics over shrinks, while normalizers that take no statistics over the batch (layer, "
        f"group) do not depend on it. Here the optimizer batch stays {batch} and only the normalization "
        "batch g changes (ghost slices of g examples), so layer and group normalization train the same "
        "network at every g: they are drawn flat, and the comparisons that test something are theirs "
        "against BN at each g. The declared claims' verdicts are in the Claims section.",
        f"![test error against the normalization batch](figures/{_FIGURE})\n\n*Test error (%) against the "
        f"normalization batch g, mean over seeds with {confidence:.0%} t intervals; dashed: normalizers "
        "that take no batch statistics.*",
        "Test error (%) per variant:\n\n" + shown.to_markdown(index=False, floatfmt=".2f"),
        *_variance_ratios(results),
    ])
    return Section(markdown, {_FIGURE: plot_small_batch(table, confidence)})


def _variance_ratios(results: RunResults) -> list[str]:
    """The moving variance against the population's per g, when the run recorded the discrepancy table."""
    table = variance_ratio_table(results)
    if table.empty:
        return []
    return ["Why inference differs more at small g: the moving variance the network is evaluated with, over "
            "the population variance of each BN layer's inputs at the end of training (median over layers, "
            "units and seeds), against (g-1)/g, the bias of the mean of biased variances of g examples:\n\n"
            + table.to_markdown(index=False, floatfmt=".3f")]
