"""Fused steps (`training.fused_steps`, bnlab.training.fused): Keras's figures, Keras's data order, every variant.

Checked against Keras's own `fit` loop with the same seed and order (the default, reshuffled every
epoch: Keras's loop is fed `bnlab.training.order.ordered_tf_dataset`): every per-epoch figure and the
test score agree to float32 rounding. Batch renorm's shorter last batch still rounds a last bit otherwise
(its weights differ by 1e-7 after an epoch of 55,000 images); over 5 epochs such a bit grows to
differences of seed-to-seed size (0.1 points of accuracy: the small_batch study's renorm_g4).
"""

import keras
import numpy as np
import pytest

import bnlab
from bnlab.models.variants import list_variants
from bnlab.training import fused, trial

FIGURES = ["step", "loss", "accuracy", "val_loss", "val_accuracy", "train_eval_loss", "train_eval_accuracy"]
# 512 images at batch size 48: 10 full batches and one of 32 an epoch; 4 steps an execution: executions
# of 4, 4 and 3 batches, the last with the shorter batch
CUT = {"training.epochs": 2, "training.batch_size": 48, "training.steps_per_execution": 4, "seeds": [3]}


@pytest.fixture
def fused_calls(monkeypatch) -> list:
    """Every call of the fused train function, so that a test knows which loop ran."""
    calls, call = [], fused.TrainFunction.__call__
    monkeypatch.setattr(fused.TrainFunction, "__call__", lambda self, iterator: calls.append(1) or call(self, iterator))
    return calls


def train(variant: str, fused_steps: bool, **settings):
    config = bnlab.load_config("tiny", {**CUT, "variants": [variant], "training.fused_steps": fused_steps,
                                        "training.reuse_compiled": False, **settings})
    return trial.train_trial(config, config.variants[0], 3, trial.load_splits(config))


@pytest.mark.parametrize("variant", list_variants())
def test_fused_steps_give_kerass_figures(variant, fused_calls):
    ours = train(variant, True)
    assert len(fused_calls) == 2 * 3  # 2 epochs of 3 executions ran fused
    keras_loop = train(variant, False)
    assert len(fused_calls) == 2 * 3  # and none of Keras's loop
    np.testing.assert_allclose(ours.epochs[FIGURES].to_numpy(), keras_loop.epochs[FIGURES].to_numpy(),
                               rtol=1e-6, atol=0)
    assert ours.summary["test_accuracy"] == pytest.approx(keras_loop.summary["test_accuracy"], rel=1e-6, abs=0)
    assert ours.summary["test_loss"] == pytest.approx(keras_loop.summary["test_loss"], rel=1e-6, abs=0)


def test_ghost_bn_with_a_partial_last_slice_gives_kerass_figures(fused_calls):
    """The shorter last batch (32) holds two slices of 12 and a partial one of 8. Traced as Keras traces
    its step (batch size unknown; the next test), the fused fit left Keras's weights to the last bit on the
    Intel Xeon of sessions 1-12, so every figure scored from them was identical; on an AMD EPYC (no AVX-512)
    two validation losses of 15 differ in their last bit (2.4e-7), as XLA vectorizes the two loops otherwise.
    In Keras's order, so that the reference is Keras's loop over its own array pipeline, untouched by bnlab."""
    variant = {"name": "ghost_bn_before_activation", "label": "ghost_g12", "overrides": {"virtual_batch_size": 12}}
    settings = {"training.epochs": 3, "training.data_order": "keras"}
    ours, keras_loop = train(variant, True, **settings), train(variant, False, **settings)
    assert len(fused_calls) == 3 * 3
    np.testing.assert_array_equal(ours.epochs[["step", "val_accuracy", "train_eval_accuracy"]].to_numpy(),
                                  keras_loop.epochs[["step", "val_accuracy", "train_eval_accuracy"]].to_numpy())
    assert ours.summary["test_accuracy"] == keras_loop.summary["test_accuracy"]
    assert ours.summary["test_loss"] == pytest.approx(keras_loop.summary["test_loss"], rel=1e-6, abs=0)
    np.testing.assert_allclose(ours.epochs[FIGURES].to_numpy(), keras_loop.epochs[FIGURES].to_numpy(), rtol=1e-6)


def test_the_last_batch_step_is_traced_with_the_batch_size_unknown():
    """As Keras's step, whose batches come from a dataset whose element spec leaves the batch size unknown:
    traced with the batch's own size, ghost BN's partial last slice was rounded otherwise (docs/speed.md)."""
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = bnlab.build_model("ghost_bn_before_activation", virtual_batch_size=12)
    model.compile("sgd", "sparse_categorical_crossentropy", jit_compile=True, steps_per_execution=4)
    x, y = tf.zeros((32, 28, 28)), tf.zeros((32,), tf.int32)
    model._symbolic_build(data_batch=(x[:1], y[:1]))
    steps = fused.FusedSteps(model)
    steps.last_batch(x, y)
    (step,) = steps._last_batch.values()
    (images, labels), = step.structured_input_signature[0]
    assert images.shape.as_list() == [None, 28, 28] and labels.shape.as_list() == [None]


def test_fused_steps_feed_kerass_batches_in_kerass_order(fused_calls):
    """Each step sees the rows Keras's own fit gives it (a model whose step reports its batch's rows)."""

    class Rows(keras.Model):
        def train_step(self, data):
            x, _ = data
            return {"first": x[0, 0], "last": x[-1, 0]}

    def seen(fused_steps: bool) -> list:
        keras.utils.set_random_seed(5)
        inputs = keras.Input((1,))
        model = Rows(inputs, keras.layers.Dense(1)(inputs))
        model.compile("sgd", "mse", steps_per_execution=1 if not fused_steps else 3, jit_compile=True)
        rows = []
        callback = keras.callbacks.LambdaCallback(on_train_batch_end=lambda _, logs: rows.append(
            (float(logs["first"]), float(logs["last"]))))
        x = np.arange(100, dtype="float32")[:, None]
        fused.fit(model, x, np.zeros(100, "float32"), batch_size=8, epochs=2, callbacks=[callback],
                  fused=fused_steps)
        return rows

    keras_order, ours = seen(False), seen(True)
    assert len(fused_calls) == 10  # ours ran fused: 5 executions an epoch
    assert len(keras_order) == 26 and len(ours) == 10  # 13 batches (12 of 8, one of 4) x 2; 3 per execution
    # our rows are those of each execution's last batch: batches 3, 6, 9, 12, 13 of each epoch
    assert ours == [keras_order[epoch * 13 + batch - 1] for epoch in range(2) for batch in (3, 6, 9, 12, 13)]
    assert [first for first, _ in keras_order[:12]] != list(range(0, 96, 8))  # shuffled
    # (seeded Keras on TensorFlow draws one permutation and repeats it every epoch; JAX draws one an epoch)


def test_fusing_applies_only_to_tensorflow_with_xla_and_several_steps():
    def compiled(**settings):
        model = bnlab.build_model("no_bn")
        model.compile("sgd", "sparse_categorical_crossentropy", **settings)
        return model

    assert fused.fused_fit_applies(compiled(steps_per_execution=4, jit_compile=True))
    assert not fused.fused_fit_applies(compiled(steps_per_execution=1, jit_compile=True))
    assert not fused.fused_fit_applies(compiled(steps_per_execution=4, jit_compile=False))


def test_a_model_fused_before_fits_with_kerass_loop_when_asked():
    config = bnlab.load_config("tiny", {**CUT, "variants": ["no_bn"]})
    splits = trial.load_splits(config)
    x = bnlab.preprocess_input("no_bn", splits.x_train)
    model = bnlab.build_model("no_bn")
    trial._compile(model, trial._optimizer(config.training.optimizer), config.training)
    fused.fit(model, x, splits.y_train, batch_size=48, epochs=1, callbacks=[])
    assert isinstance(model.train_function, fused.TrainFunction)
    history = fused.fit(model, x, splits.y_train, batch_size=48, epochs=1, callbacks=[], fused=False)
    assert not isinstance(model.train_function, fused.TrainFunction)
    assert int(model.optimizer.iterations.numpy()) == 2 * 11 and np.isfinite(history.history["loss"][0])
