"""ActivationPercentiles: exact percentiles, no effect on BN statistics, the right steps."""

import keras
import numpy as np
import pytest

import bnlab
from bnlab.training.probes import ActivationPercentiles


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 28, 28)).astype("float32"), rng.integers(0, 10, size=n)


def _fit(model, callback, steps_per_execution=1, epochs=1, n=64, batch_size=8):
    x, y = _data(n)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", steps_per_execution=steps_per_execution)
    model.fit(x, y, batch_size=batch_size, epochs=epochs, callbacks=[callback], verbose=0, shuffle=False)


def test_percentiles_of_the_bn_output_are_exact():
    keras.utils.set_random_seed(0)
    model = bnlab.build_model("bn_before_activation", hidden_units=(6, 5))
    probe, _ = _data(32, seed=1)
    watch = ActivationPercentiles("hidden_2_bn", probe, every_n_steps=4, units=[0, 3])
    _fit(model, watch)
    last = watch.as_frame().query(f"step == {watch.records[-1]['step']}")
    watched = keras.Model(model.inputs, model.get_layer("hidden_2_bn").output)(probe, training=False)
    expected = np.percentile(keras.ops.convert_to_numpy(watched)[:, [0, 3]], [15, 50, 85], axis=0)
    np.testing.assert_allclose(last[["p15", "p50", "p85"]].to_numpy(), expected.T, rtol=1e-6)
    assert list(last["unit"]) == [0, 3]


def test_fused_dense_activation_is_watched_before_the_nonlinearity():
    keras.utils.set_random_seed(0)
    model = bnlab.build_model("no_bn", hidden_units=(4,), activation="sigmoid")
    dense = model.get_layer("hidden_1")
    dense.kernel.assign(np.zeros((784, 4), dtype="float32"))
    dense.bias.assign(np.array([-3.0, 0.0, 1.0, 5.0], dtype="float32"))
    probe, _ = _data(16)
    watch = ActivationPercentiles("hidden_1", probe, every_n_steps=1000)
    watch.set_model(model)
    watch.model.optimizer = keras.optimizers.SGD()
    watch.on_train_begin()
    # kernel 0: every example's pre-activation is the bias, not sigmoid(bias)
    assert [(r["unit"], r["p15"], r["p50"], r["p85"]) for r in watch.records] == [
        (0, -3.0, -3.0, -3.0), (1, 0.0, 0.0, 0.0), (2, 1.0, 1.0, 1.0), (3, 5.0, 5.0, 5.0)]


def test_recording_leaves_bn_moving_statistics_unchanged():
    probe, _ = _data(32, seed=2)

    def moving_stats(with_callback):
        keras.utils.set_random_seed(0)
        model = bnlab.build_model("bn_before_activation", hidden_units=(6, 5))
        callbacks = ActivationPercentiles("hidden_1_bn", probe, every_n_steps=1)
        _fit(model, callbacks if with_callback else keras.callbacks.Callback())
        bn = model.get_layer("hidden_1_bn")
        return np.concatenate([np.array(bn.moving_mean), np.array(bn.moving_variance)])

    np.testing.assert_array_equal(moving_stats(True), moving_stats(False))


@pytest.mark.parametrize("steps_per_execution, expected", [(1, [0, 3, 6]), (2, [0, 4, 6])])
def test_records_at_the_right_steps(steps_per_execution, expected):
    keras.utils.set_random_seed(0)
    model = bnlab.build_model("no_bn", hidden_units=(4,))
    probe, _ = _data(8)
    watch = ActivationPercentiles("hidden_1", probe, every_n_steps=3, units=[0])
    _fit(model, watch, steps_per_execution=steps_per_execution)  # 64 images / 8 = 8 steps
    assert [r["step"] for r in watch.records] == expected


def test_unknown_layer_lists_the_layers():
    model = bnlab.build_model("no_bn", hidden_units=(4,))
    watch = ActivationPercentiles("hidden_9", np.zeros((2, 28, 28), "float32"))
    watch.set_model(model)
    with pytest.raises(ValueError, match=r"no layer named 'hidden_9' .*Layers: flatten, hidden_1, output"):
        watch.on_train_begin()


def test_activation_layer_is_watched_at_its_input():
    keras.utils.set_random_seed(0)
    model = bnlab.build_model("bn_before_activation", hidden_units=(4,), activation="sigmoid")
    probe, _ = _data(40, seed=3)
    watch = ActivationPercentiles("hidden_1_sigmoid", probe, every_n_steps=1000)
    watch.set_model(model)
    watch.model.optimizer = keras.optimizers.SGD()
    watch.on_train_begin()
    # the sigmoid's input is BN's output: values beyond (0, 1), which sigmoid outputs never reach
    bn_output = keras.Model(model.inputs, model.get_layer("hidden_1_bn").output)(probe, training=False)
    expected = np.percentile(keras.ops.convert_to_numpy(bn_output), [15, 50, 85], axis=0)
    np.testing.assert_allclose(watch.as_frame()[["p15", "p50", "p85"]].to_numpy(), expected.T, rtol=1e-6)
    assert expected.min() < 0
