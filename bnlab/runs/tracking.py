"""Optional experiment tracking of a run: MLflow runs and TensorBoard HParams.

`run_experiment` calls `check_tracking` before anything trains, `log_trial` after each trial
is saved and `end_tracking` when a session stops early. With `tracking.mlflow` a run is one
MLflow parent run with a nested child run per trial (`bnlab.runs.mlflow_runs`); with
`tracking.tensorboard` each trial gets Keras's TensorBoard callback (written where the trial
trains) and an HParams session (`bnlab.runs.tensorboard_hparams`).
MLflow and TensorBoard are the optional extras `mlflow` and `tensorboard`, imported only inside
functions, so `import bnlab` and `run_experiment` work without them. The run folder stays the
record of a run: a trial is saved there before it is logged, and a logging failure only warns.
TensorFlow 2.21 no longer installs `tensorboard`, and its `tf.summary.scalar` raises without it.

Example:
    >>> config = load_config("tiny", {"tracking.mlflow": True, "tracking.tensorboard": True})
    >>> run_experiment(config, "runs/tiny")  # then: mlflow ui; tensorboard --logdir runs/tiny/tensorboard
"""

from __future__ import annotations

import logging
from pathlib import Path

from bnlab.common.extras import missing_extra
from bnlab.config import ConfigError, ExperimentConfig, VariantConfig
from bnlab.runs.mlflow_runs import end_parent_run, log_trial_run
from bnlab.runs.tensorboard_hparams import write_trial_hparams
from bnlab.training.record import TrialRecord

logger = logging.getLogger(__name__)
# a run folder's status when a session stops early -> its MLflow parent run's status
MLFLOW_STATUS = {"interrupted": "KILLED", "failed": "FAILED"}


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
    """Log a finished, already saved trial to the trackers the config asks for.

    With `tracking.mlflow`: a child run of the run folder's parent run, in the MLflow experiment
    named `config.name`, in MLflow's tracking store (`mlflow.get_tracking_uri()`:
    MLFLOW_TRACKING_URI, else MLflow's default local store). With `tracking.tensorboard`: the
    trial's HParams session under `run_dir/tensorboard/`. A failure of either is logged as a
    warning and otherwise ignored: the trial is in the run folder.

    Args:
        config: the experiment.
        run_dir: the run folder the trial was saved in.
        variant: the trial's variant.
        record: the trial's results.
    """
    run_dir = Path(run_dir)
    trackers = (
        (config.tracking.mlflow, "MLflow logging", log_trial_run),
        (config.tracking.tensorboard, "TensorBoard HParams logging", write_trial_hparams),
    )
    for asked, what, log in trackers:
        if not asked:
            continue
        try:
            log(config, run_dir, variant, record)
        except Exception as error:  # any store failure: MlflowException, OSError, SQL, HTTP errors
            logger.warning(
                "%s of trial %s failed (%s: %s); its results are saved in %s and training goes on.",
                what, record.folder_name, type(error).__name__, error, run_dir / "trials" / record.folder_name,
            )


def end_tracking(config: ExperimentConfig, run_dir: Path, status: str) -> None:
    """Record in the trackers that a session stopped early (`status`: interrupted or failed).

    With `tracking.mlflow` the run folder's parent run becomes KILLED or FAILED (not left RUNNING);
    resuming the run makes it RUNNING again. A tracker's failure only warns: the session's own
    error or interrupt is what the user must see.
    """
    if not config.tracking.mlflow:
        return
    try:
        end_parent_run(Path(run_dir), MLFLOW_STATUS[status])
    except Exception as error:  # MlflowException, OSError, SQL, HTTP errors
        logger.warning("Marking the MLflow parent run of %s %s failed (%s: %s).",
                       run_dir, MLFLOW_STATUS[status], type(error).__name__, error)
