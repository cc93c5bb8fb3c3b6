"""Where the trials of a run execute: one after another in this process, or as Dask tasks.

- `LocalExecutor`: trials in config order in this process; a trial of another Keras backend
  trains in a backend process of its own (`bnlab.execution.backend_processes`).
- `DaskExecutor` (`bnlab.execution.dask_executor`): one task per trial on a `dask.distributed`
  cluster (the optional extra `dask`).

Every executor yields each trial's outcome as it completes (`bnlab.execution.outcomes`); only the
run (`bnlab.runs.experiment`) writes outcomes into the run folder, so a run can be resumed on
another executor. Another backend (Ray, say) is one more class with `map_trials` and one more
name in `config.EXECUTORS`; the run does not change.

Example:
    >>> config = load_config("tiny", {"executor.name": "dask", "executor.workers": 2})
    >>> run_experiment(config, "runs/tiny")  # a LocalCluster of 2 one-thread Dask workers
"""

from __future__ import annotations

from pathlib import Path

from bnlab.common.extras import missing_extra
from bnlab.config import ConfigError, ExperimentConfig
from bnlab.execution.backend_processes import BackendProcesses
from bnlab.execution.dask_executor import DaskExecutor
from bnlab.execution.outcomes import Executor, tagged, trial_log_dir


def check_executor(config: ExperimentConfig) -> None:
    """Check, before anything runs, that the executor the config names can be used.

    Raises:
        ConfigError: `executor.name` is dask but dask.distributed cannot be imported, or the
            config's grid lists backends (each Dask worker runs one).
    """
    if config.executor.name != "dask":
        return
    if "backend" in config.grid:
        raise ConfigError(
            ["grid.backend: expected the local executor, which runs each backend in a process of its own; "
             "received executor dask (Dask workers run one backend each: run one config per backend)."]
        )
    problem = missing_extra("distributed", "dask", name="dask.distributed")
    if problem:
        raise ConfigError([f"the dask executor was asked for (executor.name / --executor dask) but {problem}"])


def create_executor(config: ExperimentConfig, run_dir: Path, data_source=None) -> Executor:
    """The executor that `config.executor` names, ready to run the trials of `run_dir`.

    Args:
        config: the experiment.
        run_dir: the run folder (TensorBoard logs go under it when the config asks for them).
        data_source: passed to `load_mnist` where the trials run (default: bnlab's own copy).

    Raises:
        DataIntegrityError: the local executor loads the data at once and it failed its check.
    """
    tensorboard = Path(run_dir) / "tensorboard" if config.tracking.tensorboard else None
    if config.executor.name == "dask":
        # absolute: Dask workers do not share this process's working directory
        return DaskExecutor(config.executor.scheduler, config.executor.workers, data_source=data_source,
                            tensorboard_dir=tensorboard.resolve() if tensorboard else None)
    # not at the top: training imports Keras, and a backend process or a Dask worker imports
    # this module before it sets KERAS_BACKEND
    from bnlab.training.trial import load_splits

    return LocalExecutor(load_splits(config, data_source), tensorboard, data_source)


def executor_record(config: ExperimentConfig) -> dict:
    """Where a session's trials ran, for metadata.json (epoch times depend on it)."""
    executor = config.executor
    if executor.name == "local":
        return {"name": "local"}
    if executor.scheduler:
        return {"name": executor.name, "scheduler": executor.scheduler}
    return {"name": executor.name, "scheduler": "LocalCluster", "workers": executor.workers, "threads_per_worker": 1}


class LocalExecutor:
    """Trains the trials one after another in this process, on data loaded once.

    A trial whose grid point names another Keras backend than this process runs on trains in
    a backend process of that backend (`BackendProcesses`), still one trial at a time.

    Args:
        splits: the data, as `split_mnist` returns it.
        tensorboard_dir: where each trial's TensorBoard folder goes (None: no TensorBoard).
        data_source: passed to `load_mnist` in backend processes (None: bnlab's own copy).
    """

    def __init__(self, splits, tensorboard_dir: Path | None = None, data_source=None):
        self.splits = splits
        self.tensorboard_dir = tensorboard_dir
        self.data_source = data_source

    def map_trials(self, config, trials, on_epoch=lambda row: None):
        """Train the trials in order; yield each one's `TrialRecord` (see `Executor`)."""
        import keras

        from bnlab.training.trial import train_trial

        with BackendProcesses(self.data_source) as processes:
            for variant, seed in trials:
                with_keys = tagged(on_epoch, variant.label, seed)
                log_dir = trial_log_dir(self.tensorboard_dir, variant.label, seed)
                backend = config.backend_for(variant) or keras.backend.backend()
                if backend != keras.backend.backend():
                    yield processes.train(backend, config, variant, seed, with_keys, log_dir)
                else:
                    yield train_trial(config, variant, seed, self.splits, with_keys, log_dir=log_dir)
