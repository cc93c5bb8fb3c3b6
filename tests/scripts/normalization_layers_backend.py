"""Runs bnlab's normalization layers on fixed weights and inputs; prints their outputs as one JSON line.

Run by tests/test_normalization_layers.py in a fresh process per backend (KERAS_BACKEND is read at
import); the test imports the constants below and computes the expected values in numpy.
"""

import json

import keras
import numpy as np

from bnlab.models.layers import BatchRenormalization, GhostBatchNormalization, WeightNormDense

# 10 examples in slices of 4, 4 and 2 (the remainder rule); inference at another batch size (3)
INPUTS = (((np.arange(30) * 7) % 11 - 5) / 3.0).reshape(10, 3).astype("float32")
VIRTUAL_BATCH_SIZE, MOMENTUM, EPSILON = 4, 0.9, 1e-3
GAMMA, BETA = np.array([1.5, -0.5, 2.0], "float32"), np.array([0.1, 0.2, -0.3], "float32")
# moving statistics far from the slices' own, so that r clips on channels 0 and 1 and d on channel 2
MOVING_MEAN, MOVING_VARIANCE = np.array([0.2, -0.1, -20.0], "float32"), np.array([0.01, 100.0, 1.0], "float32")
# at step 4 of this schedule r_max = 1 + 2 * (4 - 2) / (6 - 2) = 2 and d_max = 5 (reached at 4)
SCHEDULE = {"r_max": 3.0, "d_max": 5.0, "warmup_steps": 2, "r_max_steps": 6, "d_max_steps": 4}
RENORM_STEP = 4
KERNEL = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]], "float32")
G, BIAS = np.array([2.0, 0.5], "float32"), np.array([0.1, -0.2], "float32")


def to_list(tensor) -> list:
    return np.asarray(keras.ops.convert_to_numpy(tensor), "float64").tolist()


def run_batch_norm(layer) -> dict:
    """A training call on INPUTS, then an inference call on the first three examples."""
    layer.build(INPUTS.shape)
    layer.set_weights([GAMMA, BETA, MOVING_MEAN, MOVING_VARIANCE] + layer.get_weights()[4:])
    if isinstance(layer, BatchRenormalization):
        layer.renorm_steps.assign(float(RENORM_STEP))
    training = layer(INPUTS, training=True)
    results = {"training": to_list(training), "moving_mean": to_list(layer.moving_mean),
               "moving_variance": to_list(layer.moving_variance),
               "inference": to_list(layer(INPUTS[:3], training=False))}
    if isinstance(layer, BatchRenormalization):
        results.update(renorm_steps=to_list(layer.renorm_steps), current_r_max=to_list(layer.current_r_max),
                       current_d_max=to_list(layer.current_d_max))
    return results


def main() -> None:
    keras.utils.set_random_seed(0)
    options = {"virtual_batch_size": VIRTUAL_BATCH_SIZE, "momentum": MOMENTUM, "epsilon": EPSILON}
    dense = WeightNormDense(2, activation="relu")
    dense.build(INPUTS.shape)
    dense.set_weights([KERNEL, G, BIAS])
    outputs = {"backend": keras.backend.backend(),
               "ghost": run_batch_norm(GhostBatchNormalization(**options)),
               "renorm": run_batch_norm(BatchRenormalization(**SCHEDULE, **options)),
               "weight_norm": {"training": to_list(dense(INPUTS, training=True)), "inference": to_list(dense(INPUTS))}}
    print(json.dumps(outputs))


if __name__ == "__main__":
    main()
