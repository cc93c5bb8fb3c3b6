"""Where the trials of a run execute: one after another in this process, or as Dask tasks.

An executor receives the pending (variant, seed) trials of a config and yields each trial's
outcome as it completes; the runner alone writes outcomes into the run folder, so a trial is
recorded once whichever executor ran it, and a run can be resumed on another executor.

- `LocalExecutor`: today's behaviour, trials in config order in this process.
- `DaskExecutor`: one task per trial on a `dask.distributed` cluster (the optional extra
  `bnlab[dask]`). A task carries the config as plain data, a variant label and a seed; the
  worker loads MNIST and builds the model itself and sends back the trial's `TrialRecord`.

Another backend (Ray, say) is one more class with `map_trials` and one more name in
`config.EXECUTORS`; the runner does not change.

Example:
    >>> config = load_config("tiny", {"executor.name": "dask", "executor.workers": 2})
    >>> run_experiment(config, "runs/tiny")  # a LocalCluster of 2 one-thread workers
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import random
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from bnlab.common.startup import import_keras_quietly
from bnlab.config import ConfigError, ExperimentConfig, VariantConfig
from bnlab.execution.backend_processes import BackendProcesses
from bnlab.execution.remote_trial import plain_row, train_from_data
from bnlab.training import record

logger = logging.getLogger(__name__)

# A trial task that raises is run once more before it counts as failed: a second attempt gets
# past transient trouble (memory pressure from a neighbouring task, a flaky shared disk) and
# costs one trial's time when the error is a real bug. A worker that dies mid-trial is not a
# raised error: Dask's scheduler reschedules the task on its own, up to its
# `distributed.scheduler.allowed-failures` deaths (default 3), then fails it with KilledWorker.
TASK_RETRIES = 1

Trial = tuple[VariantConfig, int]
EpochCallback = Callable[[dict], Any]


@dataclasses.dataclass(frozen=True)
class TrialFailure:
    """A trial that ended without a result (its task raised, or its workers kept dying).

    Nothing is written to its trial folder, so the next run of the same command trains it again.
    """

    variant: str  # the variant's label
    seed: int
    error: str  # the exception's type and first line


class ExecutorError(RuntimeError):
    """The executor cannot run trials (e.g. its Dask scheduler cannot be reached)."""


class TrialsFailedError(ExecutorError):
    """Some trials of a run failed on their workers; the others are saved."""

    def __init__(self, failures: list[TrialFailure]):
        names = ", ".join(f"{f.variant} seed {f.seed} ({f.error})" for f in failures)
        super().__init__(
            f"{len(failures)} trial(s) failed on the executor's workers: {names}. The other "
            "trials are saved and metadata.json lists the failures; run the same command "
            "again to train the failed trials."
        )
        self.failures = list(failures)


class Executor(Protocol):
    """Runs trials and hands back each outcome as it completes."""

    def map_trials(
        self, config: ExperimentConfig, trials: list[Trial], on_epoch: EpochCallback
    ) -> Iterator[record.TrialRecord | TrialFailure]:
        """Train every trial; yield each one's outcome exactly once, in completion order.

        `on_epoch` receives each per-epoch row with `variant` (label) and `seed` added, possibly
        from another thread. The caller closes the iterator (`close()`) when it stops early,
        which must stop or abandon the trials still running.
        """
        ...


def check_executor(config: ExperimentConfig) -> None:
    """Check, before anything runs, that the executor the config names can be used.

    Raises:
        ConfigError: `executor.name` is dask but dask.distributed cannot be imported.
    """
    if config.executor.name != "dask":
        return
    if "backend" in config.grid:
        raise ConfigError(
            ["grid.backend: expected the local executor, which runs each backend in a process of its own; "
             "received executor dask (Dask workers run one backend each: run one config per backend)."]
        )
    try:
        importlib.import_module("distributed")
    except ImportError as error:
        missing = isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in ("dask", "distributed")
        problem = "is not installed" if missing else f"failed to import ({error})"
        raise ConfigError(
            [f"the dask executor was asked for (executor.name / --executor dask) but "
             f"dask.distributed {problem}: pip install 'bnlab[dask]'"]
        ) from None


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
        # absolute: workers do not share this process's working directory
        return DaskExecutor(config.executor.scheduler, config.executor.workers, data_source=data_source,
                            tensorboard_dir=tensorboard.resolve() if tensorboard else None)
    # not at the top: training imports Keras, and a worker process imports this module before
    # it sets KERAS_BACKEND
    from bnlab.training.trial import load_splits

    return LocalExecutor(load_splits(config, data_source), tensorboard, data_source)


def describe(config: ExperimentConfig) -> dict:
    """Where a session's trials ran, for metadata.json (epoch times depend on it)."""
    executor = config.executor
    if executor.name == "local":
        return {"name": "local"}
    if executor.scheduler:
        return {"name": executor.name, "scheduler": executor.scheduler}
    return {"name": executor.name, "scheduler": "LocalCluster", "workers": executor.workers, "threads_per_worker": 1}


def _tagged(on_epoch: EpochCallback, variant: str, seed: int) -> EpochCallback:
    return lambda row: on_epoch({"variant": variant, "seed": seed, **row})


def _log_dir(tensorboard_dir: Path | None, variant: str, seed: int) -> Path | None:
    return tensorboard_dir / record.trial_folder_name(variant, seed) if tensorboard_dir else None


class LocalExecutor:
    """Trains the trials one after another in this process, on data loaded once.

    A trial whose grid point names another Keras backend than this process runs on trains in
    a worker process of that backend (`BackendProcesses`), still one trial at a time.

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
        import keras

        from bnlab.training.trial import train_trial

        with BackendProcesses(self.data_source) as processes:
            for variant, seed in trials:
                tagged = _tagged(on_epoch, variant.label, seed)
                log_dir = _log_dir(self.tensorboard_dir, variant.label, seed)
                backend = config.backend_for(variant) or keras.backend.backend()
                if backend != keras.backend.backend():
                    yield processes.train(backend, config, variant, seed, tagged, log_dir)
                else:
                    yield train_trial(config, variant, seed, self.splits, tagged, log_dir=log_dir)


class DaskExecutor:
    """Runs each trial as one task on a Dask cluster and yields results as they arrive.

    Args:
        scheduler: address of a running scheduler (`tcp://HOST:8786`); None starts a
            `LocalCluster` for the run and closes it afterwards.
        workers: worker processes of that LocalCluster, one thread each (one trial at a time).
        data_source: passed to `load_mnist` on the workers (a path must exist there).
        tensorboard_dir: absolute folder for TensorBoard logs, written by the workers themselves.
        retries: extra attempts for a task that raised (see `TASK_RETRIES`).
    """

    def __init__(self, scheduler: str | None = None, workers: int = 2, *, data_source=None,
                 tensorboard_dir: Path | None = None, retries: int = TASK_RETRIES):
        self.scheduler = scheduler
        self.workers = workers
        self.data_source = None if data_source is None else str(data_source)
        self.tensorboard_dir = tensorboard_dir
        self.retries = retries

    def map_trials(self, config, trials, on_epoch=lambda row: None):
        if not trials:  # a finished run resumed: no cluster to start
            return
        import keras
        from distributed import Client, LocalCluster, as_completed

        # the workers' Keras runs on the backend the run names, else on the one this process runs
        backend = config.backend or keras.backend.backend()
        data = config.to_dict()
        run_id = uuid.uuid4().hex[:12]
        topic = f"bnlab-epochs-{run_id}"
        with contextlib.ExitStack() as stack:
            if self.scheduler is None:
                # errors only: a closing worker that imported TensorFlow takes over the nanny's
                # 4 s grace to exit and is killed, with a warning that means nothing here
                cluster = stack.enter_context(LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR,
                ))
                client = stack.enter_context(Client(cluster))
            else:
                client = stack.enter_context(_connect(Client, self.scheduler))
                if not client.scheduler_info()["workers"]:
                    logger.warning("The Dask scheduler at %s has no workers yet; the trials wait until "
                                   "some connect (dask worker %s --nthreads 1).", self.scheduler, self.scheduler)
            client.subscribe_topic(topic, lambda event: on_epoch(event[1]))
            futures = {
                client.submit(
                    _train_on_worker, data, variant.label, seed, backend, self.data_source,
                    _log_dir(self.tensorboard_dir, variant.label, seed), topic,
                    key=f"bnlab-{variant.label}-seed{seed}-{run_id}", pure=False, retries=self.retries,
                ): (variant.label, seed)
                for variant, seed in trials
            }
            # on an early stop (Ctrl-C, a full disk) trials not yet started are dropped;
            # an external cluster finishes the running ones and discards their results
            stack.callback(lambda: client.cancel(list(futures)) if futures else None)
            for future in as_completed(list(futures)):
                variant, seed = futures.pop(future)
                try:
                    outcome = future.result()
                except Exception as error:  # the task raised twice, or KilledWorker, or cancelled
                    outcome = TrialFailure(variant, seed, _first_line(error))
                    logger.warning("Trial %s seed %d failed on the Dask cluster: %s. The run goes on; "
                                   "run the same command again afterwards to train it.", variant, seed, outcome.error)
                future.release()
                yield outcome


def _connect(client_class, address: str):
    try:
        return client_class(address)
    except (OSError, TimeoutError, ValueError) as error:
        raise ExecutorError(
            f"cannot reach the Dask scheduler at {address} ({_first_line(error)}). Start one "
            "(dask scheduler; dask worker ADDRESS --nthreads 1) or correct --scheduler / "
            "executor.scheduler; no trial was trained."
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _isolate_dask_sampling() -> None:
    """Give dask.sizeof a random generator of its own in this worker process.

    Keras draws its initializers' seeds from Python's global `random`, which
    `keras.utils.set_random_seed` seeds. The worker's event-loop thread sizes every message it
    sends (heartbeats included) with dask.sizeof, which samples long lists with the same
    global generator: a heartbeat between seeding and model building changed a trial's
    initial weights, so seeded Dask trials differed from local ones now and then (1 or 2 of
    the 4 trials in 3 of our first 5 tiny test runs). Dask's sizes need no reproducible draws.
    """
    import dask.sizeof

    if dask.sizeof.random is random:
        dask.sizeof.random = random.Random()


def _train_on_worker(config_data: dict, variant: str, seed: int, backend: str, data_source,
                     log_dir: Path | None, topic: str) -> record.TrialRecord:
    """One trial, run inside a Dask worker: data and model are made here, not shipped."""
    os.environ["KERAS_BACKEND"] = backend  # Keras reads it once, when this process first imports it
    import_keras_quietly()  # a LocalCluster worker writes to the user's terminal
    import keras
    from distributed import get_worker

    if keras.backend.backend() != backend:
        raise RuntimeError(
            f"this Dask worker already runs Keras on the {keras.backend.backend()} backend and the "
            f"run needs {backend}; Keras cannot switch in a running process. Start workers for this "
            f"run with KERAS_BACKEND={backend}, or restart them (client.restart())."
        )
    _isolate_dask_sampling()
    worker = get_worker()

    def on_epoch(row):  # msgpack-able plain numbers, streamed to the client's progress display
        worker.log_event(topic, {"variant": variant, "seed": seed, **plain_row(row)})

    return train_from_data(config_data, variant, seed, data_source, log_dir, on_epoch)
