"""Report studies as a registry: each says what it needs from a run and writes its own section.

A study is an entry (`Study`): a name, `applies(results)` (does the run hold what the study needs:
an activation probe, a grid over the learning rate...) and `build(results, baseline)`, which returns
a `Section` (Markdown plus the figures it references) or None when the run lacks it for this
baseline. `study_sections` asks every registered study in registration order; the report places
the sections before its generic ones and `bnlab.report.write` saves their figures. No report code
branches on a study: a new one registers itself where it is defined.

Example:
    >>> @register_study("my_study", applies=lambda results: "my_column" in results.trials)
    ... def my_section(results, baseline):
    ...     return Section("## My study\n\nText.", {})
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator

import pandas as pd
from matplotlib.figure import Figure

from bnlab.analysis import dynamics, sweep
from bnlab.analysis.pairing import resolve_baseline, trial_labels
from bnlab.config import grid_column
from bnlab.report.findings import accuracy_set
from bnlab.runs.results import RunResults

_DEFAULT_ACTIVATION = "relu"  # build_mlp's (bnlab.models.builders), used when a variant does not override it
_LEARNING_RATE = "training.optimizer.learning_rate"  # the grid key of a learning-rate sweep


@dataclasses.dataclass(frozen=True)
class Section:
    """A report section: its Markdown and the figures (file name -> Figure) it shows."""

    markdown: str
    figures: dict[str, Figure]


@dataclasses.dataclass(frozen=True)
class Study:
    """A study the report can hold.

    Attributes:
        name: unique name in the registry, e.g. "ioffe2015_figure1".
        applies: whether a run holds what the study needs (called with the `RunResults`).
        build: the study's `Section` for a run and a baseline, or None when the run lacks it for
            that baseline (called only when `applies` is true).
    """

    name: str
    applies: Callable[[RunResults], bool]
    build: Callable[[RunResults, str], Section | None]


_STUDIES: dict[str, Study] = {}


def add_study(study: Study) -> Study:
    """Registers `study` after those already registered (the report's order).

    Raises:
        ValueError: If a study of that name is registered already.
    """
    if study.name in _STUDIES:
        raise ValueError(f"A study named {study.name!r} is registered already; unregister it first "
                         f"(unregister_study) or choose another name. Registered: {', '.join(_STUDIES)}.")
    _STUDIES[study.name] = study
    return study


def register_study(name: str, applies: Callable[[RunResults], bool]):
    """Decorator: registers the decorated `build(results, baseline)` function as the study `name`.

    Args:
        name: the study's unique name.
        applies: whether a run holds what the study needs.

    Returns:
        The decorator; it returns the function unchanged.
    """
    def decorator(build: Callable[[RunResults, str], Section | None]):
        add_study(Study(name, applies, build))
        return build
    return decorator


def unregister_study(name: str) -> Study:
    """Removes the study `name` from the registry and returns it.

    Raises:
        ValueError: If no study of that name is registered; the message lists those that are.
    """
    if name not in _STUDIES:
        raise ValueError(f"Unknown study {name!r}. Available: {', '.join(_STUDIES) or 'none'}.")
    return _STUDIES.pop(name)


@contextlib.contextmanager
def registered_study(study: Study) -> Iterator[Study]:
    """Registers `study` for the duration of a `with` block (tests), then removes it again."""
    add_study(study)
    try:
        yield study
    finally:
        unregister_study(study.name)


def list_studies() -> list[str]:
    """The registered studies' names, in report order."""
    return list(_STUDIES)


def study_sections(results: RunResults, baseline: str) -> list[Section]:
    """The sections of every registered study that applies to this run, in registration order."""
    built = [study.build(results, baseline) for study in _STUDIES.values() if study.applies(results)]
    return [section for section in built if section is not None]


def _has_activation_probe(results: RunResults) -> bool:
    """A run in step mode with an activation probe: Figure 1 of Ioffe & Szegedy."""
    return not results.activations.empty and "step" in results.epochs


def _baseline_and_treated(results: RunResults, baseline: str) -> tuple[str, list[str]] | None:
    """The variant without BN and those with it, by registry name when `baseline` is not a label."""
    labels = trial_labels(results)
    base = resolve_baseline(results, baseline)
    if base not in labels:
        names = {v.label: v.name for v in results.config.trial_variants}
        base = next((label for label in labels if names[label] == "no_bn"), None)
    if base is None or len(labels) < 2:
        return None
    return base, [label for label in labels if label != base]


def _nonlinearity(results: RunResults, labels: list[str]) -> str:
    """The activation whose input the probe watched, from the variants' `activation` overrides."""
    overrides = {v.label: v.overrides for v in results.config.trial_variants}
    names = [overrides[label].get("activation", _DEFAULT_ACTIVATION) for label in labels]
    return " or ".join(dict.fromkeys(name if isinstance(name, str) else "nonlinearity" for name in names))


@register_study("ioffe2015_figure1", applies=_has_activation_probe)
def dynamics_section(results: RunResults, baseline: str) -> Section | None:
    """Figure 1 of Ioffe & Szegedy 2015 and its two claims, for a run with an activation probe."""
    pair = _baseline_and_treated(results, baseline)
    if pair is None:
        return None
    base, treated = pair
    labels = [base, *treated]
    probe = results.config.activation_probe
    windows = dynamics.drift_windows(results.activations)
    ylabel = f"{accuracy_set(results)} accuracy"
    seed, unit, activation = results.config.seeds[0], probe.units[0], _nonlinearity(results, labels)
    # claim 1 (higher test accuracy sooner) is a declared claim of the config: see the Claims section
    verdicts = [dynamics.drift_verdict(windows, base, t) for t in treated]
    figures = {
        "accuracy_by_step.png": dynamics.plot_accuracy_by_step(results.epochs, labels, ylabel),
        "activation_percentiles.png": dynamics.plot_activation_percentiles(results.activations, labels, unit, seed,
                                                                           activation),
    }
    markdown = "\n\n".join([
        "## Ioffe & Szegedy 2015, Figure 1: training dynamics without and with BN",
        "\n".join(f"- {line}" for line in verdicts),
        f"![{ylabel} against steps](figures/accuracy_by_step.png)\n\n*(a) {ylabel.capitalize()} "
        "against training steps: mean over seeds, band from the lowest to the highest seed.*",
        f"![percentiles](figures/activation_percentiles.png)\n\n*(b, c) The 15th, 50th and 85th "
        f"percentiles of the input to the {activation} of unit {unit} of hidden layer {probe.hidden_layer}, "
        f"over {probe.probe_examples} fixed validation images in inference mode, seed {seed}. Left of "
        "the dashed line: the settling period left out of the drift figures.*",
        _drift_markdown(results, windows),
    ])
    return Section(markdown, figures)


def _drift_markdown(results: RunResults, windows: dict[int, pd.DataFrame]) -> str:
    """The drift figures' table, medians over probed units and seeds per window and variant."""
    columns = ["median_shift", "spread", "spread_change", "relative_median_shift", "relative_spread_change"]
    table = pd.concat({f"from step {start:,}": drift.groupby("variant", sort=False)[columns].median()
                       for start, drift in windows.items()}, names=["window", "variant"])
    return (
        f"Drift of the probed units' input (medians over {len(results.config.activation_probe.units)} units x "
        f"{results.trials['seed'].nunique()} seeds): `median_shift` is the range of a unit's median "
        "over the window, `spread` the mean 15th-85th percentile distance, `spread_change` the range "
        "of that distance; `relative_*` divide by the spread. Step 0 is left out (BN's moving "
        "averages are not yet estimated), and the second window also leaves out the first "
        f"{dynamics.SETTLING_FRACTION:.0%} of training:\n\n"
        + table.reset_index().to_markdown(index=False, floatfmt=".3f")
    )


def _sweeps_learning_rate(results: RunResults) -> bool:
    """A run whose grid includes the learning rate."""
    return _LEARNING_RATE in results.config.grid


@register_study("learning_rate_sweep", applies=_sweeps_learning_rate)
def sweep_section(results: RunResults, baseline: str) -> Section:
    """Learning-rate robustness, for a run whose grid includes the learning rate."""
    axis = grid_column(_LEARNING_RATE)
    base_labels = [v.label for v in results.config.variants]  # the sweep's lines: one per config variant
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
