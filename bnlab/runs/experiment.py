"""Runs a whole config: trains the trials (variant x seed) its run folder lacks and saves each.

`run_experiment` checks everything it can before training (tracking extras, the executor, the
backends, that every variant builds), takes the run folder's lock, hands the pending trials to
the config's executor and writes each outcome into the folder as it arrives, with the session
in metadata.json. Training one trial is `bnlab.training.trial`'s.

Example:
    >>> config = load_config("quickstart")
    >>> run_dir = run_experiment(config)
    >>> load_results(run_dir).trials
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from pathlib import Path

import keras

from bnlab.common.backends import missing_backend
from bnlab.common.environment import environment_record
from bnlab.config import ConfigError, ExperimentConfig
from bnlab.execution import executors
from bnlab.execution.outcomes import TrialFailure, TrialsFailedError
from bnlab.models.builders import BuilderError, build_model
from bnlab.runs import folder, tracking
from bnlab.runs.interrupts import deferred_interrupts
from bnlab.runs.progress import NullProgress, Progress
from bnlab.runs.table_rebuilds import TableRebuilds
from bnlab.training.trial import set_determinism


def run_experiment(
    config: ExperimentConfig,
    output_dir: str | Path | None = None,
    *,
    progress: Progress | None = None,
    data_source=None,
) -> Path:
    """Train every (variant, seed) trial of a config that the run folder lacks.

    Finished trials already in the folder are skipped, so calling this again with the
    same config resumes an interrupted run, on the same executor (`config.executor`) or
    another one. Trials run where the executor puts them; this process alone writes results.

    Args:
        config: a validated experiment config (see `load_config`).
        output_dir: the run folder; default `config.output_dir`.
        progress: receives progress events; default: none shown (the CLI passes a rich display).
        data_source: passed to `load_mnist` (default: the MNIST copy shipped with bnlab).

    Returns:
        The run folder.

    Raises:
        ConfigError: a variant's builder overrides are invalid, or the config asks for the
            dask executor and dask is not installed (checked before any training).
        RunFolderError: the run folder cannot be written, or holds another config's run.
        ExecutorError: the Dask scheduler cannot be reached; `TrialsFailedError` (a subclass):
            some trials failed on their Dask workers (the others are saved; rerun to train them).

    Example:
        >>> run_dir = run_experiment(load_config("tiny"), "runs/tiny")
        >>> load_results(run_dir).trials[["variant", "seed", "final_val_accuracy"]]
    """
    tracking.check_tracking(config)
    executors.check_executor(config)
    run_dir = Path(output_dir or config.output_dir)
    _check_backend(config)
    _check_variants_build(config)
    executor = executors.create_executor(config, run_dir, data_source)
    folder.prepare_run_folder(run_dir, config)
    with folder.RunLock(run_dir):
        _train_pending(config, run_dir, executor, progress or NullProgress())
    return run_dir


def _train_pending(config, run_dir, executor, progress) -> None:
    order = [(variant.label, seed) for variant, seed in config.trials]
    done = folder.finished_trials(run_dir)
    pending = [(v, s) for v, s in config.trials if (v.label, s) not in done]
    metadata = _start_metadata(run_dir, config, len(done), len(pending))
    session = metadata["sessions"][-1]
    session["executor"] = executors.executor_record(config)  # epoch times depend on where trials ran
    folder.write_metadata(run_dir, metadata)
    set_determinism(config.training.deterministic)
    progress.start(len(config.trials), len(done), pending, config.training.evaluations, config.training.steps)
    variants = {variant.label: variant for variant in config.trial_variants}
    failures, tables = [], TableRebuilds(run_dir, order)
    try:
        with contextlib.closing(executor.map_trials(config, pending, progress.epoch)) as outcomes:
            for outcome in outcomes:
                if isinstance(outcome, TrialFailure):  # not saved: the next run retrains it
                    failures.append(outcome)
                    session.setdefault("failed_trials", []).append(dataclasses.asdict(outcome))
                    continue
                _save(run_dir, outcome, tables)
                tracking.log_trial(config, run_dir, variants[outcome.variant], outcome)
                progress.trial_done(outcome)
    except KeyboardInterrupt:
        tables.finish()  # the interrupt may have landed between a trial.json and the tables built from it
        _stop_early(config, run_dir, metadata, "interrupted")
        raise
    except Exception:
        with contextlib.suppress(OSError):  # the failure itself may be a full disk: it is the error to show
            tables.finish()
        _stop_early(config, run_dir, metadata, "failed")
        raise
    finally:
        progress.stop()
    tables.finish()
    if failures:
        _stop_early(config, run_dir, metadata, "failed")
        raise TrialsFailedError(failures)
    _finish_metadata(run_dir, metadata, "complete")


def _save(run_dir, record, tables: TableRebuilds) -> None:
    """The trial's folder, then the run's tables when their schedule says (`bnlab.runs.table_rebuilds`)."""
    try:
        with deferred_interrupts():  # Ctrl-C or SIGTERM lands after the trial's files, not inside them
            folder.save_trial(run_dir, record)
            tables.after_trial()
    except OSError as error:
        raise folder.RunFolderError(
            f"cannot write the results of {record.variant} seed {record.seed} into {run_dir}: "
            f"{error.strerror or error}. Trials saved before are intact; fix the problem "
            "(e.g. free disk space) and run the same command again to resume."
        ) from error


def _check_backend(config: ExperimentConfig) -> None:
    running = keras.backend.backend()
    if config.backend is not None and config.backend != running:
        raise ConfigError(
            [
                f"{config.name}: backend: expected the backend Keras runs on ({running}), "
                f"received {config.backend!r}. Keras picks its backend when first imported: "
                f"set KERAS_BACKEND={config.backend} before importing Keras, or use the "
                "bnlab command, which does."
            ]
        )
    missing = [problem for backend in config.grid.get("backend", ()) if (problem := missing_backend(backend))]
    if missing:
        raise ConfigError([f"{config.name}: grid.{line}" for line in missing])


def _check_variants_build(config: ExperimentConfig) -> None:
    problems = []
    for index, variant in enumerate(config.variants):
        try:
            build_model(variant.name, **variant.overrides)
        except BuilderError as error:  # a registered variant's own builder failed or returned no keras.Model
            problems.append(f"{config.name}: variants[{index}].builder: {error}")
        except ValueError as error:
            problems.append(f"{config.name}: variants[{index}].overrides: {error}")
    if problems:
        raise ConfigError(problems)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _start_metadata(run_dir: Path, config: ExperimentConfig, finished: int, pending: int) -> dict:
    metadata = folder.read_metadata(run_dir)
    session = {"started": _now(), "trials_already_finished": finished, "trials_to_run": pending}
    metadata.update(environment_record(), deterministic=config.training.deterministic)
    metadata.setdefault("started", session["started"])
    metadata["sessions"] = metadata.get("sessions", []) + [session]
    metadata.update(status="running", finished=None)
    folder.write_metadata(run_dir, metadata)
    return metadata


def _stop_early(config, run_dir: Path, metadata: dict, status: str) -> None:
    """The session ends `status` (interrupted, failed): in metadata.json and in the trackers."""
    _finish_metadata(run_dir, metadata, status)
    tracking.end_tracking(config, run_dir, status)


def _finish_metadata(run_dir: Path, metadata: dict, status: str) -> None:
    metadata.update(status=status, finished=_now())
    metadata["sessions"][-1]["ended"] = metadata["finished"]
    try:
        folder.write_metadata(run_dir, metadata)
    except OSError:
        if status == "complete":
            raise
        # the run is already failing (a full disk, say); its own error says more than this one
