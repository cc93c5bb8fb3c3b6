"""Train and evaluate one trial (one variant, one seed) of an experiment; no run folders.

`train_trial` is what every executor calls, in this process, in a backend process or on a Dask
worker: it builds the model, compiles it, fits it with the evaluator (and the activation probe
when the config asks), scores the test set and returns a `TrialRecord`.

Example:
    >>> config = load_config("tiny")
    >>> record = train_trial(config, config.trial_variants[0], 0, load_splits(config))
    >>> record.epochs[["epoch", "val_accuracy"]]
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from bnlab.common.backends import compile_settings
from bnlab.config import ExperimentConfig, VariantConfig, grid_column
from bnlab.data.mnist import load_mnist
from bnlab.data.splits import Splits, binarize_splits, split_mnist
from bnlab.models.builders import build_model, nonlinearity_layer
from bnlab.models.population import bn_discrepancy, has_top_level_batch_norm
from bnlab.models.variants import get_variant
from bnlab.training import summary as trial_summary
from bnlab.training.compiled import CompiledModels, model_kind
from bnlab.training.eval_modes import ModeScorer
from bnlab.training.evaluator import Evaluator
from bnlab.training.fused import fit
from bnlab.training.inference import score_test, train_eval_subset
from bnlab.training.inputs import trial_inputs
from bnlab.training.mechanisms import start_probes
from bnlab.training.order import EpochOrder
from bnlab.training.probes import ActivationPercentiles
from bnlab.training.record import TrialRecord
from bnlab.training.scale import restrict_weight_decay

# This process's compiled models, reused by later trials of the same kind (`training.reuse_compiled`).
COMPILED = CompiledModels()


def load_splits(config: ExperimentConfig, data_source=None) -> Splits:
    """The config's training, validation and test images (`data_source`: see `load_mnist`)."""
    dataset = config.dataset
    splits = split_mnist(
        load_mnist(data_source),
        validation=dataset.validation,
        validation_size=dataset.validation_size,
        train_subset=dataset.train_subset,
        stratify=dataset.stratify,
    )
    return binarize_splits(splits) if dataset.binarize else splits


def set_determinism(deterministic: bool) -> None:
    """TensorFlow's deterministic ops when the config asks (`training.deterministic`)."""
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
) -> TrialRecord:
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
    training = config.training_for(variant)
    inputs = trial_inputs(spec, splits)
    x_train, x_val = inputs.x_train, inputs.x_val
    model = _compiled_model(build_model(variant.name, **variant.overrides), variant, training, len(x_train))
    every = training.eval_every_steps if training.step_mode else training.steps_per_epoch(len(x_train))
    scorer = ModeScorer(config.evaluation, x_train, training.batch_size, training.eval_batch_size)
    evaluator = Evaluator((x_train, splits.y_train, x_val, splits.y_val), training.eval_batch_size, on_epoch,
                          every_steps=training.eval_every_steps, total_steps=training.steps,
                          scorer=scorer if config.evaluation.modes else None,
                          train_subset=train_eval_subset(splits.y_train, config.evaluation.train_eval_examples, seed))
    probe = _activation_probe(config.activation_probe, model, x_val, every)
    mechanisms = start_probes(config.probes, model, x_train, splits.y_train, every,
                              training.optimizer.params["learning_rate"])  # required by the config
    callbacks = [*mechanisms.callbacks.values(), *_callbacks(evaluator, probe, log_dir)]
    order = (EpochOrder(len(x_train), seed, reshuffle=training.data_order == "reshuffled")
             if training.data_order != "keras" else None)  # None: Keras's
    fit(model, inputs.fit_x, splits.y_train, batch_size=training.batch_size,
        epochs=training.fit_epochs(len(x_train)), callbacks=callbacks, fused=training.fused_steps, order=order)
    test, predictions = score_test(model, inputs.x_test, splits.y_test, training.eval_batch_size)
    activations = probe.as_frame() if probe is not None else None
    record = _trial_record(config, variant, seed, model, pd.DataFrame(evaluator.rows), test, activations)
    record.summary.update(mechanisms.summary())
    # a user's model with BN inside a nested model trains as ever, without the table
    discrepancy = (bn_discrepancy(model, scorer.x_statistics, batch_size=training.eval_batch_size)
                   if has_top_level_batch_norm(model) else None)
    model_file = _model_file(model) if training.save_model else None
    return dataclasses.replace(record, test_predictions=predictions, discrepancy=discrepancy, model_file=model_file,
                               probe_tables=mechanisms.tables())


def _model_file(model) -> bytes:
    """The trained model as the bytes of a .keras file (a record travels between processes as plain data)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


def _compiled_model(model, variant, training, train_images: int):
    """`model` compiled for the trial, or a model of the same kind an earlier trial compiled, in `model`'s state.

    Torch trials always compile afresh (Keras's torch trainer runs eagerly here: nothing to reuse,
    and its data order with a reused model is untested).
    """
    optimizer = _optimizer(training.optimizer)
    backend = keras.backend.backend()
    if not training.reuse_compiled or backend == "torch":
        _compile(model, optimizer, training)
        return model
    kind = model_kind(model, variant.name, variant.overrides, training, backend)
    compiled = COMPILED.take(kind, model, optimizer, lambda fresh, new: _compile(fresh, new, training))
    if compiled is not model and backend == "jax" and training.data_order == "keras":
        # Keras's JAX fit builds a fresh model's loss and metrics from the first batch of a shuffled
        # epoch: one numpy permutation of the training images that a reused (built) model does not
        # draw. Drawn here, the reused model's epochs see the data in the fresh model's order.
        np.random.permutation(train_images)
    return compiled


def _compile(model, optimizer, training) -> None:
    """Compile with the trial's optimizer and loss, and the execution settings its backend can run."""
    if training.weight_decay_on != "all" and training.optimizer.params.get("weight_decay"):
        restrict_weight_decay(model, optimizer, training.weight_decay_on)
    model.compile(
        optimizer=optimizer,
        loss=training.loss,
        metrics=["accuracy"],
        **compile_settings(keras.backend.backend(), training.steps_per_execution, training.jit_compile),
    )


def _callbacks(evaluator, probe, log_dir) -> list:
    """The probe, the evaluator, then TensorBoard, which logs the validation figures the evaluator adds."""
    callbacks = ([probe] if probe is not None else []) + [evaluator]
    if log_dir is not None:  # epoch scalars only: batch summaries and profiling would slow training
        callbacks.append(keras.callbacks.TensorBoard(str(log_dir), update_freq="epoch", profile_batch=0))
    return callbacks


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


def _trial_record(config, variant, seed, model, epochs, test, activations) -> TrialRecord:
    diverged = epochs[~np.isfinite(epochs["loss"])]
    summary = {
        "variant_name": variant.name,
        **_grid_columns(variant),
        "status": "diverged" if len(diverged) else "complete",
        "diverged_epoch": int(diverged["epoch"].iloc[0]) if len(diverged) else None,
        **trial_summary.summarize_trial(epochs, config.targets),
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "backend": keras.backend.backend(),  # a grid over backends trains trials on several
        "params_total": model.count_params(),
        "params_trainable": _count(model.trainable_weights),
        "params_non_trainable": _count(model.non_trainable_weights),
    }
    return TrialRecord(
        variant.label, seed, epochs, summary, trial_summary.target_table(epochs, config.targets), activations
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
