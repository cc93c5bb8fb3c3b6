"""Population statistics of BatchNormalization layers: PreciseBN, and how far the moving averages are from them.

Keras's BatchNormalization normalizes each training batch with that batch's biased moments (divide by
the count) and keeps exponential moving averages of them (momentum 0.99) for inference. Two things
make those averages differ from the statistics the inference network really meets (Wu & Johnson 2021,
"Rethinking 'Batch' in BatchNorm", sec. 3): they average over weights that kept changing during
training, and the average of biased batch variances is (B-1)/B of the population variance for i.i.d.
batches of size B. PreciseBN (their sec. 3; fvcore's `update_bn_stats`, torch's `swa_utils.update_bn`)
recomputes the statistics with the weights frozen. `precise_bn` does so layer by layer as the
inference network sees it; `bn_discrepancy` measures the gap without changing the model.

Example:
    >>> statistics = precise_bn(model, x_train)
    >>> model.evaluate(x_test, y_test)  # inference now uses the recomputed statistics
"""

from __future__ import annotations

import dataclasses
import weakref
from numbers import Integral

import keras
import numpy as np
import pandas as pd

from bnlab.common.batches import padded_batches

DISCREPANCY_COLUMNS = ("layer", "channels", "mean_shift_median", "mean_shift_max", "variance_ratio_median",
                       "variance_ratio_min", "variance_ratio_max")


@dataclasses.dataclass
class _Moments:
    """Per-channel float64 sums over batches, merged with Chan, Golub & LeVeque's (1979) pairwise update.

    The pairwise update keeps the result independent of how the data is cut into batches (up to
    rounding) and avoids the cancellation of a plain sum of squares.
    """

    count: int = 0
    mean: np.ndarray | float = 0.0
    squares: np.ndarray | float = 0.0  # sum of squared deviations from the running mean (M2)
    within: np.ndarray | float = 0.0  # sum over batches of each batch's squared deviations from its own mean

    def add(self, batch: np.ndarray, axis: int) -> None:
        reduce = tuple(index for index in range(batch.ndim) if index != axis)
        batch = batch.astype(np.float64)
        batch_count = int(np.prod([batch.shape[index] for index in reduce]))
        batch_mean = batch.mean(axis=reduce)
        batch_squares = ((batch - np.expand_dims(batch_mean, reduce)) ** 2).sum(axis=reduce)
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (batch_count / total)
        self.squares = self.squares + batch_squares + delta**2 * (self.count * batch_count / total)
        self.within = self.within + batch_squares
        self.count = total

    def variance(self, unbiased: bool) -> np.ndarray:
        # unbiased: the population variance with Bessel's correction; otherwise the size-weighted mean
        # of the batches' biased variances, sum_b n_b var_b / sum_b n_b = sum_b M2_b / N.
        return self.squares / (self.count - 1) if unbiased else self.within / self.count


def precise_bn(model: keras.Model, inputs: np.ndarray, batch_size: int = 128, examples: int | None = None,
               unbiased: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Recompute every BatchNormalization layer's moving statistics from data, weights frozen.

    The layers are taken in network order (the order of `model.layers`). For each one in turn, its
    inputs are computed over the data with the model in inference mode, the earlier BN layers already
    holding their recomputed statistics, so each layer gets the statistics of what the inference
    network feeds it (Wu & Johnson 2021, sec. 3). Statistics are per channel, the channel being the
    layer's `axis`; all other axes are reduced. Nothing but `moving_mean` and `moving_variance` changes
    (and, for a layer with `renorm=True`, `moving_stddev = sqrt(moving_variance + epsilon)`, which
    Keras keeps alongside them).

    Args:
        model: a built Keras model (Sequential or functional) with one input and at least one
            `keras.layers.BatchNormalization` layer (subclasses included) at its top level.
        inputs: the model's input as fed to `fit`, examples along the first axis.
        batch_size: rows per forward pass; bounds memory and, for `unbiased=False`, sets the batches.
        examples: use the first `examples` rows of `inputs`; None uses all of them.
        unbiased: True sets each layer's variance to the population variance of its inputs over all
            the examples used, with Bessel's correction (divide by n - 1, n the number of values per
            channel); the result does not depend on `batch_size`. False sets it to the mean over the
            batches of `batch_size` rows of each batch's biased variance (divide by the batch's count),
            which is what Keras's moving average estimates in expectation: (B - 1)/B of the population
            variance for i.i.d. batches of B. A partial last batch counts with a weight proportional
            to its size. The mean is the population mean either way.

    Returns:
        {layer name: (mean, variance)}, float32 arrays of shape (channels,), in network order; the same
        values are assigned to the layers.

    Raises:
        ValueError: the model has no BatchNormalization layer, has one inside a nested model or used
            twice, has several inputs or is not built; or `inputs`, `batch_size` or `examples` is invalid.

    Example:
        >>> model.fit(x_train, y_train, batch_size=60)
        >>> statistics = precise_bn(model, x_train, examples=10_000)
        >>> bn_discrepancy(model, x_train)  # now mean shift ~0, variance ratio ~1
    """
    rows = _rows(inputs, batch_size, examples)
    layers = _batch_norm_layers(model)
    statistics = {}
    for layer, input_model in zip(layers, _input_models(model, layers), strict=True):
        moments = _moments(input_model, rows, batch_size, layer.axis)
        _check_count(moments, unbiased, layer)
        mean, variance = moments.mean.astype(np.float32), moments.variance(unbiased).astype(np.float32)
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)
        if getattr(layer, "moving_stddev", None) is not None:
            # Keras's renorm derives moving_variance from moving_stddev at each training step.
            layer.moving_stddev.assign(np.sqrt(variance + np.float32(layer.epsilon)))
        statistics[layer.name] = (mean, variance)
    return statistics


def bn_discrepancy(model: keras.Model, inputs: np.ndarray, batch_size: int = 128,
                   examples: int | None = None) -> pd.DataFrame:
    """Compare each BatchNormalization layer's moving statistics with the population statistics of its inputs.

    The model is not changed. The population statistics are those of `precise_bn(unbiased=True)` (mean,
    and variance with Bessel's correction, per channel), except that every earlier layer keeps its
    CURRENT moving statistics: each layer is compared with the inputs the deployed network really
    feeds it.

    Columns, one row per layer in network order:
        layer: the layer's name.
        channels: the number of channels (the size of the layer's `axis`).
        mean_shift_median, mean_shift_max: |moving_mean - population mean| / population standard
            deviation, median and max over channels; 0 is exact, 1 is a one-standard-deviation shift.
        variance_ratio_median, variance_ratio_min, variance_ratio_max: moving_variance / population
            variance over channels; 1 is exact, about (B - 1)/B after training with batches of B.
    Channels whose population variance is 0 are left out of all five statistics (a shift or ratio
    relative to 0 is undefined); a layer with only such channels gets NaN.

    Args:
        model: as for `precise_bn`.
        inputs: as for `precise_bn`.
        batch_size: rows per forward pass (memory only: the result does not depend on it).
        examples: use the first `examples` rows of `inputs`; None uses all of them.

    Returns:
        A DataFrame with the columns above.

    Raises:
        ValueError: as for `precise_bn`.
    """
    rows = _rows(inputs, batch_size, examples)
    layers = _batch_norm_layers(model)
    _input_models(model, layers)  # the checks: one input, each layer called once and reachable
    # nothing changes between layers here, so one forward pass gives every layer's inputs (one pass per
    # layer would cost O(depth^2): 200 s for a 50-layer network)
    moments = _every_moments(_every_input(model, layers), rows, batch_size, [layer.axis for layer in layers])
    records = []
    for layer, layer_moments in zip(layers, moments, strict=True):
        _check_count(layer_moments, True, layer)
        records.append(_discrepancy_row(layer, layer_moments.mean, layer_moments.variance(unbiased=True)))
    return pd.DataFrame(records, columns=list(DISCREPANCY_COLUMNS))


# (ids of the BN layers fed, the multi-output model) by model; not an attribute: Keras would track it as a layer
_EVERY_INPUT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _every_input(model: keras.Model, layers: list) -> keras.Model:
    """A model of `model`'s layers whose outputs are the inputs of `layers`; kept on `model`, so that a
    compiled model reused by later trials (bnlab.training.compiled) traces its predict step once."""
    feeding = [id(layer) for layer in layers]
    kept = _EVERY_INPUT.get(model)
    if kept is None or kept[0] != feeding:
        kept = _EVERY_INPUT[model] = (feeding, keras.Model(model.inputs[0], [layer.input for layer in layers],
                                                           name="bn_inputs"))
    return kept[1]


def _every_moments(every_input: keras.Model, rows: np.ndarray, batch_size: int, axes: list[int]) -> list[_Moments]:
    """Per-channel moments of each output of a multi-output model over the rows, in padded batches of
    batch_size (`padded_batches`: the padding's outputs dropped)."""
    moments = [_Moments() for _ in axes]
    for batch, used in padded_batches(rows, batch_size):
        outputs = every_input.predict_on_batch(batch)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for layer_moments, values, axis in zip(moments, outputs, axes, strict=True):
            values = np.asarray(values)[:used]
            layer_moments.add(values, axis % values.ndim)
    return moments


def _discrepancy_row(layer, population_mean: np.ndarray, population_variance: np.ndarray) -> dict:
    """One row of `bn_discrepancy` for a layer, channels with population variance 0 left out."""
    moving_mean = keras.ops.convert_to_numpy(layer.moving_mean).astype(np.float64)
    moving_variance = keras.ops.convert_to_numpy(layer.moving_variance).astype(np.float64)
    kept = population_variance > 0
    shift = np.abs(moving_mean - population_mean)[kept] / np.sqrt(population_variance[kept])
    ratio = moving_variance[kept] / population_variance[kept]
    if not kept.any():
        shift = ratio = np.array([np.nan])
    return {"layer": layer.name, "channels": int(population_mean.size), "mean_shift_median": float(np.median(shift)),
            "mean_shift_max": float(np.max(shift)), "variance_ratio_median": float(np.median(ratio)),
            "variance_ratio_min": float(np.min(ratio)), "variance_ratio_max": float(np.max(ratio))}


def _rows(inputs, batch_size, examples) -> np.ndarray:
    """The rows of `inputs` to use, after checking the arguments."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1:
        raise ValueError("batch_size must be a positive integer (rows per forward pass). "
                         f"Received: batch_size={batch_size!r}.")
    rows = np.asarray(inputs)
    if rows.ndim == 0 or len(rows) == 0:
        raise ValueError("inputs must hold at least one example along its first axis, as fed to fit. "
                         f"Received: an array of shape {rows.shape}.")
    if examples is None:
        return rows
    if isinstance(examples, bool) or not isinstance(examples, Integral) or not 1 <= examples <= len(rows):
        raise ValueError(f"examples must be None (all rows) or an integer from 1 to {len(rows)}, the number of rows "
                         f"of inputs. Received: examples={examples!r}.")
    return rows[:examples]


def _batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's BatchNormalization layers in network order; nested ones are refused."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layers.append(layer)
        elif isinstance(layer, keras.Model) and batch_norm_layer_names(layer):
            raise ValueError(f"BatchNormalization layers inside the nested model '{layer.name}' are not supported: "
                             "expected them at the top level of the model. Rebuild the model flat (call the inner "
                             f"model's layers directly). Received: {batch_norm_layer_names(layer)} inside it.")
    if not layers:
        names = ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in model.layers)
        raise ValueError("expected a model with at least one keras.layers.BatchNormalization layer (or a "
                         f"subclass). Received: model '{model.name}' with layers {names or 'none'}.")
    return layers


def batch_norm_layer_names(model: keras.Model) -> list[str]:
    """Names of the model's BatchNormalization layers (subclasses included), nested models searched too."""
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            names.append(layer.name)
        elif isinstance(layer, keras.Model):
            names.extend(batch_norm_layer_names(layer))
    return names


def has_top_level_batch_norm(model: keras.Model) -> bool:
    """Whether `precise_bn` and `bn_discrepancy` apply: the model has BN layers, none inside a nested model."""
    nested = any(isinstance(layer, keras.Model) and batch_norm_layer_names(layer) for layer in model.layers)
    return not nested and any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def _input_models(model: keras.Model, layers: list) -> list[keras.Model]:
    """For each layer, a model from the model's input to that layer's input."""
    try:
        model_inputs = model.inputs
    except (AttributeError, ValueError) as error:
        raise ValueError(f"expected a built model with a defined input. Received: model '{model.name}', "
                         "which has none; build it with keras.Input or call it on data first.") from error
    if not model_inputs or len(model_inputs) != 1:
        raise ValueError(f"expected a model with exactly one input. Received: model '{model.name}' with "
                         f"{len(model_inputs or [])} inputs.")
    return [_input_model(model_inputs[0], layer) for layer in layers]


def _input_model(model_input, layer) -> keras.Model:
    """A model from the model's input to the layer's input, sharing the model's weights."""
    # `layer.input` is the input of the layer's first call only (keras.ops.Operation.input); a layer
    # called twice would get the statistics of one of its two inputs, so it is refused.
    calls = len(getattr(layer, "_inbound_nodes", ()))
    if calls != 1:
        raise ValueError(f"expected each BatchNormalization layer to be called exactly once. Received: layer "
                         f"'{layer.name}', called {calls} times.")
    try:
        return keras.Model(model_input, layer.input, name=f"{layer.name}_input")
    except ValueError as error:
        raise ValueError(f"expected layer '{layer.name}' to be reachable from the model's input. Received: a "
                         f"graph Keras cannot cut there ({error}).") from error


def _moments(input_model: keras.Model, rows: np.ndarray, batch_size: int, axis: int) -> _Moments:
    """Per-channel moments of what `input_model` outputs over the rows, in batches of batch_size."""
    return _every_moments(input_model, rows, batch_size, [axis])[0]


def _check_count(moments: _Moments, unbiased: bool, layer) -> None:
    """Bessel's correction needs at least two values per channel."""
    if unbiased and moments.count < 2:
        raise ValueError(f"unbiased=True divides by n - 1, so it needs at least 2 values per channel. Received: "
                         f"{moments.count} for layer '{layer.name}'; pass more examples or unbiased=False.")
