"""Tests of bnlab.models.population: PreciseBN (`precise_bn`) and `bn_discrepancy`.

Two pinned facts about Keras come first: its BatchNormalization keeps a moving average of BIASED
batch variances, so with batches of B it settles at (B - 1)/B of the population variance. The rest
checks the recomputed statistics against numpy computed by hand.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from bnlab.models import population
from bnlab.models.population import DISCREPANCY_COLUMNS, bn_discrepancy, precise_bn

EPSILON = 1e-3  # keras.layers.BatchNormalization's default


def _numpy(variable) -> np.ndarray:
    return keras.ops.convert_to_numpy(variable)


def _data(rows: int, features: int = 5, seed: int = 0) -> np.ndarray:
    """Features with very different means and scales, so that a wrong statistic shows."""
    rng = np.random.default_rng(seed)
    loc = np.linspace(-3.0, 100.0, features)
    scale = np.linspace(0.1, 4.0, features)
    return (loc + scale * rng.standard_normal((rows, features))).astype("float32")


def _input_bn_model(features: int = 5) -> keras.Model:
    """Input -> BatchNormalization -> Dense: the BN layer sees the data itself."""
    inputs = keras.Input((features,))
    outputs = keras.layers.Dense(2)(keras.layers.BatchNormalization(name="input_bn")(inputs))
    return keras.Model(inputs, outputs)


def _two_bn_model(features: int = 4, seed: int = 1) -> keras.Model:
    """BN -> Dense -> BN -> Dense, with non-trivial gamma, beta and Dense weights."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,))
    hidden = keras.layers.BatchNormalization(name="bn_1")(inputs)
    hidden = keras.layers.Dense(3, name="dense_1", bias_initializer="random_normal")(hidden)
    hidden = keras.layers.BatchNormalization(name="bn_2")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    rng = np.random.default_rng(seed)
    for layer in (model.get_layer("bn_1"), model.get_layer("bn_2")):
        layer.gamma.assign(rng.uniform(0.5, 2.0, layer.gamma.shape).astype("float32"))
        layer.beta.assign(rng.normal(size=layer.beta.shape).astype("float32"))
    return model


def _dense_output(model: keras.Model, data: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """What bn_2 receives in inference mode when bn_1 holds (mean, variance), by numpy matrix products."""
    bn_1, dense = model.get_layer("bn_1"), model.get_layer("dense_1")
    x = data.astype(np.float64)
    normalized = _numpy(bn_1.gamma) * (x - mean) / np.sqrt(variance + EPSILON) + _numpy(bn_1.beta)
    kernel, bias = (_numpy(weight).astype(np.float64) for weight in dense.weights)
    return normalized @ kernel + bias


# ---- Pinned facts about Keras -----------------------------------------------------------------


def test_keras_moving_variance_after_one_step_is_the_biased_batch_variance():
    layer = keras.layers.BatchNormalization(momentum=0.0)
    # Small integers: every sum, mean and variance is exact in float32, so equality is exact.
    batch = np.array([[0, 1, -2], [1, 1, 0], [2, 1, 2], [3, 5, 4]], dtype="float32")
    layer(batch, training=True)
    moving_variance = _numpy(layer.moving_variance)
    np.testing.assert_array_equal(moving_variance, np.var(batch, axis=0, ddof=0))
    np.testing.assert_array_equal(moving_variance, [1.25, 3.0, 5.0])
    np.testing.assert_allclose(moving_variance, 0.75 * np.var(batch, axis=0, ddof=1), rtol=1e-12)  # (B-1)/B, B=4


def test_keras_moving_variance_settles_at_b_minus_one_over_b_of_the_true_variance():
    rng = np.random.default_rng(0)
    true_variance = 4.0
    data = (2.0 * rng.standard_normal((3000 * 4, 32)) + 7.0).astype("float32")  # 3000 steps of B=4, 32 channels
    model = keras.Sequential([keras.Input((32,)), keras.layers.BatchNormalization(momentum=0.99)])
    # learning rate 0: only the moving statistics change; many steps per execution keep the loop fast.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse", jit_compile=True, steps_per_execution=300)
    model.fit(data, np.zeros_like(data), batch_size=4, shuffle=False, epochs=1, verbose=0)
    layer = model.layers[0]
    ratio = _numpy(layer.moving_variance) / true_variance
    # E = (B-1)/B = 0.75; one channel's EMA has sd ~0.04 (biased variance sd sqrt(2*3)/4 * sqrt(0.01/1.99)),
    # the 32-channel mean ~0.008.
    assert abs(ratio.mean() - 0.75) < 0.05
    assert np.all(np.abs(ratio - 0.75) < 0.2)


# ---- precise_bn ----------------------------------------------------------------------------------


def test_input_bn_unbiased_equals_the_data_mean_and_bessel_variance():
    model, data = _input_bn_model(), _data(512)
    statistics = precise_bn(model, data, batch_size=128, unbiased=True)
    mean, variance = statistics["input_bn"]
    assert mean.dtype == variance.dtype == np.float32
    np.testing.assert_allclose(mean, data.astype(np.float64).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(variance, data.astype(np.float64).var(axis=0, ddof=1), rtol=1e-5)
    layer = model.get_layer("input_bn")
    np.testing.assert_array_equal(_numpy(layer.moving_mean), mean)
    np.testing.assert_array_equal(_numpy(layer.moving_variance), variance)


@pytest.mark.parametrize("batch_size", [1, 7, 100, 300, 1000])
def test_unbiased_statistics_do_not_depend_on_batch_size(batch_size):
    data = _data(300)
    reference_mean, reference_variance = precise_bn(_input_bn_model(), data, batch_size=128)["input_bn"]
    mean, variance = precise_bn(_input_bn_model(), data, batch_size=batch_size)["input_bn"]
    np.testing.assert_allclose(mean, reference_mean, rtol=1e-6)
    np.testing.assert_allclose(variance, reference_variance, rtol=1e-6)


def test_biased_statistics_are_the_mean_of_the_batch_variances():
    data = _data(512).astype(np.float64)
    mean, variance = precise_bn(_input_bn_model(), data, batch_size=128, unbiased=False)["input_bn"]
    expected = np.mean([data[start:start + 128].var(axis=0, ddof=0) for start in range(0, 512, 128)], axis=0)
    np.testing.assert_allclose(variance, expected, rtol=1e-5)
    np.testing.assert_allclose(mean, data.mean(axis=0), rtol=1e-5)
    assert np.all(variance < data.var(axis=0, ddof=1))  # within-batch variance leaves out the between-batch part


def test_biased_statistics_weight_a_partial_last_batch_by_its_size():
    data = _data(300).astype(np.float64)  # batches of 128, 128 and 44 rows
    variance = precise_bn(_input_bn_model(), data, batch_size=128, unbiased=False)["input_bn"][1]
    sizes, variances = zip(*[(len(data[s:s + 128]), data[s:s + 128].var(axis=0)) for s in (0, 128, 256)], strict=True)
    assert sizes == (128, 128, 44)
    expected = np.average(variances, axis=0, weights=sizes)
    np.testing.assert_allclose(variance, expected, rtol=1e-5)
    assert not np.allclose(variance, np.mean(variances, axis=0), rtol=1e-5)  # an unweighted mean would differ
    whole = precise_bn(_input_bn_model(), data, batch_size=300, unbiased=False)["input_bn"][1]
    np.testing.assert_allclose(whole, data.var(axis=0, ddof=0), rtol=1e-5)  # one batch: the biased variance


def test_second_layer_sees_the_first_layers_recomputed_statistics():
    model, data = _two_bn_model(), _data(256, features=4, seed=2)
    stale = _dense_output(model, data, np.zeros(4), np.ones(4))  # what bn_2 sees with bn_1's initial statistics
    statistics = precise_bn(model, data, batch_size=64)
    first_mean, first_variance = statistics["bn_1"]
    np.testing.assert_allclose(first_variance, data.astype(np.float64).var(axis=0, ddof=1), rtol=1e-5)
    dense = _dense_output(model, data, first_mean.astype(np.float64), first_variance.astype(np.float64))
    second_mean, second_variance = statistics["bn_2"]
    assert list(statistics) == ["bn_1", "bn_2"]
    np.testing.assert_allclose(second_mean, dense.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(second_variance, dense.var(axis=0, ddof=1), rtol=1e-5)
    assert not np.allclose(second_variance, stale.var(axis=0, ddof=1), rtol=1e-2)  # the order matters


def test_channel_axis_is_the_layers_axis():
    data = _data(40 * 3 * 6, features=1).reshape(40, 3, 6)  # channels first: axis 1
    inputs = keras.Input((3, 6))
    model = keras.Model(inputs, keras.layers.BatchNormalization(axis=1, name="bn")(inputs))
    mean, variance = precise_bn(model, data, batch_size=16)["bn"]
    np.testing.assert_allclose(mean, data.astype(np.float64).mean(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_allclose(variance, data.astype(np.float64).transpose(1, 0, 2).reshape(3, -1).var(axis=1, ddof=1),
                               rtol=1e-5)


def test_sequential_and_renorm_layers():
    model = keras.Sequential([keras.Input((5,)), keras.layers.BatchNormalization(renorm=True, name="renorm")])
    data = _data(50)
    mean, variance = precise_bn(model, data, batch_size=8)["renorm"]
    np.testing.assert_allclose(variance, data.astype(np.float64).var(axis=0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(_numpy(model.layers[0].moving_stddev), np.sqrt(variance + EPSILON), rtol=1e-6)


def test_weights_are_frozen():
    model, data = _two_bn_model(), _data(100, features=4)
    before = [_numpy(weight).copy() for weight in model.trainable_weights]
    precise_bn(model, data, batch_size=32)
    after = [_numpy(weight) for weight in model.trainable_weights]
    assert len(before) == 8  # gamma, beta, kernel, bias, gamma, beta, kernel, bias
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)


def test_examples_uses_the_first_rows():
    data = _data(200)
    data[60:] += 1000.0  # rows past the first 60 would move the mean far away
    mean, variance = precise_bn(_input_bn_model(), data, batch_size=16, examples=60)["input_bn"]
    np.testing.assert_allclose(mean, data[:60].astype(np.float64).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(variance, data[:60].astype(np.float64).var(axis=0, ddof=1), rtol=1e-5)


def test_no_batch_norm_layer_is_an_error():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, name="only_dense")])
    with pytest.raises(ValueError, match=r"at least one keras.layers.BatchNormalization.*only_dense \(Dense\)"):
        precise_bn(model, _data(10))


def test_nested_batch_norm_is_an_error():
    inner = keras.Sequential([keras.Input((5,)), keras.layers.BatchNormalization(name="inner_bn")], name="inner")
    model = keras.Sequential([keras.Input((5,)), inner])
    with pytest.raises(ValueError, match=r"nested model 'inner'.*inner_bn"):
        precise_bn(model, _data(10))


@pytest.mark.parametrize("inputs", [np.zeros((0, 5), "float32"), np.float32(1.0)])
def test_empty_inputs_are_an_error(inputs):
    with pytest.raises(ValueError, match=r"at least one example.*Received: an array of shape"):
        precise_bn(_input_bn_model(), inputs)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True, "128"])
def test_bad_batch_size_is_an_error(batch_size):
    expected = rf"batch_size must be a positive integer.*Received: batch_size={batch_size!r}"
    with pytest.raises(ValueError, match=expected):
        precise_bn(_input_bn_model(), _data(10), batch_size=batch_size)


@pytest.mark.parametrize("examples", [0, 11, 2.5])
def test_bad_examples_is_an_error(examples):
    with pytest.raises(ValueError, match=rf"integer from 1 to 10.*Received: examples={examples!r}"):
        precise_bn(_input_bn_model(), _data(10), examples=examples)


def test_one_value_per_channel_cannot_be_unbiased():
    with pytest.raises(ValueError, match=r"at least 2 values per channel. Received: 1 for layer 'input_bn'"):
        precise_bn(_input_bn_model(), _data(1))
    _, variance = precise_bn(_input_bn_model(), _data(1), unbiased=False)["input_bn"]
    np.testing.assert_array_equal(variance, 0.0)


# ---- bn_discrepancy ------------------------------------------------------------------------------


def test_discrepancy_vanishes_after_precise_bn():
    model, data = _two_bn_model(), _data(256, features=4)
    precise_bn(model, data, batch_size=64)
    table = bn_discrepancy(model, data, batch_size=50)
    assert list(table.columns) == list(DISCREPANCY_COLUMNS)
    assert list(table["layer"]) == ["bn_1", "bn_2"]
    assert list(table["channels"]) == [4, 3]
    assert (table["mean_shift_max"] < 1e-4).all()
    for column in ("variance_ratio_min", "variance_ratio_max", "variance_ratio_median"):
        np.testing.assert_allclose(table[column], 1.0, atol=1e-4)


def test_discrepancy_columns_equal_hand_set_values():
    data = _data(400)
    data[:, 4] = 3.0  # a constant channel: population variance 0, left out of every column
    model = _input_bn_model()
    data64 = data.astype(np.float64)
    mean, variance = data64.mean(axis=0), data64.var(axis=0, ddof=1)
    layer = model.get_layer("input_bn")
    layer.moving_mean.assign((mean + np.array([0.0, 0.5, -1.0, 2.0, 9.0]) * np.sqrt(variance)).astype("float32"))
    layer.moving_variance.assign((variance * np.array([1.0, 0.75, 2.0, 0.5, 1.0]) + [0, 0, 0, 0, 1]).astype("float32"))
    row = bn_discrepancy(model, data, batch_size=64).iloc[0]
    assert row["layer"] == "input_bn" and row["channels"] == 5
    expected = {"mean_shift_median": 0.75, "mean_shift_max": 2.0, "variance_ratio_median": 0.875,
                "variance_ratio_min": 0.5, "variance_ratio_max": 2.0}
    for column, value in expected.items():
        assert row[column] == pytest.approx(value, rel=1e-4, abs=1e-5), column


def test_discrepancy_uses_the_current_statistics_and_changes_nothing():
    model, data = _two_bn_model(), _data(128, features=4)
    bn_1 = model.get_layer("bn_1")
    bn_1.moving_mean.assign(np.full(4, 2.0, "float32"))
    bn_1.moving_variance.assign(np.full(4, 9.0, "float32"))
    before = [_numpy(weight).copy() for weight in model.weights]
    table = bn_discrepancy(model, data, batch_size=32)
    for old, new in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(old, _numpy(new))
    dense = _dense_output(model, data, np.full(4, 2.0), np.full(4, 9.0))  # bn_1 as deployed, not recomputed
    ratio = _numpy(model.get_layer("bn_2").moving_variance) / dense.var(axis=0, ddof=1)
    assert table.loc[1, "variance_ratio_max"] == pytest.approx(ratio.max(), rel=1e-4)
    assert table.loc[1, "variance_ratio_min"] == pytest.approx(ratio.min(), rel=1e-4)


def test_population_statistics_apply_only_to_top_level_batch_norm():
    from bnlab.models.population import has_top_level_batch_norm

    inner = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    nested = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(), inner])
    flat = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert [has_top_level_batch_norm(m) for m in (nested, flat, plain)] == [False, True, False]


def test_discrepancy_follows_the_model_between_calls():
    """The multi-output model kept for a model (a reused compiled model asks again each trial) sees its
    current weights and statistics."""
    model, data = _two_bn_model(), _data(100, features=4)
    first = bn_discrepancy(model, data, batch_size=32)
    model.get_layer("bn_1").moving_mean.assign(np.full(4, 2.0, "float32"))
    again = bn_discrepancy(model, data, batch_size=32)
    assert again.loc[0, "mean_shift_max"] != first.loc[0, "mean_shift_max"]
    population._EVERY_INPUT.clear()  # built anew: the same table
    pd.testing.assert_frame_equal(again, bn_discrepancy(model, data, batch_size=100))
