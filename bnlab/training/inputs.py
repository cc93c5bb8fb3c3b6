"""A trial's model inputs: each split preprocessed as its variant asks, kept for the next trial that asks alike.

Preprocessing the 55,000 training images, and Keras copying them into a tensor at every `fit`,
cost a trial about 0.25 s on a 2-core CPU. Consecutive trials whose variants preprocess alike
(every grid point of a variant, and the variants that divide pixels by 255) share one copy:
the preprocessed arrays and, on TensorFlow, the training images as a tensor that `fit` slices
without copying. Only the latest inputs are kept, so memory holds what one trial needs.
"""

from __future__ import annotations

import dataclasses
import weakref

import keras
import numpy as np

from bnlab.data.splits import Splits


@dataclasses.dataclass(frozen=True)
class TrialInputs:
    """The splits' images as one variant's model takes them (labels stay in the `Splits`)."""

    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    fit_x: object  # x_train for `fit`: a tensor on TensorFlow (no copy at each fit), else x_train itself


_kept: tuple | None = None  # (a weak reference to the splits, the preprocessing, its TrialInputs)


def trial_inputs(variant, splits: Splits) -> TrialInputs:
    """The preprocessed splits for a registered variant (`bnlab.models.variants.Variant`), reused when the
    previous call had the same splits and preprocessing."""
    global _kept
    preprocessing = variant.preprocessor if variant.preprocessor is not None else variant.input_scale
    if _kept is not None and _kept[0]() is splits and _kept[1] == preprocessing:
        return _kept[2]
    _kept = None  # let the previous inputs go before making the next
    x_train = variant.preprocess(splits.x_train)
    fit_x = keras.ops.convert_to_tensor(x_train) if keras.backend.backend() == "tensorflow" else x_train
    inputs = TrialInputs(x_train, variant.preprocess(splits.x_val), variant.preprocess(splits.x_test), fit_x)
    _kept = (weakref.ref(splits), preprocessing, inputs)
    return inputs
