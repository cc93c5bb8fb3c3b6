"""Runs NoisyBatchNormalization on fixed inputs; prints what the test checks as one JSON line.

Run by tests/test_noise_and_scale.py in a fresh process per backend (KERAS_BACKEND is read at import).
"""

import json

import keras
import numpy as np

from bnlab.models.noise import NoisyBatchNormalization

NOISE_MEAN, NOISE_STDDEV, SEED = 1.0, 2.0, 5
INPUTS = np.random.default_rng(0).normal(3.0, 2.0, (4000, 64)).astype("float32")


def numpy_of(tensor) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(tensor), "float64")


def noise_moments(seed=SEED) -> dict:
    """Two training calls of a noisy layer minus Keras BN with the same weights: the noise's moments per unit."""
    noisy = NoisyBatchNormalization(noise_mean=NOISE_MEAN, noise_stddev=NOISE_STDDEV, seed=seed)
    plain = keras.layers.BatchNormalization()
    calls = []
    for _ in range(2):
        noise = numpy_of(noisy(INPUTS, training=True)) - numpy_of(plain(INPUTS, training=True))
        mean, std = noise.mean(0), noise.std(0)
        standardized = (noise - mean) / std
        calls.append({"mean": mean.tolist(), "std": std.tolist(), "first": noise[0].tolist(),
                      "skewness": float((standardized**3).mean()),
                      "excess_kurtosis": float((standardized**4).mean() - 3.0)})
    inference = np.abs(numpy_of(noisy(INPUTS[:50], training=False)) - numpy_of(plain(INPUTS[:50]))).max()
    moving = max(np.abs(numpy_of(a) - numpy_of(b)).max() for a, b in zip(noisy.weights, plain.weights))
    return {"calls": calls, "inference_difference": float(inference), "moving_statistics_difference": float(moving)}


def fitted_weights(**compile_options) -> tuple[list, list]:
    """A Dense -> noisy BN -> softmax model, 8 steps (two executions of 4) from seed 0: initial and final
    weights."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, use_bias=False), NoisyBatchNormalization(),
                              keras.layers.Dense(3, activation="softmax")])
    initial = [numpy_of(weight) for weight in model.weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", **compile_options)
    x, y = INPUTS[:48, :5], np.arange(48) % 3
    model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    return initial, [numpy_of(weight) for weight in model.weights]


def main() -> None:
    first, again, other = noise_moments(), noise_moments(), noise_moments(seed=SEED + 1)
    initial, compiled = fitted_weights(jit_compile=True, steps_per_execution=4)
    # compared with eager on TensorFlow only, where XLA and TensorFlow's own kernels could draw differently
    # (an eager fit also costs seconds on JAX)
    difference = None
    if keras.backend.backend() == "tensorflow":
        eager = fitted_weights(run_eagerly=True)[1]
        difference = max(float(np.abs(a - b).max()) for a, b in zip(compiled, eager))
    first_example = first["calls"][0]["first"]
    print(json.dumps({
        "backend": keras.backend.backend(), **first,
        "same_seed_difference": float(np.abs(np.subtract(first_example, again["calls"][0]["first"])).max()),
        "other_seed_difference": float(np.abs(np.subtract(first_example, other["calls"][0]["first"])).max()),
        "compiled_minus_eager": difference,
        "kernel_moved": float(np.abs(compiled[0] - initial[0]).max()),
        "finite": bool(all(np.isfinite(weight).all() for weight in compiled)),
    }))


if __name__ == "__main__":
    main()
