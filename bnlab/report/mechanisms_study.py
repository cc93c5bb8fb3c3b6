"""The report section on why BN helps, from the run's probes (`probes` in its config), registered as a
report study; `bnlab.report.write` imports this module.

One part per probe the run recorded: gradients at initialization (Yang et al. 2019), the loss
landscape and internal covariate shift (Santurkar et al. 2018) and the kernels' norms and effective
learning rates (van Laarhoven 2017). The claims the config declares on the probes' figures get their
verdicts in the report's claims section, like every other claim.
"""

from __future__ import annotations

from bnlab.analysis.mechanisms import (
    LANDSCAPE_COLUMNS,
    YANG_RELU_GROWTH,
    growth_table,
    plot_init_gradients,
    plot_kernel_norms,
    plot_probe,
    probe_figures_table,
)
from bnlab.report.studies import Section, register_study
from bnlab.runs.results import RunResults

_INIT = (
    "The squared norm of the loss gradient with respect to each kernel, at initialization, on one training "
    "batch in training mode. Yang et al. 2019 (\"A mean field theory of batch normalization\") predict that "
    "with BN before ReLU it grows geometrically toward the input, by pi/(pi-1) = {yang:.3f} per layer for wide "
    "layers and large batches, and stays level without BN at He initialization. `growth` is exp(-slope) of a "
    "least-squares line through log(squared norm) against depth over the kernels between hidden layers (the "
    "first and the last kernel excluded), per trial; mean over seeds with a {confidence:.0%} t interval.")
_LANDSCAPE = (
    "Santurkar et al. 2018 (sec. 3.1, Fig. 4): at each recorded step, on a fixed training batch in training "
    "mode, the loss and its gradient at w - eta g for several step sizes eta along the gradient g. "
    "`loss_range`: the largest minus the smallest loss; `gradient_predictiveness`: the largest change of the "
    "gradient; `beta_smoothness`: the largest change of the gradient per distance moved. Lower is smoother.")
_SHIFT = (
    "Santurkar et al. 2018 (sec. 2.2, Definition 2.1): a layer's gradient before and after the layers below "
    "it take one plain gradient step on the same batch; `l2` is the distance between the two (0: no shift), "
    "`cosine` their cosine (1: no shift). Mean over the layers and seeds.")
_KERNELS = (
    "van Laarhoven 2017: a kernel that feeds BN is scale invariant, so its effective learning rate is "
    "lr/|W|^2 and weight decay, which shrinks |W|, raises it. Kernels feeding BN (all kernels for a variant "
    "without BN): norm, lr/|W|^2 and the angle the kernel turns between two batch ends (degrees), mean over "
    "kernels and seeds.")


def _applies(results: RunResults) -> bool:
    return bool(results.probes)


@register_study("mechanisms", applies=_applies)
def mechanisms_section(results: RunResults, baseline: str) -> Section:
    """One part per recorded probe: its explanation, figure and the seed means of its figures."""
    parts, figures = ["## Why BN helps: the probes"], {}
    confidence = results.config.analysis.confidence
    if "init_gradients" in results.probes:
        figures["init_gradients.png"] = plot_init_gradients(results)
        parts += [_INIT.format(yang=YANG_RELU_GROWTH, confidence=confidence),
                  growth_table(results, confidence).to_markdown(index=False, floatfmt=".3f"),
                  "![gradients at initialization](figures/init_gradients.png)"]
    if "landscape" in results.probes:
        figures["landscape.png"] = plot_probe(results, "landscape", LANDSCAPE_COLUMNS)
        parts += [_LANDSCAPE, "![loss landscape](figures/landscape.png)"]
    if "covariate_shift" in results.probes:
        figures["covariate_shift.png"] = plot_probe(results, "covariate_shift", ("l2", "cosine"), log=False)
        parts += [_SHIFT, "![internal covariate shift](figures/covariate_shift.png)"]
    if "kernel_norms" in results.probes:
        figures["kernel_norms.png"] = plot_kernel_norms(results)
        parts += [_KERNELS, "![kernel norms](figures/kernel_norms.png)"]
    summary = probe_figures_table(results)
    if not summary.empty:
        parts.append("The probes' per-trial figures (seed means), which claims compare:\n\n"
                     + summary.to_markdown(index=False, floatfmt=".4g"))
    return Section("\n\n".join(parts), figures)
