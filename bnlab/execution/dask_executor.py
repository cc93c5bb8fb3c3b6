"""Trials as tasks on a Dask cluster (the optional extra `dask`): `DaskExecutor`.

A task carries the config as plain data, a variant label and a seed; the Dask worker loads MNIST
and builds the model itself (`bnlab.execution.remote_trial`) and sends back the trial's
`TrialRecord`. Epoch rows reach this process's progress display as Dask events.

Example:
    >>> config = load_config("tiny", {"executor.name": "dask", "executor.workers": 2})
    >>> run_experiment(config, "runs/tiny")  # a LocalCluster of 2 one-thread Dask workers
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import uuid
from pathlib import Path

from bnlab.common.startup import import_keras_quietly
from bnlab.execution.outcomes import ExecutorError, TrialFailure, first_line, trial_log_dir
from bnlab.execution.remote_trial import plain_row, train_from_data
from bnlab.training.record import TrialRecord

logger = logging.getLogger(__name__)

# A trial task that raises is run once more before it counts as failed: a second attempt gets
# past transient trouble (memory pressure from a neighbouring task, a flaky shared disk) and
# costs one trial's time when the error is a real bug. A Dask worker that dies mid-trial is not
# a raised error: Dask's scheduler reschedules the task on its own, up to its
# `distributed.scheduler.allowed-failures` deaths (default 3), then fails it with KilledWorker.
TASK_RETRIES = 1


class DaskExecutor:
    """Runs each trial as one task on a Dask cluster and yields results as they arrive.

    Args:
        scheduler: address of a running scheduler (`tcp://HOST:8786`); None starts a
            `LocalCluster` for the run and closes it afterwards.
        workers: Dask workers of that LocalCluster, one process and one thread each (one trial
            at a time).
        data_source: passed to `load_mnist` on the Dask workers (a path must exist there).
        tensorboard_dir: absolute folder for TensorBoard logs, written by the Dask workers.
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
        """Submit every trial, then yield each outcome as its task finishes (see `Executor`)."""
        if not trials:  # a finished run resumed: no cluster to start
            return
        import keras

        # the Dask workers' Keras runs on the backend the run names, else on the one this process runs
        backend = config.backend or keras.backend.backend()
        run_id = uuid.uuid4().hex[:12]
        topic = f"bnlab-epochs-{run_id}"
        with contextlib.ExitStack() as stack:
            client = self._client(stack)
            client.subscribe_topic(topic, lambda event: on_epoch(event[1]))
            futures = {self._submit(client, config.to_dict(), variant.label, seed, backend, topic, run_id):
                       (variant.label, seed) for variant, seed in trials}
            # on an early stop (Ctrl-C, a full disk) trials not yet started are dropped;
            # an external cluster finishes the running ones and discards their results
            stack.callback(lambda: client.cancel(list(futures)) if futures else None)
            yield from _outcomes(futures)

    def _client(self, stack: contextlib.ExitStack):
        """A client of the scheduler, or of a LocalCluster started for this run; closed by `stack`."""
        from distributed import Client, LocalCluster

        if self.scheduler is None:
            # errors only: a closing Dask worker that imported TensorFlow takes over the nanny's
            # 4 s grace to exit and is killed, with a warning that means nothing here
            cluster = stack.enter_context(LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR,
            ))
            return stack.enter_context(Client(cluster))
        client = stack.enter_context(_connect(Client, self.scheduler))
        if not client.scheduler_info()["workers"]:
            logger.warning("The Dask scheduler at %s has no workers yet; the trials wait until "
                           "some connect (dask worker %s --nthreads 1).", self.scheduler, self.scheduler)
        return client

    def _submit(self, client, config_data: dict, label: str, seed: int, backend: str, topic: str, run_id: str):
        return client.submit(
            _train_on_dask_worker, config_data, label, seed, backend, self.data_source,
            trial_log_dir(self.tensorboard_dir, label, seed), topic,
            key=f"bnlab-{label}-seed{seed}-{run_id}", pure=False, retries=self.retries,
        )


def _outcomes(futures: dict):
    """Each task's `TrialRecord`, or its `TrialFailure`, in completion order; `futures` empties."""
    from distributed import as_completed

    for future in as_completed(list(futures)):
        variant, seed = futures.pop(future)
        try:
            outcome = future.result()
        except Exception as error:  # the task raised twice, or KilledWorker, or cancelled
            outcome = TrialFailure(variant, seed, first_line(error))
            logger.warning("Trial %s seed %d failed on the Dask cluster: %s. The run goes on; "
                           "run the same command again afterwards to train it.", variant, seed, outcome.error)
        future.release()
        yield outcome


def _connect(client_class, address: str):
    try:
        return client_class(address)
    except (OSError, TimeoutError, ValueError) as error:
        raise ExecutorError(
            f"cannot reach the Dask scheduler at {address} ({first_line(error)}). Start one "
            "(dask scheduler; dask worker ADDRESS --nthreads 1) or correct --scheduler / "
            "executor.scheduler; no trial was trained."
        ) from None


def _isolate_dask_sampling() -> None:
    """Give dask.sizeof a random generator of its own in this Dask worker.

    Keras draws its initializers' seeds from Python's global `random`, which
    `keras.utils.set_random_seed` seeds. The Dask worker's event-loop thread sizes every message
    it sends (heartbeats included) with dask.sizeof, which samples long lists with the same
    global generator: a heartbeat between seeding and model building changed a trial's
    initial weights, so seeded Dask trials differed from local ones now and then (1 or 2 of
    the 4 trials in 3 of our first 5 tiny test runs). Dask's sizes need no reproducible draws.
    """
    import dask.sizeof

    if dask.sizeof.random is random:
        dask.sizeof.random = random.Random()


def _train_on_dask_worker(config_data: dict, variant: str, seed: int, backend: str, data_source,
                          log_dir: Path | None, topic: str) -> TrialRecord:
    """One trial, run inside a Dask worker: data and model are made here, not shipped."""
    os.environ["KERAS_BACKEND"] = backend  # Keras reads it once, when this process first imports it
    import_keras_quietly()  # a LocalCluster's Dask worker writes to the user's terminal
    import keras
    from distributed import get_worker

    if keras.backend.backend() != backend:
        raise RuntimeError(
            f"this Dask worker already runs Keras on the {keras.backend.backend()} backend and the "
            f"run needs {backend}; Keras cannot switch in a running process. Start Dask workers for "
            f"this run with KERAS_BACKEND={backend}, or restart them (client.restart())."
        )
    _isolate_dask_sampling()
    worker = get_worker()

    def on_epoch(row):  # msgpack-able plain numbers, streamed to the client's progress display
        worker.log_event(topic, {"variant": variant, "seed": seed, **plain_row(row)})

    return train_from_data(config_data, variant, seed, data_source, log_dir, on_epoch)
