"""Fits a model whose metric reports each batch's first label, the labels being the row numbers, in the
reshuffled order (`bnlab.training.order`) with one step an execution; prints the first row of every
batch of 2 epochs as one JSON line.

Run by tests/test_order.py in a fresh process per backend (KERAS_BACKEND is read at import).
"""

import json

import keras
import numpy as np

from bnlab.training import fused
from bnlab.training.order import EpochOrder


class FirstLabel(keras.metrics.Metric):
    """The first label of the batch it last saw."""

    def __init__(self):
        super().__init__(name="first")
        self.first = self.add_variable(shape=(), initializer="zeros", name="first")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.first.assign(keras.ops.cast(keras.ops.reshape(y_true, (-1,))[0], "float32"))

    def result(self):
        return self.first.value


def first_rows(images: int, batch_size: int, epochs: int, seed: int) -> list[int]:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse", metrics=[FirstLabel()], steps_per_execution=1)
    seen = []
    callback = keras.callbacks.LambdaCallback(on_train_batch_end=lambda _, logs: seen.append(int(logs["first"])))
    rows = np.arange(images, dtype="float32")
    fused.fit(model, np.zeros((images, 1), "float32"), rows, batch_size=batch_size, epochs=epochs,
              callbacks=[callback], order=EpochOrder(images, seed))
    return seen


if __name__ == "__main__":
    print(json.dumps({"backend": keras.backend.backend(), "first_rows": first_rows(100, 8, 2, 7)}))
