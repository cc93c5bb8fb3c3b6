"""Optional experiment tracking: each finished trial as one MLflow run.

MLflow is the optional extra `mlflow`; it is imported only inside these functions, so
`import bnlab` and `run_experiment` work without it. The run folder stays the record of a
run: a trial is saved there before it is logged, and a logging failure only warns.
For `tracking.tensorboard` each trial gets Keras's own TensorBoard callback, which needs the
`tensorboard` package (the extra `tensorboard`): TensorFlow 2.21 no longer installs it, and its `tf.summary.scalar`
raises without it.

Example:
    >>> config = load_config("tiny", {"tracking.mlflow": True})
    >>> run_experiment(config, "runs/tiny")  # then: mlflow ui, or mlflow.search_runs(...)
"""

from __future__ import annotations

import logging
import numbers
import re
import time
from pathlib import Path
from typing import Any, Mapping

from bnlab.common.extras import missing_extra
from bnlab.config import ConfigError, ExperimentConfig, VariantConfig
from bnlab.training.record import TrialRecord

logger = logging.getLogger(__name__)

# Columns of the per-epoch table logged as MLflow metrics, with step = epoch (1-based).
EPOCH_METRICS = (
    "loss", "accuracy", "val_loss", "val_accuracy", "train_eval_loss", "train_eval_accuracy",
    "train_seconds",
)
# Config sections logged as parameters; name, seeds and variants are per trial or per experiment.
_CONFIG_PARAMS = ("dataset", "training", "targets", "backend")


def check_tracking(config: ExperimentConfig) -> None:
    """Check, before any training, that the tracking the config asks for can work.

    Args:
        config: the experiment; only `config.tracking` is read.

    Raises:
        ConfigError: `tracking.mlflow` is true but mlflow cannot be imported, or
            `tracking.tensorboard` is true but tensorboard cannot be imported.
    """
    wanted = (
        (config.tracking.mlflow, "mlflow", "mlflow", "MLflow logging", "tracking.mlflow / --mlflow"),
        (config.tracking.tensorboard, "tensorboard.summary.v2", "tensorboard", "TensorBoard logging",
         "tracking.tensorboard / --tensorboard"),
    )
    for asked, module, extra, what, option in wanted:
        problem = missing_extra(module, extra) if asked else None
        if problem:
            raise ConfigError([f"{what} was asked for ({option}) but {problem}"])


def log_trial(
    config: ExperimentConfig, run_dir: Path, variant: VariantConfig, record: TrialRecord
) -> None:
    """Log a finished, already saved trial as one MLflow run, if the config asks for it.

    The run goes to the MLflow experiment named `config.name` in MLflow's tracking store
    (`mlflow.get_tracking_uri()`: MLFLOW_TRACKING_URI, else MLflow's default local store).
    A failure is logged as a warning and otherwise ignored: the trial is in the run folder.

    Args:
        config: the experiment.
        run_dir: the run folder the trial was saved in.
        variant: the trial's variant.
        record: the trial's results.
    """
    if not config.tracking.mlflow:
        return
    run_dir = Path(run_dir)
    try:
        _log_to_mlflow(config, run_dir, variant, record)
    except Exception as error:  # any store failure: MlflowException, OSError, SQL, HTTP errors
        logger.warning(
            "MLflow logging of trial %s failed (%s: %s); its results are saved in %s and "
            "training goes on.",
            record.folder_name, type(error).__name__, error, run_dir / "trials" / record.folder_name,
        )


def _log_to_mlflow(config, run_dir: Path, variant: VariantConfig, record) -> None:
    from mlflow import MlflowClient

    from bnlab.runs.trial_curves import plot_trial_curves  # here: matplotlib only when MLflow logs

    client = MlflowClient()
    tags = {"status": str(record.summary["status"]), "bnlab.run_dir": str(run_dir.resolve())}
    run = client.create_run(
        _experiment_id(client, config.name), run_name=record.folder_name, tags=tags
    )
    try:
        client.log_batch(
            run.info.run_id,
            metrics=_epoch_metrics(record.epochs) + _final_metrics(record.summary),
            params=_params(trial_params(config, variant, record.seed)),
        )
        client.log_artifact(run.info.run_id, str(run_dir / "trials" / record.folder_name / "epochs.csv"))
        curves = plot_trial_curves(record.epochs, f"{record.variant} seed {record.seed}")
        client.log_figure(run.info.run_id, curves, "figures/learning_curves.png")
    except BaseException:
        client.set_terminated(run.info.run_id, "FAILED")
        raise
    client.set_terminated(run.info.run_id, "FINISHED")


def _experiment_id(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def trial_params(config: ExperimentConfig, variant: VariantConfig, seed: int) -> dict[str, str]:
    """The MLflow parameters of one trial: its variant and seed, and the config flattened.

    Args:
        config: the experiment.
        variant: the trial's variant; its builder overrides become `overrides.ARGUMENT`.
        seed: the trial's seed.

    Returns:
        Dotted keys (`training.optimizer.learning_rate`) -> values as strings, as MLflow stores them.

    Example:
        >>> config = load_config("tiny")
        >>> trial_params(config, config.variants[0], seed=0)["training.batch_size"]
        '32'
    """
    data = config.to_dict()
    params = {"variant": variant.label, "variant_name": variant.name, "seed": seed}
    params.update(_flatten({key: data[key] for key in _CONFIG_PARAMS}))
    params.update(_flatten({"overrides": dict(variant.overrides)}))
    params.update(variant.grid_point)  # this trial's grid values replace the config's
    return {key: str(value) for key, value in params.items()}


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _params(params: dict[str, str]) -> list:
    from mlflow.entities import Param

    return [Param(key, value) for key, value in params.items()]


def _epoch_metrics(epochs) -> list:
    from mlflow.entities import Metric

    now = _milliseconds()
    return [
        Metric(name, float(row[name]), now, int(row["epoch"]))
        for _, row in epochs.iterrows()
        for name in EPOCH_METRICS
    ]


def _final_metrics(summary: Mapping[str, Any]) -> list:
    """The trial summary's numeric figures (test_accuracy, epochs_to_0.98, ...) at step 0."""
    from mlflow.entities import Metric

    now = _milliseconds()
    return [
        Metric(_metric_name(key), float(value), now, 0)
        for key, value in summary.items()
        if isinstance(value, numbers.Real) and not isinstance(value, bool)
    ]


def _metric_name(key: str) -> str:
    """`key` with '_' for each character MLflow refuses (it takes letters, digits, _-./ and space)."""
    return re.sub(r"[^\w\-. /]", "_", key)


def _milliseconds() -> int:
    return int(time.time() * 1000)
