"""The gradient probes of bnlab.training (gradients, landscape, mechanism_probes) against hand computations.

The tiny model of tests/scripts/gradient_probes_backend.py (Dense -> BN -> Dense softmax) is
differentiated by hand in numpy below, in float64, and every backend's probes are compared with it,
each other backend in its own process (KERAS_BACKEND is read at import). The landscape of a linear model
with squared error is an exact quadratic, known in closed form. The rest runs in this process.
"""

import importlib.util
import math
from pathlib import Path

import keras
import numpy as np
import pytest
from backend_scripts import BACKENDS, run_script

from bnlab.models.layers import BatchRenormalization, WeightNormDense
from bnlab.training.gradients import gradient_norms, kernel_layers, loss_and_gradients
from bnlab.training.landscape import covariate_shift, landscape_step
from bnlab.training.mechanism_probes import CovariateShiftProbe, LandscapeProbe

SCRIPT = Path(__file__).parent / "scripts" / "gradient_probes_backend.py"


def _script():
    spec = importlib.util.spec_from_file_location("gradient_probes_backend", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


c = _script()
TINY = [np.asarray(array, "float64") for array in (c.KERNEL_1, c.BIAS_1, c.GAMMA, c.BETA, c.KERNEL_2, c.BIAS_2)]


def reference(parameters, x=c.INPUTS, y=c.LABELS):
    """Loss and gradients of the tiny model by hand: backpropagation through BN with batch statistics."""
    kernel_1, bias_1, gamma, beta, kernel_2, bias_2 = parameters
    x = np.asarray(x, "float64")
    h = x @ kernel_1 + bias_1
    sigma = np.sqrt(h.var(axis=0) + c.EPSILON)  # the biased batch variance (Ioffe & Szegedy 2015, Alg. 1)
    normalized = (h - h.mean(axis=0)) / sigma
    z = gamma * normalized + beta
    logits = z @ kernel_2 + bias_2
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    count = len(x)
    loss = -np.mean(np.log(probabilities[np.arange(count), y]))
    d_logits = (probabilities - np.eye(2)[y]) / count
    d_z = d_logits @ kernel_2.T
    d_normalized = d_z * gamma
    d_h = (d_normalized - d_normalized.mean(0) - normalized * (d_normalized * normalized).mean(0)) / sigma
    return loss, [x.T @ d_h, d_h.sum(0), (d_z * normalized).sum(0), d_z.sum(0), z.T @ d_logits, d_logits.sum(0)]


def norm(arrays) -> float:
    return math.sqrt(sum(float(np.sum(np.square(array))) for array in arrays))


def reference_landscape(step_sizes):
    loss, gradient = reference(TINY)
    losses, changes, ratios = [loss], [], []
    for step in step_sizes:
        moved_loss, moved_gradient = reference([p - step * g for p, g in zip(TINY, gradient)])
        losses.append(moved_loss)
        changes.append(norm([g - m for g, m in zip(gradient, moved_gradient)]))
        if step > 0:
            ratios.append(changes[-1] / (step * norm(gradient)))
    return {"loss": loss, "gradient_norm": norm(gradient), "loss_range": max(losses) - min(losses),
            "gradient_predictiveness": max(changes), "beta_smoothness": max(ratios)}


def reference_covariate_shift(learning_rate):
    """Layer 2's ICS: the first Dense and BN (variables 0-3) take a gradient step, the second Dense does not."""
    _, gradient = reference(TINY)
    moved = [p - learning_rate * g if index < 4 else p for index, (p, g) in enumerate(zip(TINY, gradient))]
    old, new = gradient[4], reference(moved)[1][4]
    return norm([old - new]), float(np.sum(old * new)) / (norm([old]) * norm([new]))


def close(received, expected):
    np.testing.assert_allclose(received, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_probes_on_every_backend(backend):
    # the test process's own backend in process: one start-up of Keras fewer
    results = c.collect() if backend == keras.backend.backend() else run_script(SCRIPT, backend)
    assert results["backend"] == backend
    loss, gradients = reference(TINY)
    close(results["loss"], loss)
    for received, expected in zip(results["gradients"], gradients, strict=True):
        close(received, expected)
    norms = results["gradient_norms"]
    assert (norms["layer"], norms["depth"], norms["units"]) == (["first", "second"], [1, 2], [3, 2])
    close(norms["squared_norm"], [np.sum(gradients[0] ** 2), np.sum(gradients[4] ** 2)])
    expected = reference_landscape(c.STEP_SIZES)
    assert set(results["landscape"]) == set(expected)
    for key, value in expected.items():
        close(results["landscape"][key], value)
    shift = results["covariate_shift"]
    assert (shift["layer"], shift["depth"]) == (["second"], [2])  # the first layer has nothing before it
    l2, cosine = reference_covariate_shift(c.LEARNING_RATE)
    assert l2 > 0.01 and cosine < 0.999  # a real shift, so that moving nothing would fail
    close([shift["l2"][0], shift["cosine"][0]], [l2, cosine])
    assert results["unchanged"] and results["repeatable"]
    assert results["training_identical"] and results["training_changed_weights"]
    # 6 steps, every 2; the covariate shift has a row for each of the 2 deeper kernel layers
    assert results["probe_steps"] == [[0, 2, 4, 6], [0, 0, 2, 2, 4, 4, 6, 6]]


def test_landscape_of_a_linear_model_is_an_exact_quadratic():
    # L(theta) = mean((A theta - y)^2) with A = [x, 1]: gradient g = 2/N A^T r, Hessian H = 2/N A^T A,
    # L(theta - eta g) = L - eta |g|^2 + eta^2 / 2 g^T H g and grad L(theta - eta g) = g - eta H g
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
    kernel, bias = np.array([[0.5], [-1.0], [0.3]], "float32"), np.array([0.2], "float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.set_weights([kernel, bias])
    model.compile(optimizer="sgd", loss="mse")  # loss=None below: the compiled loss
    design, theta = np.hstack([x, np.ones((8, 1))]).astype("float64"), np.vstack([kernel, bias]).astype("float64")
    residual = design @ theta - y
    gradient, hessian = 2 / 8 * design.T @ residual, 2 / 8 * design.T @ design
    curvature = (gradient.T @ hessian @ gradient).item()
    step_sizes = (0.1, 0.5, 1.0, 2.0)
    losses = [float(np.mean(residual**2)) - step * norm([gradient]) ** 2 + step**2 / 2 * curvature
              for step in (0.0, *step_sizes)]
    assert np.argmin(losses) not in (0, len(losses) - 1)  # the line search passes the minimum
    results = landscape_step(model, x, y, step_sizes)
    close(results["loss"], losses[0])
    close(results["gradient_norm"], norm([gradient]))
    close(results["loss_range"], max(losses) - min(losses))
    close(results["gradient_predictiveness"], max(step_sizes) * norm([hessian @ gradient]))
    close(results["beta_smoothness"], norm([hessian @ gradient]) / norm([gradient]))


def nested_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.layers.Dense(4, name="b"), keras.layers.BatchNormalization()], name="inner")
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="tanh", name="a"), inner,
                             WeightNormDense(3, activation="tanh", name="c"),
                             keras.layers.Dense(3, name="frozen", trainable=False),
                             keras.layers.Dense(2, activation="softmax", name="d")])


def batch(count=8, width=5):
    rng = np.random.default_rng(1)
    return rng.normal(size=(count, width)).astype("float32"), np.arange(count) % 2


def test_gradient_norms_flatten_nested_models_and_skip_frozen_layers():
    model, (x, y) = nested_model(), batch()
    table = gradient_norms(model, x, y)
    assert table.columns.tolist() == ["layer", "depth", "units", "squared_norm"]
    assert table["layer"].tolist() == ["a", "b", "c", "d"]
    assert table["depth"].tolist() == [1, 2, 3, 4] and table["units"].tolist() == [6, 4, 3, 2]
    layers = kernel_layers(model)
    assert model.trainable_variables[layers[2].index] is model.get_layer("c").kernel  # v of w = g v / |v|
    _, gradients = loss_and_gradients(model, x, y)
    expected = [float(np.sum(gradients[kernel.index] ** 2)) for kernel in layers]
    assert min(expected) > 0
    close(table["squared_norm"].to_numpy(), expected)


def test_covariate_shift_moves_every_variable_before_the_layer_and_nothing_after():
    model, (x, y) = nested_model(), batch()
    learning_rate, table = 0.5, covariate_shift(nested_model(), x, y, 0.5)
    assert table["layer"].tolist() == ["b", "c", "d"] and table["depth"].tolist() == [2, 3, 4]
    _, gradients = loss_and_gradients(model, x, y)
    weights = [variable.numpy() for variable in model.trainable_variables]
    # trainable variables: a (kernel, bias), b (kernel, bias), BN (gamma, beta), c (v, g, bias), d (kernel, bias)
    for (_, row), earlier, kernel in zip(table.iterrows(), (2, 6, 9), (2, 6, 9)):
        moved = [w - learning_rate * g if index < earlier else w
                 for index, (w, g) in enumerate(zip(weights, gradients))]
        shifted = loss_and_gradients(model, x, y, trainable_values=moved)[1][kernel]
        old = gradients[kernel]
        cosine = float(np.sum(old * shifted)) / (norm([old]) * norm([shifted]))
        close([row["l2"], row["cosine"]], [norm([old - shifted]), cosine])
        assert row["l2"] > 1e-3


def test_every_probe_leaves_every_variable_as_it_was():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), BatchRenormalization(virtual_batch_size=3),
                              keras.layers.Dropout(0.5), WeightNormDense(3), keras.layers.BatchNormalization(),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    x, y = batch()
    state = lambda: [v.numpy() for v in model.variables + model.optimizer.variables]  # noqa: E731
    before = state()
    first = loss_and_gradients(model, x, y)
    gradient_norms(model, x, y)
    landscape_step(model, x, y, (0.1, 1.0))
    covariate_shift(model, x, y, 0.1)
    assert all(np.array_equal(old, new) for old, new in zip(before, state(), strict=True))
    assert loss_and_gradients(model, x, y)[0] == first[0]  # the same dropout mask: no seed was drawn
    # in training mode: batch statistics, not the (initial) moving ones
    assert not np.isclose(first[0], float(model.compute_loss(x, y, model(x, training=False))), rtol=1e-3)


@pytest.mark.parametrize("steps_per_execution, expected", [(1, [0, 3, 6, 9, 12, 15]), (2, [0, 4, 6, 10, 12, 16])])
def test_callbacks_record_at_step_zero_and_every_n_steps(steps_per_execution, expected):
    model = c.tiny_model()
    first_landscape = landscape_step(model, c.INPUTS, c.LABELS, (0.1, 1.0))
    first_shift = covariate_shift(model, c.INPUTS, c.LABELS, 0.1)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  steps_per_execution=steps_per_execution, jit_compile=False)
    landscape = LandscapeProbe(c.INPUTS, c.LABELS, every_n_steps=3, step_sizes=(0.1, 1.0))
    shift = CovariateShiftProbe(c.INPUTS, c.LABELS, every_n_steps=3)  # the optimizer's learning rate, 0.1
    x, y = np.tile(c.INPUTS, (3, 1))[:16], np.tile(c.LABELS, 3)[:16]  # 8 steps of 2 examples
    for _ in range(2):  # a second fit goes on from the optimizer's step count
        model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0, callbacks=[landscape, shift])
    frame = landscape.as_frame()
    assert frame.columns.tolist() == ["step", "loss", "gradient_norm", "loss_range", "gradient_predictiveness",
                                      "beta_smoothness"]
    assert frame["step"].tolist() == expected and shift.as_frame()["step"].tolist() == expected
    assert shift.as_frame().columns.tolist() == ["step", "layer", "depth", "l2", "cosine"]
    assert frame.iloc[0].drop("step").to_dict() == first_landscape
    assert shift.as_frame().iloc[0].drop("step").to_dict() == first_shift.iloc[0].to_dict()
    assert frame["loss"].iloc[-1] < frame["loss"].iloc[0]  # trained in between


@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: loss_and_gradients(keras.Sequential([keras.layers.Dense(2)]), x, y), "is not built"),
    (lambda m, x, y: loss_and_gradients(m, x, y, loss="no_such_loss"),
     "expected a Keras loss (a keras.losses.Loss, its name such as 'sparse_categorical_crossentropy', or a callable); "
     "received 'no_such_loss'."),
    (lambda m, x, y: loss_and_gradients(m, x, y, trainable_values=[np.zeros((2, 3))]),
     "trainable_values must match model.trainable_variables: 6 arrays of shapes [(2, 3), (3,), (3,), (3,), (3, 2), "
     "(2,)]; received 1 of shapes [(2, 3)]."),
    (lambda m, x, y: landscape_step(m, x, y, (0.0,)), "landscape_step: step_sizes must be non-negative finite "
                                                      "numbers, at least one of them positive; received (0.0,)."),
    (lambda m, x, y: landscape_step(m, x, y, (-0.1, 1.0)), "received (-0.1, 1.0)."),
    (lambda m, x, y: covariate_shift(m, x, y, 0), "covariate_shift: learning_rate must be a positive finite "
                                                  "number; received 0."),
    (lambda m, x, y: gradient_norms(keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization()]), x, y),
     "gradient_norms: expected a model with a trainable kernel layer"),
    (lambda m, x, y: LandscapeProbe(x, y, every_n_steps=0), "LandscapeProbe: every_n_steps must be a positive "
                                                            "integer; received 0."),
    (lambda m, x, y: CovariateShiftProbe(x, y, learning_rate=-1.0), "CovariateShiftProbe: learning_rate must be a "
                                                                     "positive finite number; received -1.0."),
])
def test_invalid_arguments_say_what_was_expected(call, message):
    with pytest.raises(ValueError) as raised:
        call(c.tiny_model(), c.INPUTS, c.LABELS)
    assert message in str(raised.value)
