"""Inference-mode passes of a trial: validation, the training set re-evaluated, and the test set.

Every pass cuts its images into batches of `batch_size` and pads the last batch to full size, so
the backend compiles one predict step per model (Keras's `evaluate` and `predict` compiled one
more for each array's shorter last batch: about 1 s each with XLA on a 2-core CPU). The loss and
accuracy are then computed from the predicted probabilities, as Keras's
`sparse_categorical_crossentropy` and `accuracy` compute them (probabilities clipped to
[1e-7, 1 - 1e-7]); the padding rows are dropped first. In inference mode BN uses its moving
statistics, so a padded row does not change the others' outputs.

The test pass also gives each test image's predicted class (`TestPredictions`), so the test set is
scored once.
"""

from __future__ import annotations

import keras
import numpy as np

from bnlab.common.batches import padded_batches
from bnlab.training.record import TestPredictions

CLIP = 1e-7  # keras.losses.sparse_categorical_crossentropy clips probabilities to [1e-7, 1 - 1e-7]


def predict_padded(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's inference-mode outputs for `x`, one fixed-shape batch per call."""
    return np.concatenate([keras.ops.convert_to_numpy(model.predict_on_batch(batch))[:rows]
                           for batch, rows in padded_batches(x, batch_size)])


def scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean sparse categorical cross-entropy and accuracy of class probabilities against labels."""
    labels = np.asarray(labels)
    chosen = np.clip(probabilities[np.arange(len(labels)), labels], CLIP, 1 - CLIP)
    return {"loss": float(-np.log(chosen).mean()),
            "accuracy": float((np.argmax(probabilities, axis=1) == labels).mean())}


def score(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, float]:
    """{"loss": ..., "accuracy": ...} of the model in inference mode on (x, y)."""
    return scores(predict_padded(model, x, batch_size), y)


def score_test(model: keras.Model, x: np.ndarray, y: np.ndarray,
               batch_size: int) -> tuple[dict[str, float], TestPredictions]:
    """The test loss and accuracy, and every test image's predicted class, from one pass."""
    probabilities = predict_padded(model, x, batch_size)
    predicted = np.argmax(probabilities, axis=1).astype(np.uint8)
    return scores(probabilities, y), TestPredictions(predicted, np.asarray(y, dtype=np.uint8))


def train_eval_subset(y_train: np.ndarray, examples: int | None, seed: int) -> np.ndarray | None:
    """Indices of the training images re-evaluated in inference mode (None: all of them).

    A random subset of `examples` images drawn with the trial's seed, in training-set order:
    trials with the same seed (the variants of a paired comparison) share it, trials with other
    seeds draw others, so its sampling error is part of the seed-to-seed spread.
    """
    if examples is None or examples >= len(y_train):
        return None
    chosen = np.random.default_rng([seed, len(y_train)]).choice(len(y_train), size=examples, replace=False)
    return np.sort(chosen)
