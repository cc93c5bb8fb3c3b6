"""Noisy batch normalization (Santurkar et al. 2018, sec. 2.1) and scale invariance with weight decay
(van Laarhoven 2017; Hoffer et al. 2018): bnlab.models.noise and bnlab.training.scale.

The noise's distribution, its resampling, seeding and a jit-compiled fit are checked on every installed
backend, each in its own process (tests/scripts/noise_backend.py); the rest runs on the suite's backend.
"""

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
from backend_scripts import BACKENDS, run_script

import bnlab
from bnlab.models.builders import build_mlp
from bnlab.models.layers import GhostBatchNormalization
from bnlab.models.noise import NoisyBatchNormalization
from bnlab.training.scale import KernelNorms, normalized_kernels, restrict_weight_decay

SCRIPT = Path(__file__).parent / "scripts" / "noise_backend.py"
TENSORFLOW_ONLY = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.GradientTape")


def numpy_of(tensor) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(tensor), "float64")


def data(batch: int, features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, features)).astype("float32"), np.arange(batch) % 2


def dense_bn_model(**bn_options) -> keras.Model:
    """hidden (Dense without bias) -> bn -> output (Dense with bias, softmax): the smallest BN network."""
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, use_bias=False, name="hidden"),
                             keras.layers.BatchNormalization(name="bn", **bn_options),
                             keras.layers.Dense(2, activation="softmax", name="output")])


def loss_gradients(model, x, y, variables):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy()(y, model(x, training=True))
    return [numpy_of(gradient) for gradient in tape.gradient(loss, variables)]


# ---- NoisyBatchNormalization --------------------------------------------------------------------


def _script_constants():
    spec = importlib.util.spec_from_file_location("noise_backend", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend", BACKENDS)
def test_noisy_batch_normalization_on_every_backend(backend):
    results, c = run_script(SCRIPT, backend), _script_constants()
    assert results["backend"] == backend and (c.NOISE_MEAN, c.NOISE_STDDEV) == (1.0, 2.0)
    assert results["inference_difference"] == 0.0  # inference: exactly Keras BN with the same weights
    assert results["moving_statistics_difference"] < 1e-6  # updated from the inputs, not the noise
    # 4000 examples a unit: a unit's sample mean is within 4 standard errors (4 * 2 / sqrt(4000) < 0.13)
    # of its drawn mean in [-1, 1], its sample std within 0.1 of its drawn std in [1, 2].
    for call in results["calls"]:
        means, stds = np.array(call["mean"]), np.array(call["std"])
        assert np.abs(means).max() < 1.13 and 0.9 < stds.min() and stds.max() < 2.1
        # across 64 units: U(-1, 1) has mean 0 and variance 1/3, U(1, 2) mean 1.5 (4-sigma bounds)
        assert abs(means.mean()) < 0.3 and 0.18 < means.var() < 0.5 and abs(stds.mean() - 1.5) < 0.15
        # Gaussian given the unit: skewness 0 and excess kurtosis 0, averaged over the 64 units
        assert abs(call["skewness"]) < 0.05 and abs(call["excess_kurtosis"]) < 0.1
    first, second = results["calls"]
    assert np.abs(np.subtract(first["mean"], second["mean"])).max() > 0.5  # a new distribution each call
    assert np.abs(np.subtract(first["std"], second["std"])).max() > 0.2
    assert results["same_seed_difference"] == 0.0 and results["other_seed_difference"] > 0.1
    # jit-compiled, 4 steps an execution, it trains; on TensorFlow it gives the eager weights: the same noise
    # stream, drawn with XLA either way (the script makes the eager fit on TensorFlow only)
    assert results["kernel_moved"] > 1e-3 and results["finite"]
    if backend == "tensorflow":
        assert results["compiled_minus_eager"] < 1e-5
    else:
        assert results["compiled_minus_eager"] is None


def test_the_global_seed_seeds_the_noise():
    x, outputs = data(16, 3)[0], []
    for seed in (3, 3, 4):
        keras.utils.set_random_seed(seed)
        layer = NoisyBatchNormalization()
        outputs.append([numpy_of(layer(x, training=True)) for _ in range(2)])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert np.abs(outputs[0][0] - outputs[0][1]).max() > 0.1  # the second call draws new noise
    assert np.abs(outputs[0][0] - outputs[2][0]).max() > 0.1


@pytest.mark.parametrize("options, message", [
    ({"noise_mean": -0.1}, "NoisyBatchNormalization: noise_mean must be a finite number of at least 0 (each step's "
                           "noise mean is drawn from [-noise_mean, noise_mean]); received -0.1."),
    ({"noise_mean": float("inf")}, "noise_mean must be a finite number of at least 0"),
    ({"noise_stddev": 0.5}, "noise_stddev must be a finite number of at least 1 (each step's noise standard "
                            "deviation is drawn from [1, noise_stddev]); received 0.5."),
    ({"noise_stddev": True}, "received True."),
    ({"seed": 1.5}, "seed must be None or an integer; received 1.5."),
])
def test_invalid_noise_arguments_say_what_was_expected(options, message):
    with pytest.raises(ValueError) as raised:
        NoisyBatchNormalization(**options)
    assert message in str(raised.value)


def test_saved_model_loads_without_custom_objects(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6),
                              NoisyBatchNormalization(noise_mean=0.25, noise_stddev=1.75, seed=3, momentum=0.8),
                              keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = data(20, 5)[0], data(20, 2, seed=1)[0]
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    layer = loaded.layers[1]
    assert type(layer) is NoisyBatchNormalization and layer.get_config() == model.layers[1].get_config()
    assert (layer.noise_mean, layer.noise_stddev, layer.seed, layer.momentum) == (0.25, 1.75, 3, 0.8)


def test_builder_options_reach_the_noisy_layers():
    model = build_mlp(hidden_units=(8, 6), batch_norm="before_activation", normalization="noisy", noise_mean=0.2,
                      noise_stddev=2.5, momentum=0.9)
    layers = [model.get_layer(f"hidden_{i}_noisy_bn") for i in (1, 2)]
    assert [(layer.noise_mean, layer.noise_stddev, layer.momentum) for layer in layers] == [(0.2, 2.5, 0.9)] * 2
    assert bnlab.get_variant("noisy_bn_before_activation").builder_args() == {
        "batch_norm": "before_activation", "input_normalization": "none", "name": "noisy_bn_before_activation",
        "normalization": "noisy"}


@pytest.mark.parametrize("arguments, message", [
    ({"noise_mean": -1.0}, r"build_mlp: noise_mean must be a number of at least 0 \(0: zero-mean noise\); "
                           r"received -1\.0\."),
    ({"noise_stddev": 0.5}, r"noise_stddev must be a number of at least 1 \(1: unit-variance noise\); received 0\.5"),
    ({"noise_stddev": float("nan")}, r"noise_stddev must be .*received nan"),
])
def test_bad_noise_builder_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        build_mlp(normalization="noisy", **arguments)


# ---- scale invariance ---------------------------------------------------------------------------


@TENSORFLOW_ONLY
def test_a_kernel_that_feeds_batch_normalization_is_scale_invariant():
    keras.utils.set_random_seed(0)
    # epsilon 1e-6 against pre-activation variances of about 0.5: BN(3 W x) = BN(W x) to ~1e-6
    model = build_mlp(hidden_units=(16, 8), batch_norm="before_activation", input_shape=(6,), num_classes=3,
                      epsilon=1e-6)
    x, y = data(32, 6)
    kernels = [model.get_layer(name).kernel for name in ("hidden_1", "hidden_2")]
    before, gradients = numpy_of(model(x, training=True)), loss_gradients(model, x, y, kernels)
    kernels[0].assign(kernels[0] * 3.0)
    after, scaled_gradients = numpy_of(model(x, training=True)), loss_gradients(model, x, y, kernels)
    np.testing.assert_allclose(after, before, atol=1e-5)  # softmax outputs, tolerance 1e-5
    np.testing.assert_allclose(scaled_gradients[0], gradients[0] / 3.0, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(scaled_gradients[1], gradients[1], rtol=1e-3, atol=1e-7)  # the next layer: as before
    assert np.abs(gradients[0]).max() > 1e-3  # a gradient that could have been wrong


@pytest.mark.parametrize("variant, expected", [
    ("bn_before_activation", ["hidden_1", "hidden_2"]),
    ("bn_after_activation", []),  # Dense(activation) -> BN: the fused activation sits between
    ("no_bn", []),
])
def test_normalized_kernels_of_bnlab_models(variant, expected):
    model = bnlab.build_model(variant)
    found = normalized_kernels(model)
    assert [name for name, _ in found] == expected
    assert all(kernel is model.get_layer(name).kernel for name, kernel in found)


def test_normalized_kernels_follow_the_graph():
    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(2, 3, use_bias=False, name="conv")(inputs)
    flat = keras.layers.Flatten()(keras.layers.BatchNormalization()(conv))
    shared = keras.layers.Dense(4, name="shared")(flat)  # feeds BN and an activation: not only BN
    ghost = GhostBatchNormalization(virtual_batch_size=2)(shared)
    side = keras.layers.Activation("relu")(shared)
    fused = keras.layers.Dense(4, activation="relu", name="fused")(ghost)  # its activation before BN
    exposed = keras.layers.Dense(4, name="exposed")(keras.layers.BatchNormalization()(fused))  # also an output
    tail = keras.layers.Dense(4, name="tail")(keras.layers.Concatenate()([side, exposed]))
    model = keras.Model(inputs, [keras.layers.BatchNormalization()(tail), exposed,
                                 keras.layers.BatchNormalization()(exposed)])
    assert [name for name, _ in normalized_kernels(model)] == ["conv", "tail"]


def test_normalized_kernels_need_a_graph():
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match=r"normalized_kernels: expected a functional or Sequential model built from "
                                         r"keras.Input.*received Subclassed 'sub'"):
        normalized_kernels(Subclassed(name="sub"))


# ---- KernelNorms --------------------------------------------------------------------------------


@TENSORFLOW_ONLY
def test_kernel_norms_by_hand_after_one_sgd_step():
    keras.utils.set_random_seed(0)
    model, (x, y) = dense_bn_model(), data(8, 4)
    hidden = model.get_layer("hidden").kernel
    start, gradient = numpy_of(hidden), loss_gradients(model, x, y, [hidden])[0]
    output_start = numpy_of(model.get_layer("output").kernel)
    norms = KernelNorms(every_n_steps=1)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[norms])
    stepped = start - 0.1 * gradient  # the one SGD step, by hand
    np.testing.assert_allclose(numpy_of(hidden), stepped, rtol=1e-5, atol=1e-7)
    table = norms.as_frame().set_index(["step", "layer"])
    assert list(table.index) == [(0, "hidden"), (0, "output"), (1, "hidden"), (1, "output")]
    assert table["normalized"].tolist() == [True, False, True, False]
    first, after = table.loc[(0, "hidden")], table.loc[(1, "hidden")]
    norm = np.linalg.norm(start)
    assert first["kernel_norm"] == pytest.approx(norm, rel=1e-6)
    assert first["effective_learning_rate"] == pytest.approx(0.1 / norm**2, rel=1e-6)
    assert np.isnan(first["angle_degrees"]) and np.isnan(first["steps_between"])
    assert table.loc[(0, "output"), "kernel_norm"] == pytest.approx(np.linalg.norm(output_start), rel=1e-6)
    cosine = np.sum(start * stepped) / (np.linalg.norm(start) * np.linalg.norm(stepped))
    assert after["angle_degrees"] == pytest.approx(np.degrees(np.arccos(cosine)), rel=1e-3)
    assert after["angle_degrees"] > 0.01 and after["steps_between"] == 1
    assert after["kernel_norm"] == pytest.approx(np.linalg.norm(stepped), rel=1e-5)
    assert after["effective_learning_rate"] == pytest.approx(0.1 / np.linalg.norm(stepped) ** 2, rel=1e-5)


def test_kernel_norms_with_steps_per_execution_leave_training_unchanged():
    # 10 steps in executions of 2: batch ends at 2, 4, ..., 10; records at 0, then the first batch end at or
    # after 3, 6 and 9: steps 4, 6 and 10, each compared with the kernel of the batch end 2 steps before.
    keras.utils.set_random_seed(0)
    model, (x, y) = dense_bn_model(), data(20, 4)
    initial, final, seen = model.get_weights(), [], {}
    watch = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.update(
        {int(numpy_of(model.optimizer.iterations)): numpy_of(model.get_layer("hidden").kernel)}))
    norms = KernelNorms(every_n_steps=3, layers=["hidden"])
    for callbacks in ([], [norms, watch]):
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy",
                      steps_per_execution=2)
        model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)
        final.append(model.get_weights())
    for with_norms, without in zip(*final):
        np.testing.assert_array_equal(with_norms, without)
    table = norms.as_frame()
    assert table["step"].tolist() == [0, 4, 6, 10] and table["layer"].unique().tolist() == ["hidden"]
    assert np.isnan(table["steps_between"][0]) and table["steps_between"][1:].tolist() == [2, 2, 2]
    for step, angle in zip(table["step"][1:], table["angle_degrees"][1:]):
        before, after = seen[step - 2], seen[step]
        cosine = np.sum(before * after) / (np.linalg.norm(before) * np.linalg.norm(after))
        assert angle == pytest.approx(np.degrees(np.arccos(min(cosine, 1.0))), rel=1e-3, abs=1e-4)


def test_kernel_norms_arguments():
    with pytest.raises(ValueError, match=r"every_n_steps must be a positive integer; received 0\."):
        KernelNorms(every_n_steps=0)
    with pytest.raises(ValueError, match=r"layers must be a list of layer names or None; received the string "
                                         r"'hidden' \(write \['hidden'\]\)\."):
        KernelNorms(layers="hidden")
    model = dense_bn_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"no layer with a kernel named 'bn', 'nope' in model .* "
                                         r"Layers with a kernel: hidden, output\."):
        model.fit(*data(4, 4), verbose=0, callbacks=[KernelNorms(layers=["bn", "nope"])])


# ---- restrict_weight_decay ----------------------------------------------------------------------


@TENSORFLOW_ONLY
@pytest.mark.parametrize("on, decayed", [
    ("all", {"hidden/kernel", "bn/gamma", "bn/beta", "output/kernel", "output/bias"}),
    ("kernels", {"hidden/kernel", "output/kernel"}),
    ("normalized_kernels", {"hidden/kernel"}),
])
def test_weight_decay_only_where_asked(on, decayed):
    learning_rate, weight_decay = 0.1, 0.5
    keras.utils.set_random_seed(0)
    model, (x, y) = dense_bn_model(), data(8, 4)
    optimizer = keras.optimizers.SGD(learning_rate, weight_decay=weight_decay)
    assert {path.split("/", 1)[1] for path in restrict_weight_decay(model, optimizer, on)} == decayed  # less model name
    variables = model.trainable_variables
    start, gradients = [numpy_of(v) for v in variables], loss_gradients(model, x, y, variables)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    # Keras decays first (w - lr * wd * w), then steps with the gradient taken at w
    for variable, w, g in zip(variables, start, gradients):
        decays = variable.path.split("/", 1)[1] in decayed
        expected = w - learning_rate * g - (learning_rate * weight_decay * w if decays else 0.0)
        np.testing.assert_allclose(numpy_of(variable), expected, rtol=1e-5, atol=1e-6, err_msg=variable.path)


def test_restrict_weight_decay_errors():
    model = dense_bn_model()
    with pytest.raises(ValueError, match=r"on must be one of 'all', 'kernels', 'normalized_kernels'; "
                                         r"received 'biases'\."):
        restrict_weight_decay(model, keras.optimizers.SGD(0.1, weight_decay=0.1), "biases")
    with pytest.raises(ValueError, match=r"expected an optimizer with weight decay.*received SGD with "
                                         r"weight_decay=None\."):
        restrict_weight_decay(model, keras.optimizers.SGD(0.1), "kernels")
    built = keras.optimizers.SGD(0.1, weight_decay=0.1)
    built.build(model.trainable_variables)
    with pytest.raises(ValueError, match=r"expected an optimizer not built yet"):
        restrict_weight_decay(model, built, "kernels")
