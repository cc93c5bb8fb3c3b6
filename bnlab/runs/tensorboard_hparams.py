"""TensorBoard HParams: each trial's variant, seed and grid values beside its final figures.

TensorBoard's HParams dashboard (its table, parallel coordinates and scatter plots) compares the
trials of a run. Under `RUN_DIR/tensorboard/`:

    events.out.tfevents.*          the experiment: which hparams and metrics (`hparams_config`)
    LABEL-seedN/events.out.tfevents.*   one session per trial: its hparams, final figures, status
    LABEL-seedN/{train,validation}/     Keras's TensorBoard callback (epoch scalars)

The summaries are tensorboard's own protos (`tensorboard.plugins.hparams.summary_v2.hparams_pb`,
`hparams_config_pb`, `scalar_pb`), written with tensorboard's record writer, so this needs the
`tensorboard` package only, not TensorFlow, and works whatever the Keras backend.
(`tensorboard.plugins.hparams.api` itself imports TensorFlow; nothing here uses it.)

Example:
    >>> config = load_config("tiny", {"tracking.tensorboard": True})
    >>> run_experiment(config, "runs/tiny")  # then: tensorboard --logdir runs/tiny/tensorboard
"""

from __future__ import annotations

import math
import numbers
import os
import socket
import time
from pathlib import Path
from typing import Any, Sequence

from bnlab.common.columns import time_to
from bnlab.config import ExperimentConfig, VariantConfig
from bnlab.execution.outcomes import trial_log_dir
from bnlab.training.record import TrialRecord

# The trials-table figures each session holds as scalars, the HParams table's metric columns.
FINAL_METRICS = ("test_accuracy", "test_loss", "final_val_accuracy", "best_val_accuracy", "final_accuracy_gap")
# The last value of Keras's callback scalars: (its folder in a session, its tag).
KERAS_METRICS = (("validation", "epoch_accuracy"), ("validation", "epoch_loss"))
_EVENTS = "events.out.tfevents"


def write_trial_hparams(
    config: ExperimentConfig, run_dir: Path, variant: VariantConfig, record: TrialRecord
) -> Path:
    """Write one finished trial's HParams session (and, for a run's first trial, the experiment).

    Args:
        config: the experiment.
        run_dir: the run folder; the session goes to `run_dir/tensorboard/LABEL-seedN/`.
        variant: the trial's variant.
        record: the trial's results.

    Returns:
        The event file written for the session.
    """
    root = Path(run_dir) / "tensorboard"
    if not any(root.glob(f"{_EVENTS}.*")):  # once per run folder, resumed or not
        _write_events(root, [experiment_summary(config)], step=0)
    session = trial_log_dir(root, record.variant, record.seed)
    hparams = trial_hparams(variant, record.seed)
    last = record.epochs.iloc[-1]
    step = int(last["step"] if config.training_for(variant).step_mode else last["epoch"])
    figures = [_scalar(name, value) for name, value in record.summary.items()
               if name in metric_tags(config) and _finite(value)]
    status = "success" if record.summary.get("status") == "complete" else "failure"
    return _write_events(session, [_session_start(hparams, record.folder_name), *figures, _session_end(status)], step)


def trial_hparams(variant: VariantConfig, seed: int) -> dict[str, bool | float | int | str]:
    """The hparams of one trial: variant and seed, and for a grid its base variant and grid values.

    Example:
        >>> config = load_config("tiny", {"grid": {"training.optimizer.learning_rate": [0.1, 1.0]}})
        >>> trial_hparams(config.trial_variants[1], 0)
        {'variant': 'no_bn-learning_rate1', 'seed': 0, 'base_variant': 'no_bn', 'training.optimizer.learning_rate': 1.0}
    """
    hparams: dict[str, Any] = {"variant": variant.label, "seed": seed}
    if variant.grid_point:
        hparams["base_variant"] = variant.base_label
        hparams.update({key: hparam_value(value) for key, value in variant.grid_point.items()})
    return hparams


def hparam_value(value: Any) -> bool | float | int | str:
    """A value as an hparam holds it: bool, int, float or str; anything else (None, a list) as its text."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def metric_tags(config: ExperimentConfig) -> list[str]:
    """The session scalars of a config's trials: `FINAL_METRICS`, then the time to each target."""
    unit = "steps" if config.training.step_mode else "epochs"
    return [*FINAL_METRICS, *(time_to(unit, target) for target in config.targets)]


def experiment_summary(config: ExperimentConfig):
    """The `hparams_config` of a run: its hparams with the values its trials take, and its metrics."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    hparams = [hp.HParam("variant", _domain([v.label for v in config.trial_variants])),
               hp.HParam("seed", _domain(list(config.seeds)))]
    if config.grid:
        hparams.append(hp.HParam("base_variant", _domain([v.label for v in config.variants])))
        hparams.extend(hp.HParam(key, _domain([hparam_value(v) for v in values]))
                       for key, values in config.grid.items())
    metrics = [hp.Metric(tag) for tag in metric_tags(config)]
    metrics += [hp.Metric(tag, group=group, dataset_type=hp.Metric.VALIDATION) for group, tag in KERAS_METRICS]
    return hp.hparams_config_pb(hparams, metrics)


def _domain(values: Sequence):
    """A discrete domain of the values; None (no domain) when they mix types, e.g. None and numbers."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        return hp.Discrete(sorted({float(v) for v in values}))
    kinds = {type(v) for v in values}
    return hp.Discrete(sorted(set(values))) if len(kinds) == 1 else None


def _session_start(hparams: dict, trial_id: str):
    from tensorboard.plugins.hparams import summary_v2 as hp

    return hp.hparams_pb(hparams, trial_id=trial_id)


def _session_end(status: str):
    """The session's end: its status (`success`, or `failure` for a diverged trial) and end time."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    end = plugin_data_pb2.SessionEndInfo(
        status=api_pb2.STATUS_SUCCESS if status == "success" else api_pb2.STATUS_FAILURE,
        end_time_secs=time.time(),
    )
    summary = summary_pb2.Summary()
    summary.value.add(tag=metadata.SESSION_END_INFO_TAG, tensor=metadata.NULL_TENSOR,
                      metadata=metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(session_end_info=end)))
    return summary


def _scalar(name: str, value: float):
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    return scalar_pb(name, float(value))


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _write_events(folder: Path, summaries: list, step: int) -> Path:
    """A new event file in `folder` holding the summaries at `step`, as TensorFlow's writer writes it."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    path = folder / f"{_EVENTS}.{int(now):010d}.{socket.gethostname()}.{os.getpid()}.hparams"
    with open(path, "wb") as stream:
        writer = RecordWriter(stream)
        writer.write(event_pb2.Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        for summary in summaries:
            writer.write(event_pb2.Event(wall_time=now, step=step, summary=summary).SerializeToString())
    return path
