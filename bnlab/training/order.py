"""The training images' order: a fresh permutation every epoch, drawn from the trial's seed.

Stochastic gradient descent, as the BN papers train, reshuffles the training set every epoch, so
that a batch's companions change: Ioffe & Szegedy 2015, sec. 4.2.1, shuffled "more thoroughly" so
that the same examples do not always appear in a batch together (about 1% validation accuracy on
ImageNet). Seeded Keras 3 on TensorFlow does not: its shuffle, a random op inside `Dataset.map`,
repeats its permutation every epoch under a global seed (tensorflow/tensorflow#35682); Keras on
JAX draws a new one each epoch from numpy's global generator.

`training.data_order: reshuffled` (the default) draws epoch `e`'s order of a trial with seed `s`
from `numpy.random.default_rng((ORDER_STREAM, s, e))`: a new permutation every epoch, the same
on every backend and for every variant and grid point of the seed (paired comparisons see the same
batches). `repeated` draws epoch 0's permutation and repeats it every epoch (a control: what seeded
Keras does on TensorFlow, on every backend). `keras` keeps Keras's own order (runs made before the key).

Example:
    >>> order = EpochOrder(images=6, seed=0)
    >>> order.rows(0), order.rows(1)  # doctest: +SKIP
    (array([2, 5, 0, 3, 1, 4]), array([4, 0, 1, 5, 3, 2]))
"""

from __future__ import annotations

import keras
import numpy as np

ORDER_STREAM = 0x0D7A  # keeps this generator's draws apart from any other use of the trial's seed


class EpochOrder:
    """Each epoch's row order: `rows(epoch)`, a permutation of `range(images)` drawn from `seed` and the
    epoch; with `reshuffle=False`, epoch 0's permutation every epoch (`training.data_order: repeated`)."""

    def __init__(self, images: int, seed: int, reshuffle: bool = True):
        self.images, self.seed, self.reshuffle = int(images), int(seed), reshuffle

    def rows(self, epoch: int) -> np.ndarray:
        drawn = int(epoch) if self.reshuffle else 0
        return np.random.default_rng((ORDER_STREAM, self.seed, drawn)).permutation(self.images).astype(np.int32)

    def batches(self, batch_size: int) -> int:
        """Batches an epoch: the full ones and a shorter last one."""
        return -(-self.images // batch_size)


def ordered_tf_dataset(x, y, batch_size: int, order: EpochOrder):
    """A `tf.data` pipeline of `fit`'s batches in an `EpochOrder`, and the callback that sets its epoch.

    For Keras's own TensorFlow loop: the batches of `OrderedBatches`, gathered from tensors in the
    pipeline as Keras's array adapter gathers them (a PyDataset's Python generator made epochs 25%
    slower here), with the batch size unknown to the traced step, as in Keras's own pipeline. Each
    new iterator (Keras makes one an epoch) reads the order the callback set when the epoch began.

    Returns:
        (dataset, callback): fit with `fit(dataset, callbacks=[callback, ...])`.
    """
    import tensorflow as tf

    state = {"rows": order.rows(0)}
    callback = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs=None: state.update(rows=order.rows(epoch)))
    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    images, batches = order.images, order.batches(batch_size)

    def epoch_batches(_):
        rows = tf.ensure_shape(tf.numpy_function(lambda: state["rows"], [], tf.int32, stateful=True), [images])
        return tf.data.Dataset.range(batches).map(
            lambda index: rows[index * batch_size:tf.minimum((index + 1) * batch_size, images)])

    dataset = tf.data.Dataset.range(1).flat_map(epoch_batches).map(
        lambda rows: (tf.gather(x, rows), tf.gather(y, rows)), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE), callback


class OrderedBatches(keras.utils.PyDataset):
    """`fit`'s batches of (x, y) in an `EpochOrder`, for Keras's own step loop on any backend.

    The batches are those of `fit(x, y, batch_size)` after the permutation: full batches, then a
    shorter last one. Fit it with `shuffle=False` and `callbacks=[..., batches.epoch_callback]`: the
    callback sets the epoch when `fit` starts one (Keras calls a dataset's own `on_epoch_begin` and
    `on_epoch_end` also around its set-up, so they cannot count epochs).
    """

    def __init__(self, x, y, batch_size: int, order: EpochOrder):
        super().__init__()
        if len(x) != order.images or len(y) != order.images:
            raise ValueError(f"expected {order.images} images and labels for the order, received {len(x)} and {len(y)}")
        self.x, self.y, self.batch_size, self.order = np.asarray(x), np.asarray(y), int(batch_size), order
        self.current = order.rows(0)
        self.epoch_callback = keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs=None: self.set_epoch(epoch))

    def set_epoch(self, epoch: int) -> None:
        self.current = self.order.rows(epoch)

    def __len__(self) -> int:
        return self.order.batches(self.batch_size)

    def __getitem__(self, index: int):
        rows = self.current[index * self.batch_size:(index + 1) * self.batch_size]
        return self.x[rows], self.y[rows]
