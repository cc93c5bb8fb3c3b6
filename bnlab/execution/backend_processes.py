"""Trials on other Keras backends than this process's: each backend in a backend process of its own.

Keras picks its backend once, when it is first imported, so a run whose `grid` lists several
backends trains the trials of every other backend in a spawned backend process started with
KERAS_BACKEND set. One backend process per backend serves all of that backend's trials (one
start-up each). Epoch rows come back through a queue for the progress display; the finished
trial comes back as a `TrialRecord`, which this process saves like any other.

Example:
    >>> with BackendProcesses() as processes:
    ...     record = processes.train("jax", config, variant, seed=0, on_epoch=print)
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bnlab.execution.remote_trial import plain_row, train_from_data

_EVENTS = None  # in a backend process: the queue its epoch rows go to


class BackendProcesses:
    """One backend process per Keras backend, started on first use and shut down on exit.

    Args:
        data_source: passed to `load_mnist` in the backend processes (None: bnlab's own copy).
    """

    def __init__(self, data_source=None):
        self.data_source = None if data_source is None else str(data_source)
        self.context = multiprocessing.get_context("spawn")  # a fork would inherit this Keras
        self.pools: dict[str, ProcessPoolExecutor] = {}
        self.events = None  # made with the first backend process: most runs never need one

    def __enter__(self) -> "BackendProcesses":
        return self

    def __exit__(self, *exc_info) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=True, cancel_futures=True)

    def train(self, backend, config, variant, seed, on_epoch, log_dir: Path | None = None):
        """Train one trial in the backend process of `backend`; return its `TrialRecord`.

        Raises:
            Whatever the trial raised in the backend process (re-raised here).
        """
        future = self._pool(backend).submit(
            train_from_data, config.to_dict(), variant.label, seed, self.data_source, log_dir, _send)
        while not future.done():
            self._forward(on_epoch, timeout=0.2)
        self._forward(on_epoch, timeout=0)
        return future.result()

    def _forward(self, on_epoch, timeout) -> None:
        try:
            while True:
                on_epoch(self.events.get(timeout=timeout))
        except queue.Empty:
            pass

    def _pool(self, backend: str) -> ProcessPoolExecutor:
        if backend not in self.pools:
            if self.events is None:
                self.events = self.context.Queue()
            self.pools[backend] = ProcessPoolExecutor(
                max_workers=1, mp_context=self.context, initializer=_start_backend_process,
                initargs=(backend, self.events))
        return self.pools[backend]


def _start_backend_process(backend: str, events) -> None:
    """In the new backend process, before anything imports Keras: its backend and the events queue."""
    global _EVENTS
    os.environ["KERAS_BACKEND"] = backend
    from bnlab.common.startup import import_keras_quietly

    import_keras_quietly()  # as the CLI: no C++ start-up chatter
    _EVENTS = events


def _send(row: dict) -> None:
    _EVENTS.put(plain_row(row))
