"""Report sections for studies beyond BN placement: Figure 1 of Ioffe & Szegedy, learning-rate sweeps.

Each builder returns a `Section` (Markdown plus the figures it references) when the run holds
what it needs, else None; `bnlab.report.write` writes the figures and places the sections first.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
from matplotlib.figure import Figure

from bnlab.analysis import dynamics, sweep
from bnlab.config import grid_column
from bnlab.runs.results import RunResults


@dataclasses.dataclass(frozen=True)
class Section:
    """A report section: its Markdown and the figures (file name -> Figure) it shows."""

    markdown: str
    figures: dict[str, Figure]


def study_sections(results: RunResults, baseline: str) -> list[Section]:
    """The sections this run supports, in report order."""
    built = [dynamics_section(results, baseline), sweep_section(results, baseline)]
    return [section for section in built if section is not None]


def _labels(results: RunResults) -> list[str]:
    present = set(results.trials["variant"])
    return [v.label for v in results.config.variants if v.label in present]


def _baseline_and_treated(results: RunResults, baseline: str) -> tuple[str, list[str]] | None:
    """The variant without BN and those with it, by registry name when `baseline` is not a label."""
    labels = _labels(results)
    names = {v.label: v.name for v in results.config.variants}
    base = baseline if baseline in labels else next((label for label in labels if names[label] == "no_bn"), None)
    if base is None or len(labels) < 2:
        return None
    return base, [label for label in labels if label != base]


def dynamics_section(results: RunResults, baseline: str) -> Section | None:
    """Figure 1 of Ioffe & Szegedy 2015 and its two claims, for a run with an activation probe."""
    pair = _baseline_and_treated(results, baseline)
    if results.activations.empty or "step" not in results.epochs or pair is None:
        return None
    base, treated = pair
    labels = [base, *treated]
    probe = results.config.activation_probe
    windows = dynamics.drift_windows(results.activations)
    ylabel = "test accuracy" if results.config.dataset.validation == "test" else "validation accuracy"
    seed, unit = results.config.seeds[0], probe.units[0]
    # claim 1 (higher test accuracy sooner) is a declared claim of the config: see the Claims section
    verdicts = [dynamics.drift_verdict(windows, base, t) for t in treated]
    figures = {
        "accuracy_by_step.png": dynamics.plot_accuracy_by_step(results.epochs, labels, ylabel),
        "activation_percentiles.png": dynamics.plot_activation_percentiles(results.activations, labels, unit, seed),
    }
    columns = ["median_shift", "spread", "spread_change", "relative_median_shift", "relative_spread_change"]
    table = pd.concat({f"from step {start:,}": drift.groupby("variant", sort=False)[columns].median()
                       for start, drift in windows.items()}, names=["window", "variant"])
    markdown = "\n\n".join([
        "## Ioffe & Szegedy 2015, Figure 1: training dynamics without and with BN",
        "\n".join(f"- {line}" for line in verdicts),
        f"![{ylabel} against steps](figures/accuracy_by_step.png)\n\n*(a) {ylabel.capitalize()} "
        "against training steps: mean over seeds, band from the lowest to the highest seed.*",
        f"![percentiles](figures/activation_percentiles.png)\n\n*(b, c) The 15th, 50th and 85th "
        f"percentiles of the input to the sigmoid of unit {unit} of hidden layer {probe.hidden_layer}, "
        f"over {probe.probe_examples} fixed validation images in inference mode, seed {seed}. Left of "
        "the dashed line: the settling period left out of the drift figures.*",
        f"Drift of the probed units' input (medians over {len(probe.units)} units x "
        f"{results.trials['seed'].nunique()} seeds): `median_shift` is the range of a unit's median "
        "over the window, `spread` the mean 15th-85th percentile distance, `spread_change` the range "
        "of that distance; `relative_*` divide by the spread. Step 0 is left out (BN's moving "
        "averages are not yet estimated), and the second window also leaves out the first "
        f"{dynamics.SETTLING_FRACTION:.0%} of training:\n\n"
        + table.reset_index().to_markdown(index=False, floatfmt=".3f"),
    ])
    return Section(markdown, figures)


def sweep_section(results: RunResults, baseline: str) -> Section | None:
    """Learning-rate robustness, for a run whose grid includes the learning rate."""
    if "training.optimizer.learning_rate" not in results.config.grid:
        return None
    axis = grid_column("training.optimizer.learning_rate")
    base_labels = [v.label for v in results.config.variants]
    base = baseline if baseline in base_labels else base_labels[0]
    target = accuracy = min(results.config.targets)  # the target most trials reach says the most
    table = sweep.sweep_table(results.trials, results.targets, axis)
    epochs = int(results.trials["epochs_run"].max())
    figure = sweep.plot_learning_rate_sweep(table, axis, target, base_labels, never=epochs + 1)
    markdown = "\n\n".join([
        "## Learning-rate robustness",
        f"The claim (Santurkar et al. 2018): with BN the network tolerates much larger learning rates "
        f"and reaches targets sooner at them. Usable: no seed diverged and the mean final validation "
        f"accuracy is at least {accuracy:g}. Epochs to a target are averaged over all seeds, a seed "
        f"that never reached it counting as {epochs + 1} (one more than the {epochs} epochs run).",
        "\n".join(f"- {line}"
                  for line in sweep.robustness_verdict(table, axis, accuracy, results.config.targets, base)),
        "![learning-rate sweep](figures/learning_rate_sweep.png)\n\n*Final validation accuracy "
        f"(left) and mean epochs to {target:g} (right; a seed that never reached it counts as "
        f"{epochs + 1}) against the learning rate, per variant.*",
        "Per variant and learning rate (accuracy: mean of the seeds that did not diverge; epochs: "
        "mean of the seeds that reached the target):\n\n" + table.to_markdown(index=False, floatfmt=".4g"),
    ])
    return Section(markdown, {"learning_rate_sweep.png": figure})
