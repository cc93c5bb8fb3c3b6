"""Independent check of data_order_fit's g = 128 claim with plain Keras: no bnlab model, order or runner code.

The 784-300-100-10 MLP with BN before each ReLU (Dense without bias), SGD 0.05 momentum 0.9, batch 128, 5 epochs
on the first 55,000 training images, from the same initial weights in two orders: one permutation every epoch
(repeated) or a new one each epoch (reshuffled). Prints Keras's training-mode accuracy of the last epoch and the
inference-mode accuracy on the same 55,000 images, per seed, and the paired differences with t intervals.
Only the data comes from bnlab (`bnlab.load_mnist`, the official MNIST bytes).

Run: .venv/bin/python docs/checks/order_fit_plain_keras.py   (about 3 minutes on 2 cores)
"""
import keras
import numpy as np
from scipy import stats

import bnlab

(x, y), _ = bnlab.load_mnist()
x, y = (x[:55000].reshape(-1, 784) / 255.0).astype("float32"), y[:55000]


def network():
    layers = [keras.Input((784,))]
    for units in (300, 100):
        layers += [keras.layers.Dense(units, use_bias=False), keras.layers.BatchNormalization(), keras.layers.ReLU()]
    model = keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train(seed, order):
    keras.utils.set_random_seed(seed)
    model, rng = network(), np.random.default_rng(seed)
    first = rng.permutation(len(x))
    for epoch in range(5):
        rows = first if order == "repeated" or epoch == 0 else rng.permutation(len(x))
        history = model.fit(x[rows], y[rows], batch_size=128, epochs=1, shuffle=False, verbose=0)
    return history.history["accuracy"][-1], model.evaluate(x, y, batch_size=1024, verbose=0)[1]


results = {(seed, order): train(seed, order) for seed in (0, 1, 2) for order in ("repeated", "reshuffled")}
for (seed, order), (training, inference) in results.items():
    print(f"seed {seed} {order:>10}: training mode {training:.4f}, inference mode {inference:.4f}")
for index, name in enumerate(("training-mode", "inference-mode")):
    differences = [results[seed, "repeated"][index] - results[seed, "reshuffled"][index] for seed in (0, 1, 2)]
    test = stats.ttest_1samp(differences, 0.0)
    interval = test.confidence_interval()
    print(f"{name} accuracy, repeated - reshuffled: {np.mean(differences):+.4f} "
          f"[{interval.low:+.4f}, {interval.high:+.4f}], p {test.pvalue:.2g}")
