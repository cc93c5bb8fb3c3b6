"""Runs bnlab's gradient probes on a tiny model with fixed weights; prints the results as one JSON line.

Run by tests/test_gradient_probes.py in a fresh process per backend (KERAS_BACKEND is read at
import), except for the test process's own backend, where the test calls `collect` directly.
The test imports the constants and `tiny_model` below and computes the expected values in numpy.
Also checks, on the backend, that no probe changes a variable (moving statistics, seed and
optimizer states) and that training with the probe callbacks is bit-identical to without.
"""

import json

import keras
import numpy as np

from bnlab.training.gradients import gradient_norms, loss_and_gradients
from bnlab.training.landscape import covariate_shift, landscape_step
from bnlab.training.mechanism_probes import CovariateShiftProbe, LandscapeProbe

# Dense(2 -> 3) -> BatchNormalization -> Dense(3 -> 2, softmax), six examples of two classes
INPUTS = np.array([[1.0, 2.0], [-1.0, 0.5], [0.3, -1.2], [2.0, 0.1], [-0.7, -0.4], [0.5, 1.5]], "float32")
LABELS = np.array([0, 1, 1, 0, 1, 0])
KERNEL_1 = np.array([[0.5, -0.3, 0.8], [0.2, 0.7, -0.6]], "float32")
BIAS_1 = np.array([0.1, -0.2, 0.05], "float32")
GAMMA, BETA = np.array([1.2, 0.8, -0.5], "float32"), np.array([0.1, 0.0, -0.2], "float32")
# far from the batch's statistics: a probe that normalized with them would be far off
MOVING_MEAN, MOVING_VARIANCE = np.array([5.0, -3.0, 2.0], "float32"), np.array([10.0, 0.1, 4.0], "float32")
KERNEL_2 = np.array([[0.4, -0.9], [-0.6, 0.3], [1.1, 0.2]], "float32")
BIAS_2 = np.array([0.05, -0.05], "float32")
EPSILON = 1e-3
STEP_SIZES = (0.0, 0.1, 0.5, 2.0)
LEARNING_RATE = 0.3


def tiny_model() -> keras.Model:
    """The tiny model with the fixed weights above."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, name="first"),
                              keras.layers.BatchNormalization(epsilon=EPSILON, name="norm"),
                              keras.layers.Dense(2, activation="softmax", name="second")], name="tiny")
    model.set_weights([KERNEL_1, BIAS_1, GAMMA, BETA, MOVING_MEAN, MOVING_VARIANCE, KERNEL_2, BIAS_2])
    return model


def noisy_model() -> keras.Model:
    """A compiled model with every kind of state a probe must leave alone: BN, dropout, momentum.

    Its shapes are the tiny model's, so that JAX compiles each operation once for both.
    """
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3), keras.layers.BatchNormalization(),
                              keras.layers.Dropout(0.3), keras.layers.Dense(3), keras.layers.BatchNormalization(),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                  jit_compile=False)
    return model


def state(model) -> list[np.ndarray]:
    return [variable.numpy() for variable in model.variables + model.optimizer.variables]


def unchanged_by_probes() -> dict:
    """Whether every probe function leaves every variable as it was, and gives the same answer twice."""
    model = noisy_model()
    model.optimizer.build(model.trainable_variables)
    before = state(model)
    first = loss_and_gradients(model, INPUTS, LABELS)
    gradient_norms(model, INPUTS, LABELS)
    landscape_step(model, INPUTS, LABELS, STEP_SIZES)
    covariate_shift(model, INPUTS, LABELS, LEARNING_RATE)
    second = loss_and_gradients(model, INPUTS, LABELS)
    unchanged = all(np.array_equal(old, new) for old, new in zip(before, state(model)))
    repeatable = first[0] == second[0] and all(np.array_equal(a, b) for a, b in zip(first[1], second[1]))
    return {"unchanged": unchanged, "repeatable": repeatable}


def train(with_probes: bool) -> tuple[list[np.ndarray], list]:
    """The state after 6 steps, with or without both probe callbacks (every 2 steps), and their steps."""
    model = noisy_model()
    probes = [LandscapeProbe(INPUTS, LABELS, every_n_steps=2, step_sizes=(0.1, 1.0)),
              CovariateShiftProbe(INPUTS, LABELS, every_n_steps=2)] if with_probes else []
    x, y = np.tile(INPUTS, (6, 1)), np.tile(LABELS, 6)
    model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0, callbacks=probes)
    steps = [probe.as_frame()["step"].tolist() for probe in probes]
    return state(model), steps


def collect() -> dict:
    """Every result the test checks, JSON-ready."""
    model = tiny_model()
    loss, gradients = loss_and_gradients(model, INPUTS, LABELS)
    plain, _ = train(with_probes=False)
    probed, steps = train(with_probes=True)
    return {"backend": keras.backend.backend(), "loss": loss, "gradients": [g.tolist() for g in gradients],
            "gradient_norms": gradient_norms(model, INPUTS, LABELS).to_dict("list"),
            "landscape": landscape_step(model, INPUTS, LABELS, STEP_SIZES),
            "covariate_shift": covariate_shift(model, INPUTS, LABELS, LEARNING_RATE).to_dict("list"),
            **unchanged_by_probes(),
            "training_identical": all(np.array_equal(a, b) for a, b in zip(plain, probed)),
            "training_changed_weights": not np.array_equal(plain[0], noisy_model().get_weights()[0]),
            "probe_steps": steps}


def main() -> None:
    print(json.dumps(collect()))


if __name__ == "__main__":
    main()
