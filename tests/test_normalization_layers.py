"""bnlab.models.layers against hand computations in numpy: ghost BN, batch renormalization, weight norm.

The references below loop over the slices in float64, independently of the layers' vectorized code.
Each backend is checked in its own process (KERAS_BACKEND is read at import), the way
tests/test_training_logs.py does.
"""

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
from backend_scripts import BACKENDS, run_script

from bnlab.models.layers import BatchRenormalization, GhostBatchNormalization, WeightNormDense, renorm_limits

SCRIPT = Path(__file__).parent / "scripts" / "normalization_layers_backend.py"
EPSILON, MOMENTUM = 1e-3, 0.9
GAMMA, BETA = np.array([1.5, -0.5, 2.0], "float32"), np.array([0.1, 0.2, -0.3], "float32")


def data(batch: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(1.0, 2.0, (batch, channels)).astype("float32")


def reference(x, size, gamma=GAMMA, beta=BETA, moving_mean=0.0, moving_variance=1.0, r_max=1.0, d_max=0.0):
    """Output, (r, d) per slice and the moving-statistics inputs (batch mean, mean slice variance) by hand.

    r_max = 1 and d_max = 0 (the defaults) give r = 1 and d = 0: ghost batch normalization.
    """
    x = x.astype("float64")
    outputs, rs, ds, means, variances, counts = [], [], [], [], [], []
    for start in range(0, len(x), size):
        part = x[start:start + size]
        mean, variance = part.mean(axis=0), part.var(axis=0)  # the biased variance: divided by the count
        sigma_batch, sigma = np.sqrt(variance + EPSILON), np.sqrt(np.asarray(moving_variance) + EPSILON)
        r = np.clip(sigma_batch / sigma, 1.0 / r_max, r_max)
        d = np.clip((mean - moving_mean) / sigma, -d_max, d_max)
        outputs.append(gamma * ((part - mean) / sigma_batch * r + d) + beta)
        rs.append(r), ds.append(d), means.append(mean), variances.append(variance), counts.append(len(part))
    weights = np.array(counts)[:, None] / len(x)
    return (np.concatenate(outputs), np.array(rs), np.array(ds),
            (weights * np.array(means)).sum(axis=0), (weights * np.array(variances)).sum(axis=0))


def moved(old, new):
    return MOMENTUM * np.asarray(old) + (1 - MOMENTUM) * new


def check(received, expected):
    np.testing.assert_allclose(received, expected, rtol=1e-5, atol=1e-6)


def numpy_of(tensor) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(tensor))


def built(layer, channels=3, moving_mean=(0.0, 0.0, 0.0), moving_variance=(1.0, 1.0, 1.0)):
    """The layer built for `channels` with GAMMA, BETA and the given moving statistics."""
    layer.build((None, channels))
    layer.set_weights([GAMMA, BETA, np.array(moving_mean, "float32"), np.array(moving_variance, "float32")]
                      + layer.get_weights()[4:])
    return layer


def ghost(size, **options):
    return GhostBatchNormalization(virtual_batch_size=size, momentum=MOMENTUM, epsilon=EPSILON, **options)


# ---- GhostBatchNormalization ------------------------------------------------------------------


@pytest.mark.parametrize("batch, size", [(8, 2), (8, 4), (10, 4), (9, 4)])
def test_ghost_output_standardizes_each_slice(batch, size):
    # (10, 4): slices of 4, 4 and 2; (9, 4): 4, 4 and a slice of one example
    x = data(batch)
    layer = built(ghost(size))
    expected = reference(x, size)[0]
    np.testing.assert_allclose(numpy_of(layer(x, training=True)), expected, rtol=1e-5, atol=1e-6)


def test_a_slice_of_one_example_outputs_beta():
    # the remainder rule: the ninth example of (4, 4, 1) is its own slice, so x - mean = 0 there
    output = numpy_of(built(ghost(4))(data(9), training=True))
    np.testing.assert_allclose(output[8], BETA, atol=1e-6)
    assert np.abs(output[7] - BETA).max() > 0.1


def test_ghost_moving_statistics_after_one_training_call():
    x, old_mean, old_variance = data(10), [0.5, -1.0, 2.0], [2.0, 0.5, 1.0]
    layer = built(ghost(4), moving_mean=old_mean, moving_variance=old_variance)
    layer(x, training=True)
    _, _, _, batch_mean, slice_variance = reference(x, 4)
    # the count-weighted means by hand: slices of 4, 4 and 2 of 10 examples
    x64 = x.astype("float64")
    by_hand = (4 * x64[:4].var(0) + 4 * x64[4:8].var(0) + 2 * x64[8:].var(0)) / 10
    np.testing.assert_allclose(slice_variance, by_hand)
    np.testing.assert_allclose(batch_mean, x64.mean(0))
    np.testing.assert_allclose(numpy_of(layer.moving_mean), moved(old_mean, batch_mean), rtol=1e-5)
    np.testing.assert_allclose(numpy_of(layer.moving_variance), moved(old_variance, slice_variance), rtol=1e-5)


def test_ghost_inference_uses_the_moving_statistics_at_any_batch_size():
    mean, variance = np.array([0.5, -1.0, 2.0]), np.array([2.0, 0.5, 1.0])
    layer = built(ghost(4), moving_mean=mean, moving_variance=variance)
    x = data(3)
    expected = GAMMA * (x - mean) / np.sqrt(variance + EPSILON) + BETA
    np.testing.assert_allclose(numpy_of(layer(x, training=False)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(numpy_of(layer.moving_mean), mean)  # inference leaves them alone


@pytest.mark.parametrize("size", [None, 8])
def test_ghost_over_the_whole_batch_is_keras_batch_normalization(size):
    x = data(8)
    layers = [built(ghost(size)), built(keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON))]
    outputs = [[numpy_of(layer(x + step, training=True)) for step in range(2)] for layer in layers]
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)
    for ours, theirs in zip(layers[0].get_weights(), layers[1].get_weights()):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="jit_compile with a dynamic batch: TensorFlow")
def test_jit_compiled_training_with_steps_per_execution_matches_eager():
    # 23 examples in batches of 6: the last batch (5) is partial and its slices are 4 and 1
    x, y = data(23, channels=5), np.arange(23) % 3
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, use_bias=False),
                              GhostBatchNormalization(virtual_batch_size=4),
                              keras.layers.Dense(3, activation="softmax")])
    initial, final = model.get_weights(), []
    for options in ({"jit_compile": True, "steps_per_execution": 3}, {"run_eagerly": True}):
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", **options)
        model.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0)
        final.append(model.get_weights())
    assert not np.allclose(final[1][3], initial[3])  # the moving mean moved
    for compiled, eager in zip(*final):
        np.testing.assert_allclose(compiled, eager, atol=1e-5)


# ---- BatchRenormalization ---------------------------------------------------------------------


@pytest.mark.parametrize("step, expected", [
    (0, (1.0, 0.0)), (4999, (1.0, 0.0)), (5000, (1.0, 0.0)),
    (22500, (2.0, 4.375)),  # r midway (17500 of 35000 steps); d 17500 of 20000 steps: 5 * 0.875
    (25000, (1 + 2 * 20000 / 35000, 5.0)), (40000, (3.0, 5.0)), (10**6, (3.0, 5.0))])
def test_renorm_limits_follow_the_papers_schedule(step, expected):
    assert renorm_limits(step) == pytest.approx(expected, abs=1e-12)


def test_renorm_limits_without_a_ramp_switch_at_warmup():
    schedule = {"warmup_steps": 10, "r_max_steps": 10, "d_max_steps": 20}
    assert renorm_limits(9, **schedule) == (1.0, 0.0)
    assert renorm_limits(10, **schedule) == (3.0, 0.0)
    assert renorm_limits(15, **schedule) == (3.0, 2.5)


def test_renorm_output_and_moving_statistics_with_clipping():
    x, mean, variance = data(8), [0.2, -0.1, -20.0], [0.01, 100.0, 4.0]
    layer = built(BatchRenormalization(virtual_batch_size=4, momentum=MOMENTUM, epsilon=EPSILON),
                  moving_mean=mean, moving_variance=variance)
    layer.renorm_steps.assign(22500.0)  # r_max = 2, d_max = 4.375
    output = numpy_of(layer(x, training=True))
    expected, r, d, batch_mean, slice_variance = reference(x, 4, moving_mean=mean, moving_variance=variance,
                                                           r_max=2.0, d_max=4.375)
    assert np.all(r[:, 0] == 2.0) and np.all(r[:, 1] == 0.5) and np.all(np.abs(r[:, 2] - 1.25) < 0.75)
    assert np.all(d[:, 2] == 4.375) and np.all(np.abs(d[:, 1]) < 4.375)
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)
    # updated after r and d were computed from the old statistics
    np.testing.assert_allclose(numpy_of(layer.moving_mean), moved(mean, batch_mean), rtol=1e-5)
    np.testing.assert_allclose(numpy_of(layer.moving_variance), moved(variance, slice_variance), rtol=1e-5)
    assert [float(numpy_of(v)) for v in (layer.renorm_steps, layer.current_r_max, layer.current_d_max)] == [
        22501.0, 2.0, 4.375]


def test_renorm_during_warmup_is_ghost_batch_normalization():
    x, statistics = data(10), {"moving_mean": [0.2, -0.1, -20.0], "moving_variance": [0.01, 100.0, 1.0]}
    layers = [built(BatchRenormalization(virtual_batch_size=4, epsilon=EPSILON), **statistics),
              built(ghost(4), **statistics)]
    layers[0].renorm_steps.assign(4999.0)
    np.testing.assert_allclose(*[numpy_of(layer(x, training=True)) for layer in layers], atol=1e-6)
    assert float(numpy_of(layers[0].current_r_max)) == 1.0 and float(numpy_of(layers[0].current_d_max)) == 0.0


def test_renorm_steps_counts_training_calls_only():
    layer = built(BatchRenormalization(virtual_batch_size=2))
    for training in (True, False, True, None, True):
        layer(data(6), training=training)
    assert float(numpy_of(layer.renorm_steps)) == 3.0


@pytest.mark.parametrize("make, message", [
    (lambda: GhostBatchNormalization(virtual_batch_size=0), "virtual_batch_size must be a positive integer or None; "
                                                            "received 0."),
    (lambda: GhostBatchNormalization(virtual_batch_size=2.0), "received 2.0."),
    (lambda: GhostBatchNormalization(axis=1), "only axis=-1 (channels last) is supported; received axis=1."),
    (lambda: GhostBatchNormalization(renorm=True), "use bnlab.models.layers.BatchRenormalization"),
    (lambda: BatchRenormalization(r_max=0.5), "BatchRenormalization: r_max must be at least 1"),
    (lambda: BatchRenormalization(d_max=-1.0), "d_max must be non-negative (d is clipped to [-d_max, d_max]); "
                                               "received -1.0."),
    (lambda: BatchRenormalization(warmup_steps=2.5), "warmup_steps must be a non-negative integer; received 2.5."),
    (lambda: BatchRenormalization(warmup_steps=10, d_max_steps=5), "d_max_steps must be an integer at least "
                                                                   "warmup_steps=10; received 5."),
    (lambda: renorm_limits(0, r_max_steps=10), "renorm_limits: r_max_steps must be an integer at least"),
    (lambda: WeightNormDense(0), "WeightNormDense: units must be a positive integer; received 0."),
])
def test_invalid_arguments_say_what_was_expected(make, message):
    with pytest.raises(ValueError) as raised:
        make()
    assert message in str(raised.value)


# ---- WeightNormDense --------------------------------------------------------------------------


def test_weight_norm_dense_by_hand():
    kernel, g, bias = np.array([[3.0, 0.0], [4.0, -2.0]], "float32"), np.array([2.0, 0.5], "float32"), [0.1, -0.2]
    layer = WeightNormDense(2, activation="relu")
    layer.build((None, 2))
    layer.set_weights([kernel, g, np.array(bias, "float32")])
    # column norms 5 and 2: the effective kernel is [[6/5, 0], [8/5, -1/2]]
    effective = np.array([[1.2, 0.0], [1.6, -0.5]])
    np.testing.assert_allclose(numpy_of(layer.effective_kernel()), effective, rtol=1e-6)
    x = np.array([[1.0, 1.0], [1.0, -2.0]], "float32")
    # x @ effective + bias = [[2.9, -0.7], [-1.9, 0.8]], then relu
    np.testing.assert_allclose(numpy_of(layer(x)), [[2.9, 0.0], [0.0, 0.8]], rtol=1e-6)


def test_weight_norm_dense_starts_from_its_initial_kernel():
    keras.utils.set_random_seed(0)
    layer = WeightNormDense(4)
    layer.build((None, 3))
    kernel = numpy_of(layer.kernel)
    np.testing.assert_allclose(numpy_of(layer.g), np.linalg.norm(kernel, axis=0), rtol=1e-6)
    np.testing.assert_allclose(numpy_of(layer.effective_kernel()), kernel, rtol=1e-6, atol=1e-7)


# ---- saving and backends ----------------------------------------------------------------------


@pytest.mark.parametrize("layer, config", [
    (lambda: GhostBatchNormalization(virtual_batch_size=4, momentum=0.8), {"virtual_batch_size": 4, "momentum": 0.8}),
    (lambda: BatchRenormalization(virtual_batch_size=2, warmup_steps=1, r_max_steps=3, d_max_steps=2),
     {"virtual_batch_size": 2, "r_max": 3.0, "d_max": 5.0, "warmup_steps": 1, "r_max_steps": 3, "d_max_steps": 2}),
    (lambda: WeightNormDense(3, activation="tanh", use_bias=False, kernel_initializer="he_normal"),
     {"units": 3, "use_bias": False, "activation": "tanh"}),
])
def test_saved_model_loads_without_custom_objects(layer, config, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6), layer(), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = data(20, channels=5), data(20, channels=2, seed=1)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)  # 3 training calls an epoch
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    saved_layer, loaded_layer = model.layers[1], loaded.layers[1]
    assert type(loaded_layer) is type(saved_layer)
    assert {key: loaded_layer.get_config()[key] for key in config} == config
    assert loaded_layer.get_config() == saved_layer.get_config()
    if isinstance(saved_layer, BatchRenormalization):
        assert float(numpy_of(loaded_layer.renorm_steps)) == float(numpy_of(saved_layer.renorm_steps)) == 6.0


def _script_constants():
    spec = importlib.util.spec_from_file_location("normalization_layers_backend", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend", BACKENDS)
def test_layers_on_every_backend(backend):
    results, c = run_script(SCRIPT, backend), _script_constants()
    assert results["backend"] == backend and (c.EPSILON, c.MOMENTUM) == (EPSILON, MOMENTUM)
    r_max, d_max = renorm_limits(c.RENORM_STEP, **c.SCHEDULE)
    assert (r_max, d_max) == (2.0, 5.0)
    for name, limits in (("ghost", {}), ("renorm", {"r_max": r_max, "d_max": d_max})):
        got = results[name]
        output, r, d, batch_mean, slice_variance = reference(c.INPUTS, c.VIRTUAL_BATCH_SIZE, c.GAMMA, c.BETA,
                                                             c.MOVING_MEAN, c.MOVING_VARIANCE, **limits)
        check(got["training"], output)
        check(got["moving_mean"], moved(c.MOVING_MEAN, batch_mean))
        check(got["moving_variance"], moved(c.MOVING_VARIANCE, slice_variance))
        mean, variance = moved(c.MOVING_MEAN, batch_mean), moved(c.MOVING_VARIANCE, slice_variance)
        check(got["inference"], c.GAMMA * (c.INPUTS[:3] - mean) / np.sqrt(variance + c.EPSILON) + c.BETA)
    assert np.any(r == 2.0) and np.any(r == 0.5) and np.any(d == 5.0)  # clipping is active in the renorm case
    check([results["renorm"][key] for key in ("renorm_steps", "current_r_max", "current_d_max")], [5.0, 2.0, 5.0])
    effective = c.KERNEL * c.G / np.linalg.norm(c.KERNEL.astype("float64"), axis=0)
    for mode in ("training", "inference"):
        check(results["weight_norm"][mode], np.maximum(c.INPUTS @ effective + c.BIAS, 0.0))
