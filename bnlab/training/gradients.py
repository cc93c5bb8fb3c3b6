"""Loss gradients of any Keras model in training mode, with no side effect on the model.

Everything here goes through `model.stateless_call(..., training=True)`: batch normalization
normalizes with the batch's own statistics, as in a training step, but the moving statistics,
the seed states of noise layers (Dropout) and every other variable are left as they were.
The gradient comes from the backend's own automatic differentiation (`tf.GradientTape`,
`jax.value_and_grad`, `torch.autograd.grad`) behind `_value_and_gradients`; results are numpy
float64 arrays, ready for tables.

`gradient_norms` is the gradient-explosion measurement of Yang et al. 2019 ("A mean field
theory of batch normalization", ICLR 2019): at initialization, the squared norm of the loss
gradient with respect to each layer's weights grows with depth in a batch-normalized network.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pandas as pd
from keras import ops

GRADIENT_NORM_COLUMNS = ("layer", "depth", "units", "squared_norm")


@dataclasses.dataclass(frozen=True)
class KernelLayer:
    """A layer with a weight kernel, as `kernel_layers` finds it.

    Attributes:
        layer: the Keras layer.
        depth: its rank among the kernel layers, 1 nearest the input.
        units: its output width (`units`, or `filters` for a convolution).
        index: the position of its kernel in `model.trainable_variables`.
    """

    layer: keras.layers.Layer
    depth: int
    units: int
    index: int


def loss_and_gradients(model, x, y, *, loss=None, trainable_values=None) -> tuple[float, list[np.ndarray]]:
    """The mean loss on a batch and its gradient with respect to each trainable variable.

    Computed in training mode (batch statistics for batch normalization) but stateless: no
    variable of the model changes (moving statistics, seed states, weights), nor any optimizer
    state. Regularization losses that layers add (`layer.losses`, e.g. a kernel_regularizer)
    are ignored: this is the gradient of the data loss alone.

    Args:
        model: a built Keras model.
        x: a batch of model inputs; floating-point arrays are cast to the model's compute dtype.
        y: the batch's targets, as the loss takes them (class indices for the default loss).
        loss: a Keras loss (a `keras.losses.Loss`, its name, or a callable `loss(y_true,
            y_pred)`); per-example values are averaged. None: the loss the model was compiled
            with, or `keras.losses.SparseCategoricalCrossentropy()` for an uncompiled model.
        trainable_values: optional values, one per `model.trainable_variables` (same order and
            shapes), to evaluate at instead of the variables' own; nothing is assigned.

    Returns:
        (loss, gradients): the mean loss as a float and one float64 array per trainable
        variable, in the order of `model.trainable_variables`.

    Raises:
        ValueError: if the model is not built or has no trainable variable, if the loss cannot
            be interpreted, or if `trainable_values` does not match the trainable variables.

    Example:
        >>> value, gradients = loss_and_gradients(model, x_train[:256], y_train[:256])
        >>> [g.shape for g in gradients] == [tuple(v.shape) for v in model.trainable_variables]
        True
    """
    _check_model(model, "loss_and_gradients")
    loss_function = _loss_function(model, loss)
    values = _trainable_tensors(model, trainable_values)
    non_trainable = [variable.value for variable in model.non_trainable_variables]
    inputs = keras.tree.map_structure(lambda array: _input_tensor(array, model.compute_dtype), x)
    targets = ops.convert_to_tensor(y)

    def mean_loss(trainable):
        outputs, _ = model.stateless_call(trainable, non_trainable, inputs, training=True)
        return ops.mean(ops.cast(loss_function(targets, outputs), "float32"))

    value, gradients = _value_and_gradients(mean_loss, values)
    return float(_numpy(value)), [_numpy(gradient) for gradient in gradients]


def flatten_layers(model) -> list:
    """The model's layers input to output (`model.layers` order), nested models expanded in place."""
    flat = []
    for layer in model.layers:
        flat += flatten_layers(layer) if isinstance(layer, keras.Model) else [layer]
    return flat


def kernel_layers(model) -> list[KernelLayer]:
    """The layers with a trainable weight kernel, input to output, each with its depth.

    A layer counts when its `kernel` (or `_kernel`, where `kernel` is a computed property as in
    Keras's Dense with LoRA) is one of `model.trainable_variables`: Dense, EinsumDense, the
    convolutions, and bnlab's `WeightNormDense`, whose kernel variable is the direction v of
    w = g v / ||v|| (its gradient is with respect to v). Frozen layers are left out.

    Args:
        model: a built Keras model; nested models' layers are included, in order.

    Returns:
        One `KernelLayer` per layer, depth 1 nearest the input.
    """
    positions = {id(variable): index for index, variable in enumerate(model.trainable_variables)}
    found = []
    for layer in flatten_layers(model):
        kernel = _kernel_variable(layer)
        if kernel is not None and id(kernel) in positions:
            units = getattr(layer, "units", None) or getattr(layer, "filters", None) or kernel.shape[-1]
            found.append(KernelLayer(layer, len(found) + 1, int(units), positions[id(kernel)]))
    return found


def gradient_norms(model, images, labels, *, loss=None) -> pd.DataFrame:
    """Squared norm of the loss gradient with respect to each kernel (Yang et al. 2019).

    Yang et al. 2019 show that, at initialization, batch normalization makes this grow
    exponentially with depth (gradient explosion); call it on a freshly built model.

    Args:
        model: a built Keras model with at least one kernel layer (see `kernel_layers`).
        images: a batch of inputs.
        labels: their targets.
        loss: as for `loss_and_gradients`.

    Returns:
        One row per kernel layer, input to output: `layer` (name), `depth` (1 nearest the
        input), `units` (output width), `squared_norm` (of the gradient, float64).

    Raises:
        ValueError: as `loss_and_gradients`, or if the model has no trainable kernel.

    Example:
        >>> table = gradient_norms(build_model("bn_before_activation"), x[:256] / 255.0, y[:256])
        >>> table.plot(x="depth", y="squared_norm", logy=True)
    """
    layers = _checked_kernel_layers(model, "gradient_norms")
    _, gradients = loss_and_gradients(model, images, labels, loss=loss)
    rows = [{"layer": kernel.layer.name, "depth": kernel.depth, "units": kernel.units,
             "squared_norm": float(np.sum(np.square(gradients[kernel.index])))} for kernel in layers]
    return pd.DataFrame(rows, columns=list(GRADIENT_NORM_COLUMNS))


def _checked_kernel_layers(model, where: str) -> list[KernelLayer]:
    _check_model(model, where)
    layers = kernel_layers(model)
    if not layers:
        names = ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in flatten_layers(model))
        raise ValueError(f"{where}: expected a model with a trainable kernel layer (Dense, a convolution, "
                         f"WeightNormDense); model {model.name!r} has none. Layers: {names or 'none'}.")
    return layers


def _check_model(model, where: str) -> None:
    if not isinstance(model, keras.Model):
        raise ValueError(f"{where}: expected a keras.Model; received {type(model).__name__}.")
    if not model.built:
        raise ValueError(f"{where}: model {model.name!r} is not built; call it on a batch or give it an "
                         "Input first. Received an unbuilt model.")
    if not model.trainable_variables:
        raise ValueError(f"{where}: expected a model with trainable variables; model {model.name!r} has none.")


def _loss_function(model, loss):
    """The loss to use: `loss`, else the compiled one, else sparse categorical cross-entropy."""
    if loss is None:
        loss = getattr(model, "loss", None) if getattr(model, "compiled", False) else None
        if loss is None:
            return keras.losses.SparseCategoricalCrossentropy()
    if isinstance(loss, (list, tuple, dict)):
        raise ValueError("loss_and_gradients: expected one loss for a single-output model; pass `loss=` explicitly; "
                         f"received {type(loss).__name__} {loss!r}.")
    try:
        return keras.losses.get(loss)
    except (ValueError, TypeError):
        raise ValueError("loss_and_gradients: expected a Keras loss (a keras.losses.Loss, its name such as "
                         f"'sparse_categorical_crossentropy', or a callable); received {loss!r}.") from None


def _trainable_tensors(model, trainable_values) -> list:
    variables = model.trainable_variables
    if trainable_values is None:
        return [variable.value for variable in variables]
    values = list(trainable_values)
    shapes = [tuple(variable.shape) for variable in variables]
    received = [tuple(np.shape(value)) for value in values]
    if received != shapes:
        raise ValueError(f"loss_and_gradients: trainable_values must match model.trainable_variables: "
                         f"{len(shapes)} arrays of shapes {shapes}; received {len(received)} of shapes {received}.")
    return [ops.convert_to_tensor(value, dtype=variable.dtype) for variable, value in zip(variables, values)]


def _input_tensor(array, compute_dtype: str):
    dtype = keras.backend.standardize_dtype(getattr(array, "dtype", None) or np.asarray(array).dtype)
    return ops.convert_to_tensor(array, dtype=compute_dtype if "float" in dtype else None)


def _kernel_variable(layer):
    for attribute in ("kernel", "_kernel"):
        value = getattr(layer, attribute, None)  # a property may compute a tensor (LoRA): not a variable
        if isinstance(value, keras.Variable):
            return value
    return None


def _numpy(tensor) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(tensor), dtype="float64")


def _value_and_gradients(function, values: list):
    """`function(values)`, a scalar, and its gradient with respect to each of `values`, by the backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        values = [tf.convert_to_tensor(value) for value in values]  # a tape watches tensors, not variables
        with tf.GradientTape() as tape:
            tape.watch(values)
            value = function(values)
        return value, tape.gradient(value, values, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    if backend == "jax":
        import jax

        return jax.value_and_grad(function)(values)
    if backend == "torch":
        import torch

        values = [value.detach().clone().requires_grad_(True) for value in values]
        with torch.enable_grad():  # a callback may run where gradients are off
            value = function(values)
        gradients = torch.autograd.grad(value, values, allow_unused=True, materialize_grads=True)
        return value.detach(), [gradient.detach() for gradient in gradients]
    raise ValueError(f"expected the Keras backend to be tensorflow, jax or torch; received {backend!r}.")
