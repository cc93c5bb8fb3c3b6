"""TensorFlow: each execution's training steps as one XLA computation, in Keras's own `fit`.

Keras's TensorFlow trainer runs `steps_per_execution` steps as a graph loop that pulls each batch
from a `tf.data` pipeline and launches the XLA-compiled step once per batch. On a 2-core CPU the
pulls and launches cost more than the arithmetic of the MLP's steps: an epoch of 55,000 images
took 2.3 to 2.5 s against 1.3 s for the same steps in one XLA loop over images held in memory.

`fit` here keeps Keras's `fit` (its epochs, callbacks, metrics and stop flag) and changes only how
the steps run:

- `fit` is given a dataset of batch numbers instead of the images, so its loop runs the epochs and
  callbacks (the same steps and executions) without moving images through `tf.data`;
- each epoch's row order comes from an `EpochOrder` (`training.data_order: reshuffled`, a fresh
  permutation every epoch: `bnlab.training.order`), or, without one, from Keras's own shuffling
  pipeline (`ArrayDataAdapter`, private to Keras) built over the row numbers as one batch: its
  permutation does not depend on what the rows hold or on the batch size, and each new iterator
  yields the order `fit`'s new iterator would (draining `fit`'s per-batch pipeline instead cost
  0.15 to 0.9 s an epoch);
- each call of the model's train function runs the execution's full batches as one XLA computation
  that gathers the images and labels from the whole training set and calls the model's own
  `train_step` on each batch in turn; a last, shorter batch runs alone, as Keras runs it.

The steps, their batches and their arithmetic are Keras's; a test trains the same seed both ways
(fused, and Keras's loop fed the same order) and finds the same figures (`tests/test_fused.py`).
Other backends, and Keras's settings without XLA or with one step per execution, fit with Keras's loop.
"""

from __future__ import annotations

import keras
import numpy as np

from bnlab.training.order import EpochOrder, OrderedBatches, ordered_tf_dataset


def fused_fit_applies(model) -> bool:
    """Whether `fit` runs `model`'s steps fused: TensorFlow, XLA on, more than one step an execution."""
    return (keras.backend.backend() == "tensorflow" and model.jit_compile is True
            and int(model.steps_per_execution) > 1)


def fit(model, x, y, *, batch_size: int, epochs: int, callbacks, fused: bool = True, order: EpochOrder | None = None):
    """`model.fit(x, y, ...)` with shuffling and no verbosity; its steps fused where `fused_fit_applies`.

    Args:
        model: a compiled Keras model.
        x, y: the training images (an array or a TensorFlow tensor) and labels.
        fused: False fits as Keras does everywhere (the same figures, slower on TensorFlow).
        order: each epoch's row order (`bnlab.training.order`); None: the order Keras's `fit` shuffles.
    """
    if not (fused and fused_fit_applies(model)):
        if isinstance(model.train_function, TrainFunction):  # a reused model fused before: Keras's own again
            model.train_function = None
        if order is not None and keras.backend.backend() == "tensorflow":
            dataset, epoch_callback = ordered_tf_dataset(x, y, batch_size, order)
            return model.fit(dataset, epochs=epochs, callbacks=[epoch_callback, *callbacks], verbose=0,
                             shuffle=False)  # the order is the dataset's (True only warns that it is ignored)
        if order is not None:
            batches = OrderedBatches(keras.ops.convert_to_numpy(x), np.asarray(y), batch_size, order)
            return model.fit(batches, epochs=epochs, callbacks=[batches.epoch_callback, *callbacks], verbose=0,
                             shuffle=False)
        return model.fit(x, y, batch_size=batch_size, epochs=epochs, callbacks=callbacks, verbose=0)
    import tensorflow as tf

    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    steps = getattr(model, "_fused_steps", None)
    if steps is None or steps.optimizer is not model.optimizer:  # compiled again: new functions
        model._fused_steps = steps = FusedSteps(model)
    model._symbolic_build(data_batch=(x[:1], y[:1]))  # what fit builds from a batch of images
    model.train_function = TrainFunction(steps, x, y, batch_size, order)
    # one element a batch: fit counts the steps and makes an iterator every epoch, the train function
    # takes its rows itself (a shuffled pipeline over the row numbers cost 0.04 s a fit and an epoch)
    batches = tf.data.Dataset.range(-(-int(x.shape[0]) // batch_size))
    return model.fit(batches, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)  # the order is ours


class FusedSteps:
    """A model's compiled step functions: full batches of one execution in one XLA loop, or one batch alone.

    Kept on the model (`model._fused_steps`), so a reused compiled model (`bnlab.training.compiled`)
    keeps them compiled too. Both take the whole training set as an argument: one compilation serves
    every trial whose training set has the same shape.
    """

    def __init__(self, model):
        import tensorflow as tf

        self.model, self.optimizer = model, model.optimizer
        self.steps_per_execution = int(model.steps_per_execution)
        self.full_batches = tf.function(self._full_batches, jit_compile=True)
        self.one_batch = tf.function(self.model.train_step, jit_compile=True)
        self._last_batch = {}  # its concrete functions by the batch's element shapes and dtypes

    def _one_batch(self, x, y, rows):
        import tensorflow as tf

        return self.model.train_step((tf.gather(x, rows), tf.gather(y, rows)))

    def last_batch(self, x, y):
        """One step on the epoch's shorter last batch, traced as Keras traces its step: batch size unknown.

        Keras's step function takes its batches from a dataset whose element spec leaves the batch
        size unknown; traced with the batch's own size instead, ghost BN's partial last slice came
        out rounded otherwise (the same arithmetic, other last bits).
        """
        import tensorflow as tf

        key = (tuple(x.shape[1:]), x.dtype, tuple(y.shape[1:]), y.dtype)
        if key not in self._last_batch:
            self._last_batch[key] = self.one_batch.get_concrete_function(
                (tf.TensorSpec([None, *x.shape[1:]], x.dtype), tf.TensorSpec([None, *y.shape[1:]], y.dtype)))
        return self._last_batch[key]((x, y))

    def _full_batches(self, x, y, rows, count):
        """`count` steps on the batches of `rows` (steps_per_execution x batch size; unused rows pad)."""
        import tensorflow as tf

        logs = self._one_batch(x, y, rows[0])
        _, logs = tf.while_loop(lambda step, _: step < count,
                                lambda step, _: (step + 1, self._one_batch(x, y, rows[step])),
                                [tf.constant(1), logs])
        return logs


class TrainFunction:
    """What Keras's `fit` calls once an execution with its epoch's iterator (over row-number batches)."""

    def __init__(self, steps: FusedSteps, x, y, batch_size: int, order: EpochOrder | None = None):
        self.steps, self.x, self.y, self.batch_size = steps, x, y, batch_size
        self.order = order if order is not None else KerasOrder(int(x.shape[0]))
        self.iterator, self.rows, self.done, self.epoch = None, None, 0, -1

    def __call__(self, iterator):
        import tensorflow as tf

        if iterator is not self.iterator:  # Keras makes a new iterator for every epoch
            self.epoch += 1
            self.iterator, self.rows, self.done = iterator, self.order.rows(self.epoch), 0
        remaining = len(self.rows) - self.done
        if remaining <= 0:
            raise StopIteration
        execution = self.rows[self.done:self.done + self.steps.steps_per_execution * self.batch_size]
        self.done += len(execution)
        full = len(execution) // self.batch_size
        logs = None
        if full:
            padded = np.zeros(self.steps.steps_per_execution * self.batch_size, dtype=np.int32)
            padded[:full * self.batch_size] = execution[:full * self.batch_size]
            rows = tf.constant(padded.reshape(self.steps.steps_per_execution, self.batch_size))
            logs = self.steps.full_batches(self.x, self.y, rows, tf.constant(full))
        if len(execution) > full * self.batch_size:  # the epoch's last, shorter batch
            rows = tf.constant(execution[full * self.batch_size:])
            logs = self.steps.last_batch(tf.gather(self.x, rows), tf.gather(self.y, rows))
        return logs


class KerasOrder:
    """The order of Keras's `fit`: `rows(epoch)` draws the next epoch's rows from Keras's own shuffling
    pipeline over the row numbers, in one batch (each new iterator yields the rows of the epoch that
    `fit`'s new iterator starts: the same seeds; a test checks). Seeded TensorFlow repeats one permutation."""

    def __init__(self, rows: int):
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

        rows = np.arange(rows, dtype=np.int32)
        self.pipeline = ArrayDataAdapter(rows, batch_size=len(rows), shuffle=True).get_tf_dataset()

    def rows(self, epoch: int) -> np.ndarray:
        import tensorflow as tf

        return tf.nest.flatten(next(iter(self.pipeline)))[0].numpy()
