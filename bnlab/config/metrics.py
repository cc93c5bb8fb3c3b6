"""The per-trial figures a claim may compare, and the units each counts in.

A claim compares two numbers of the trials table (`bnlab.training.summary`): the fixed figures
here, the final validation accuracy under each evaluation mode a config turns on, the figures of
each probe it turns on (`bnlab.config.probes`), and the epochs/steps/seconds to each target.
"""

from __future__ import annotations

from bnlab.common.columns import EVALUATION_MODES, TIMES, final_mode_accuracy, time_to, time_unit
from bnlab.config.probes import PROBE_METRICS

# Per-trial figures of the trials table (`bnlab.training.summary`) a claim may compare; the targets add theirs.
CLAIM_METRICS = (
    "test_accuracy", "best_val_accuracy", "final_val_accuracy", "final_train_eval_accuracy",
    "final_train_mode_accuracy", "final_accuracy_gap", "final_loss_gap", "best_accuracy_gap",
    "steady_epoch_seconds", "first_epoch_seconds", "total_train_seconds",
)
MODE_METRICS = tuple(final_mode_accuracy(mode) for mode in EVALUATION_MODES)  # with the config's evaluation.modes
# in accuracy units (fractions), the units of analysis.equivalence_margin; other metrics need a claim's own margin
ACCURACY_METRICS = ("test_accuracy", "best_val_accuracy", "final_val_accuracy", "final_train_eval_accuracy",
                    "final_train_mode_accuracy", "final_accuracy_gap", "best_accuracy_gap", *MODE_METRICS)
ALL_PROBE_METRICS = tuple(metric for metrics in PROBE_METRICS.values() for metric in metrics)
EXPECTATIONS = ("higher", "lower", "equivalent")  # the metric's raw direction: "lower" epochs_to_T is faster


def claim_metrics(targets: tuple[float, ...], modes: tuple[str, ...] = (),
                  probe_metrics: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The metrics a claim may name: `CLAIM_METRICS`, the final validation accuracy under each evaluation
    mode turned on (`final_val_accuracy_precise_bn`), the figures of each probe turned on
    (`bnlab.config.probes.probe_metrics`), then epochs/steps/seconds to each target."""
    return (CLAIM_METRICS + tuple(final_mode_accuracy(mode) for mode in dict.fromkeys(modes)) + tuple(probe_metrics)
            + tuple(time_to(time, target) for target in targets for time in TIMES))


def metric_units(metric: str) -> str:
    """What a metric counts: accuracy, accuracy gap, loss gap, epochs, steps or seconds, or a probe's own
    figure. The two sides of a claim agree, as a difference of accuracy and epochs means nothing, and a gap
    is better lower, an accuracy higher."""
    if metric in ALL_PROBE_METRICS:
        return metric  # each probe figure is its own unit (a loss range is no beta-smoothness)
    if time_unit(metric) is not None:
        return time_unit(metric)
    if metric.endswith("_seconds"):
        return "seconds"
    return metric.rsplit("_", 2)[-2] + " gap" if metric.endswith("_gap") else "accuracy"


def mode_hint(value, metrics: tuple[str, ...]) -> str:
    """How to turn on the evaluation mode or probe of a metric named without it ("" for any other value)."""
    if value in metrics:
        return ""
    if value in MODE_METRICS:
        return f"; {value} needs evaluation.modes to include {EVALUATION_MODES[MODE_METRICS.index(value)]}"
    probes = [probe for probe, names in PROBE_METRICS.items() if value in names]
    return f"; {value} needs the probe probes.{probes[0]}" if probes else ""
