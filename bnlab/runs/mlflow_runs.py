"""MLflow tracking: one parent MLflow run per run folder, one nested child run per trial.

This is MLflow's convention for sweeps (`mlflow.start_run(nested=True)` tags a child run with
`mlflow.parentRunId`): the parent, named after the run folder, carries the experiment (the
config flattened as params, `config.yaml` and `metadata.json` as artifacts); each child, named
`LABEL-seedN`, one trial: its params (variant, seed, grid values, the config), its metrics at
every evaluation (step = epoch, or the optimizer step in step mode) and its final figures.

The parent's id is kept in the run folder's `mlflow.json`, per tracking URI, so that resuming the
run adds the new trials to the same parent. The parent is RUNNING until every trial of the config
is in the run folder, then FINISHED; a session stopped by Ctrl-C leaves it KILLED, one that failed
FAILED, and resuming makes it RUNNING again. MLflow is imported only inside these functions.

Example:
    >>> config = load_config("tiny", {"tracking.mlflow": True})
    >>> run_experiment(config, "runs/tiny")  # then: mlflow ui, or mlflow.search_runs(...)
"""

from __future__ import annotations

import json
import numbers
import re
import time
from pathlib import Path
from typing import Any, Mapping

from bnlab.config import ExperimentConfig, VariantConfig
from bnlab.config.loader import dotted_keys
from bnlab.runs import folder
from bnlab.training.record import TrialRecord

PARENT_FILE = "mlflow.json"  # in the run folder: {tracking URI: parent run id}
PARENT_TAG = "mlflow.parentRunId"  # what mlflow.start_run(nested=True) sets on a child run
# Config sections logged as parameters; name, seeds and variants are per trial or per experiment.
_CONFIG_PARAMS = ("dataset", "training", "targets", "backend")
_STEPS = ("epoch", "step")  # columns of the per-epoch table that are steps, not metrics


def log_trial_run(config: ExperimentConfig, run_dir: Path, variant: VariantConfig, record: TrialRecord) -> None:
    """Log a finished, saved trial as a child run of the run folder's parent run (created if need be).

    Args:
        config: the experiment; its name names the MLflow experiment.
        run_dir: the run folder the trial was saved in.
        variant: the trial's variant.
        record: the trial's results.

    Raises:
        MlflowException, OSError: the store or the run folder failed (`tracking.log_trial` warns).
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id = _experiment_id(client, config.name)
    parent_id = _parent_run(client, experiment_id, config, run_dir)
    _log_child(client, experiment_id, parent_id, config, run_dir, variant, record)
    client.log_artifact(parent_id, str(run_dir / "metadata.json"))  # the sessions so far
    finished = folder.finished_trials(run_dir)
    if all((v.label, seed) in finished for v, seed in config.trials):
        client.set_terminated(parent_id, "FINISHED")
    else:
        client.update_run(parent_id, status="RUNNING")


def end_parent_run(run_dir: Path, status: str) -> None:
    """Mark the run folder's parent run in the current tracking store `status` (KILLED, FAILED), if it runs.

    Raises:
        MlflowException: the store failed (`tracking.end_tracking` warns).
    """
    if not (Path(run_dir) / PARENT_FILE).exists():  # no trial logged yet: no parent to end
        return
    import mlflow

    client = mlflow.MlflowClient()
    parent_id = read_parent_ids(run_dir).get(mlflow.get_tracking_uri())
    # a FINISHED parent holds every trial already (a stop after the last one changes nothing)
    if parent_id and client.get_run(parent_id).info.status == "RUNNING":
        client.set_terminated(parent_id, status)


def _experiment_id(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def _parent_run(client, experiment_id: str, config: ExperimentConfig, run_dir: Path) -> str:
    """The run folder's parent run in this tracking store: the one `mlflow.json` names, else a new one."""
    import mlflow

    uri = mlflow.get_tracking_uri()
    parents = read_parent_ids(run_dir)
    if parents.get(uri) and _active(client, parents[uri], experiment_id):
        return parents[uri]
    tags = {"bnlab.run_dir": str(run_dir.resolve()), "bnlab.config": config.name,
            "mlflow.note.content": config.description or ""}  # the description MLflow's UI shows
    run = client.create_run(experiment_id, run_name=run_dir.name, tags=tags)
    client.log_batch(run.info.run_id, params=_params(experiment_params(config)))
    client.log_artifact(run.info.run_id, str(run_dir / "config.yaml"))
    folder.write_atomic(run_dir / PARENT_FILE, json.dumps({**parents, uri: run.info.run_id}, indent=2) + "\n")
    return run.info.run_id


def read_parent_ids(run_dir: Path) -> dict[str, str]:
    """The parent run ids a run folder's `mlflow.json` holds, by tracking URI ({} when it has none)."""
    path = Path(run_dir) / PARENT_FILE
    try:
        parents = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or damaged: a new parent run replaces it
        return {}
    return parents if isinstance(parents, dict) else {}


def _active(client, run_id: str, experiment_id: str) -> bool:
    """Whether the run exists in this store, in this experiment, and is not deleted."""
    from mlflow.exceptions import MlflowException

    try:
        info = client.get_run(run_id).info
    except MlflowException:
        return False
    return info.lifecycle_stage == "active" and info.experiment_id == experiment_id


def _log_child(client, experiment_id, parent_id, config, run_dir: Path, variant, record) -> None:
    from bnlab.runs.trial_curves import plot_trial_curves  # here: matplotlib only when MLflow logs

    tags = {PARENT_TAG: parent_id, "status": str(record.summary["status"]),
            "bnlab.run_dir": str(run_dir.resolve())}
    run = client.create_run(experiment_id, run_name=record.folder_name, tags=tags)
    run_id = run.info.run_id
    try:
        step_mode = config.training_for(variant).step_mode
        client.log_batch(
            run_id,
            metrics=evaluation_metrics(record.epochs, step_mode) + _final_metrics(record.summary),
            params=_params(trial_params(config, variant, record.seed)),
        )
        client.log_artifact(run_id, str(run_dir / "trials" / record.folder_name / "epochs.csv"))
        curves = plot_trial_curves(record.epochs, f"{record.variant} seed {record.seed}")
        client.log_figure(run_id, curves, "figures/learning_curves.png")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def experiment_params(config: ExperimentConfig) -> dict[str, str]:
    """The MLflow parameters of a run's parent run: the config's variants, seeds and grid, and the config flattened.

    Example:
        >>> experiment_params(load_config("tiny"))["seeds"]
        '[0, 1]'
    """
    data = config.to_dict()
    params = {"name": config.name, "variants": [v.label for v in config.variants], "seeds": list(config.seeds)}
    params.update(dotted_keys({key: data[key] for key in _CONFIG_PARAMS}))
    params.update({f"grid.{key}": list(values) for key, values in config.grid.items()})
    return {key: str(value) for key, value in params.items()}


def trial_params(config: ExperimentConfig, variant: VariantConfig, seed: int) -> dict[str, str]:
    """The MLflow parameters of one trial: its variant and seed, and the config flattened.

    Args:
        config: the experiment.
        variant: the trial's variant; its builder overrides become `overrides.ARGUMENT`, its grid
            values replace the config's under the grid's dotted keys.
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
    if variant.grid_point:
        params["base_variant"] = variant.base_label
    params.update(dotted_keys({key: data[key] for key in _CONFIG_PARAMS}))
    params.update(dotted_keys({"overrides": dict(variant.overrides)}))
    params.update(variant.grid_point)  # this trial's grid values replace the config's
    return {key: str(value) for key, value in params.items()}


def _params(params: dict[str, str]) -> list:
    from mlflow.entities import Param

    return [Param(key, value) for key, value in params.items()]


def evaluation_metrics(epochs, step_mode: bool) -> list:
    """Every numeric column of the per-epoch table as MLflow metrics, one per evaluation.

    The step is the epoch (1-based), or in step mode (`training.steps`) the optimizer step the
    evaluation came after (the table's `step` column), so curves of trials evaluated at different
    intervals line up.
    """
    from mlflow.entities import Metric

    now = _milliseconds()
    names = [c for c in epochs.columns if c not in _STEPS and epochs[c].dtype.kind in "fiu"]
    step = "step" if step_mode else "epoch"
    return [
        Metric(_metric_name(name), float(row[name]), now, int(row[step]))
        for _, row in epochs.iterrows()
        for name in names
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
