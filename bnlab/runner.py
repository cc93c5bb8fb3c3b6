"""Trains the grid of trials (variant x seed) of an experiment; the only caller of fit().

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
import numpy as np
import pandas as pd

from bnlab import environment, executors, metrics, results, tracking
from bnlab.backends import missing_backend
from bnlab.callbacks import ActivationPercentiles
from bnlab.config import ConfigError, ExperimentConfig, VariantConfig, grid_column
from bnlab.data import Splits, binarize_splits, load_mnist, split_mnist
from bnlab.evaluator import Evaluator
from bnlab.models import build_model, nonlinearity_layer
from bnlab.predictions import TestPredictions
from bnlab.progress import NullProgress, Progress
from bnlab.variants import get_variant


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
            some trials failed on their workers (the others are saved; rerun to train them).

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
    results.prepare_run_folder(run_dir, config)
    with results.RunLock(run_dir):
        _train_pending(config, run_dir, executor, progress or NullProgress())
    return run_dir


def _train_pending(config, run_dir, executor, progress) -> None:
    order = [(variant.label, seed) for variant, seed in config.trials]
    done = results.finished_trials(run_dir)
    pending = [(v, s) for v, s in config.trials if (v.label, s) not in done]
    metadata = _start_metadata(run_dir, config, len(done), len(pending))
    session = metadata["sessions"][-1]
    session["executor"] = executors.describe(config)  # epoch times depend on where trials ran
    results.write_metadata(run_dir, metadata)
    _set_determinism(config.training.deterministic)
    progress.start(len(config.trials), len(done), pending, config.training.evaluations, config.training.steps)
    variants = {variant.label: variant for variant in config.trial_variants}
    failures = []
    try:
        with contextlib.closing(executor.map_trials(config, pending, progress.epoch)) as outcomes:
            for outcome in outcomes:
                if isinstance(outcome, executors.TrialFailure):  # not saved: the next run retrains it
                    failures.append(outcome)
                    session.setdefault("failed_trials", []).append(dataclasses.asdict(outcome))
                    continue
                _save(run_dir, outcome, order)
                tracking.log_trial(config, run_dir, variants[outcome.variant], outcome)
                progress.trial_done(outcome)
    except KeyboardInterrupt:
        # the interrupt may have landed between a trial.json and the tables built from it
        results.rebuild_tables(run_dir, order)
        _finish_metadata(run_dir, metadata, "interrupted")
        raise
    except Exception:
        _finish_metadata(run_dir, metadata, "failed")
        raise
    finally:
        progress.stop()
    if failures:
        _finish_metadata(run_dir, metadata, "failed")
        raise executors.TrialsFailedError(failures)
    _finish_metadata(run_dir, metadata, "complete")


def _save(run_dir, record, order) -> None:
    try:
        results.save_trial(run_dir, record, order)
    except OSError as error:
        raise results.RunFolderError(
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


def _set_determinism(deterministic: bool) -> None:
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def train_trial(
    config: ExperimentConfig,
    variant: VariantConfig,
    seed: int,
    splits: Splits,
    on_epoch=lambda row: None,
    *,
    log_dir: Path | None = None,
) -> results.TrialRecord:
    """Train and evaluate one variant with one seed.

    Args:
        config: the experiment.
        variant: which model (registry name, label, builder overrides).
        seed: passed to `keras.utils.set_random_seed` before the model is built.
        splits: the data, raw uint8 images as `split_mnist` returns them.
        on_epoch: called with each per-epoch row as it is recorded.
        log_dir: where Keras's TensorBoard callback writes this trial's logs (None: no TensorBoard).

    Returns:
        The trial's per-epoch table, derived figures and per-target rows.
    """
    keras.utils.set_random_seed(seed)
    spec = get_variant(variant.name)
    model = build_model(variant.name, **variant.overrides)
    training = config.training_for(variant)
    model.compile(
        optimizer=_optimizer(training.optimizer),
        loss=training.loss,
        metrics=["accuracy"],
        # Keras's torch trainer takes one step per call and rejects more (the same steps), and
        # its jit_compile (torch.compile) cost 35 s a trial here with no faster epoch: eager.
        steps_per_execution=1 if keras.backend.backend() == "torch" else training.steps_per_execution,
        jit_compile=training.jit_compile and keras.backend.backend() != "torch",
    )
    x_train, x_val = spec.preprocess(splits.x_train), spec.preprocess(splits.x_val)
    every = training.eval_every_steps if training.step_mode else training.steps_per_epoch(len(x_train))
    evaluator = Evaluator((x_train, splits.y_train, x_val, splits.y_val), training.eval_batch_size, on_epoch,
                           every_steps=training.eval_every_steps, total_steps=training.steps)
    callbacks = [evaluator]
    probe = _activation_probe(config.activation_probe, model, x_val, every)
    if probe is not None:
        callbacks.insert(0, probe)
    if log_dir is not None:  # epoch scalars only: batch summaries and profiling would slow training
        callbacks.append(keras.callbacks.TensorBoard(str(log_dir), update_freq="epoch", profile_batch=0))
    model.fit(
        x_train,
        splits.y_train,
        batch_size=training.batch_size,
        epochs=training.fit_epochs(len(x_train)),
        callbacks=callbacks,
        verbose=0,
    )
    test = model.evaluate(
        spec.preprocess(splits.x_test), splits.y_test,
        batch_size=training.eval_batch_size, verbose=0, return_dict=True,
    )
    activations = probe.as_frame() if probe is not None else None
    predictions = _test_predictions(model, spec.preprocess(splits.x_test), splits.y_test, training.eval_batch_size)
    record = _trial_record(config, variant, seed, model, pd.DataFrame(evaluator.rows), test, activations)
    return dataclasses.replace(record, test_predictions=predictions)


def _test_predictions(model, x_test, y_test, batch_size) -> TestPredictions:
    """The predicted class of every test image, for paired tests over examples (McNemar)."""
    scores = model.predict(x_test, batch_size=batch_size, verbose=0)
    return TestPredictions(np.argmax(scores, axis=1).astype(np.uint8), np.asarray(y_test, dtype=np.uint8))


def _activation_probe(probe_config, model, x_val, every_steps) -> ActivationPercentiles | None:
    """The config's activation probe for this model, recording at every evaluation."""
    if probe_config is None:
        return None
    return ActivationPercentiles(
        nonlinearity_layer(model, probe_config.hidden_layer),
        x_val[: probe_config.probe_examples],
        every_n_steps=every_steps,
        units=probe_config.units,
        percentiles=probe_config.percentiles,
    )


def _trial_record(config, variant, seed, model, epochs, test, activations) -> results.TrialRecord:
    diverged = epochs[~np.isfinite(epochs["loss"])]
    summary = {
        "variant_name": variant.name,
        **_grid_columns(variant),
        "status": "diverged" if len(diverged) else "complete",
        "diverged_epoch": int(diverged["epoch"].iloc[0]) if len(diverged) else None,
        **metrics.summarize_trial(epochs, config.targets),
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "backend": keras.backend.backend(),  # a grid over backends trains trials on several
        "params_total": model.count_params(),
        "params_trainable": _count(model.trainable_weights),
        "params_non_trainable": _count(model.non_trainable_weights),
    }
    return results.TrialRecord(
        variant.label, seed, epochs, summary, metrics.target_table(epochs, config.targets), activations
    )


def _grid_columns(variant: VariantConfig) -> dict:
    """For a trial of a grid: the config's variant label and one column per grid key."""
    if not variant.grid_point:
        return {}
    return {"base_variant": variant.base_label,
            **{grid_column(key): value for key, value in variant.grid_point.items()}}


def _count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def _optimizer(optimizer_config):
    cls = type(keras.optimizers.get(optimizer_config.name))
    return cls(**optimizer_config.params)


def _check_variants_build(config: ExperimentConfig) -> None:
    problems = []
    for index, variant in enumerate(config.variants):
        try:
            build_model(variant.name, **variant.overrides)
        except ValueError as error:
            problems.append(f"{config.name}: variants[{index}].overrides: {error}")
    if problems:
        raise ConfigError(problems)


def _load_splits(config: ExperimentConfig, data_source) -> Splits:
    dataset = config.dataset
    splits = split_mnist(
        load_mnist(data_source),
        validation=dataset.validation,
        validation_size=dataset.validation_size,
        train_subset=dataset.train_subset,
        stratify=dataset.stratify,
    )
    return binarize_splits(splits) if dataset.binarize else splits


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _start_metadata(run_dir: Path, config: ExperimentConfig, finished: int, pending: int) -> dict:
    metadata = results.read_metadata(run_dir)
    session = {"started": _now(), "trials_already_finished": finished, "trials_to_run": pending}
    metadata.update(environment.describe(), deterministic=config.training.deterministic)
    metadata.setdefault("started", session["started"])
    metadata["sessions"] = metadata.get("sessions", []) + [session]
    metadata.update(status="running", finished=None)
    results.write_metadata(run_dir, metadata)
    return metadata


def _finish_metadata(run_dir: Path, metadata: dict, status: str) -> None:
    metadata.update(status=status, finished=_now())
    metadata["sessions"][-1]["ended"] = metadata["finished"]
    try:
        results.write_metadata(run_dir, metadata)
    except OSError:
        if status == "complete":
            raise
        # the run is already failing (a full disk, say); its own error says more than this one
