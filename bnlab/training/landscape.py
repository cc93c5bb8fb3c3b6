"""The smoothness of the loss landscape and internal covariate shift, measured as Santurkar et al. do.

Santurkar, Tsipras, Ilyas & Madry 2018 ("How does batch normalization help optimization?")
argue that BN helps not by reducing internal covariate shift (ICS) but by making the loss
landscape smoother. `landscape_step` measures, at the current weights, how much the loss and
its gradient change along the gradient direction (sec. 3.1, Fig. 4: loss landscape, gradient
predictiveness, "effective" beta-smoothness); `covariate_shift` measures their ICS
(sec. 2.2, Definition 2.1) layer by layer. Both run in training mode (batch statistics) and
change no variable of the model: they evaluate at moved weights without assigning them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bnlab.training.gradients import flatten_layers, kernel_layers, loss_and_gradients

LANDSCAPE_KEYS = ("loss", "gradient_norm", "loss_range", "gradient_predictiveness", "beta_smoothness")
COVARIATE_SHIFT_COLUMNS = ("layer", "depth", "l2", "cosine")


def landscape_step(model, x, y, step_sizes: Sequence[float], *, loss=None) -> dict:
    """How the loss and its gradient vary along the gradient direction (Santurkar et al. 2018, Fig. 4).

    At the current weights w, with g = grad L(w) on the batch (x, y), the loss and its gradient
    are evaluated at w - eta g for each step size eta; norms are over all trainable variables
    concatenated. Nothing is assigned: the model keeps w and its moving statistics.

    Args:
        model: a built Keras model.
        x: a batch of inputs.
        y: their targets.
        step_sizes: the step sizes eta, non-negative and finite, at least one of them positive.
        loss: as for `bnlab.training.gradients.loss_and_gradients` (default: the compiled loss).

    Returns:
        A dict of floats: `loss` L(w); `gradient_norm` |g|; `loss_range` max - min of L over
        w and the moved points (the spread of Fig. 4a); `gradient_predictiveness` the largest
        |g - grad L(w - eta g)| (Fig. 4b); `beta_smoothness` the largest |g - grad L(w - eta g)|
        / |eta g| over the positive eta (Fig. 4c); NaN when g is zero.

    Raises:
        ValueError: for invalid step sizes, or as `loss_and_gradients`.

    Example:
        >>> landscape_step(model, x_train[:512], y_train[:512], step_sizes=(0.05, 0.1, 0.2, 0.4))
        {'loss': 2.31, 'gradient_norm': 1.7, 'loss_range': 0.42, ...}
    """
    step_sizes = check_step_sizes(step_sizes)
    weights = _weights(model)
    value, gradient = loss_and_gradients(model, x, y, loss=loss)
    gradient_norm = _norm(gradient)
    losses, changes, ratios = [value], [], []
    for step_size in step_sizes:
        moved = [weight - step_size * part for weight, part in zip(weights, gradient)]
        moved_value, moved_gradient = loss_and_gradients(model, x, y, loss=loss, trainable_values=moved)
        change = _norm([part - moved_part for part, moved_part in zip(gradient, moved_gradient)])
        losses.append(moved_value)
        changes.append(change)
        if step_size > 0:
            ratios.append(change / (step_size * gradient_norm) if gradient_norm > 0 else math.nan)
    return {"loss": value, "gradient_norm": gradient_norm, "loss_range": max(losses) - min(losses),
            "gradient_predictiveness": max(changes), "beta_smoothness": max(ratios)}


def covariate_shift(model, x, y, learning_rate: float, *, loss=None) -> pd.DataFrame:
    """Internal covariate shift of each kernel layer (Santurkar et al. 2018, Definition 2.1).

    For the kernel layer i, G is the loss gradient with respect to its kernel at the current
    weights, and G' the same gradient after the layers before it have taken their update while
    it and the later layers have not. Here that update is one plain gradient step of
    `learning_rate` on the same batch, -learning_rate * grad, for every trainable variable of
    every layer before layer i in `model.layers` order (normalization layers' gamma and beta
    included): the step of SGD without momentum, whatever optimizer trains the model. The
    first kernel layer has no layer before it and is not reported.

    Args:
        model: a built Keras model with at least one kernel layer (see `kernel_layers`).
        x: a batch of inputs.
        y: their targets.
        learning_rate: the step size of the update, positive and finite.
        loss: as for `bnlab.training.gradients.loss_and_gradients`.

    Returns:
        One row per kernel layer of depth 2 or more: `layer` (name), `depth`, `l2` |G - G'|
        and `cosine` cos(G, G') (NaN when either is zero).

    Raises:
        ValueError: for an invalid learning rate, a model without kernel layers, or as
            `loss_and_gradients`.

    Example:
        >>> covariate_shift(model, x_train[:512], y_train[:512], learning_rate=0.1)
        # layer, depth, l2, cosine for hidden_2 ... output
    """
    learning_rate = check_learning_rate(learning_rate)
    _, gradient = loss_and_gradients(model, x, y, loss=loss)  # checks the model first
    layers, weights = kernel_layers(model), _weights(model)
    if not layers:
        raise ValueError(f"covariate_shift: expected a model with a trainable kernel layer (Dense, a convolution, "
                         f"WeightNormDense); model {model.name!r} has none.")
    before = _earlier_variables(model)
    rows = []
    for kernel in layers[1:]:
        earlier = before[id(kernel.layer)]
        moved = [weight - learning_rate * part if index in earlier else weight
                 for index, (weight, part) in enumerate(zip(weights, gradient))]
        _, shifted = loss_and_gradients(model, x, y, loss=loss, trainable_values=moved)
        old, new = gradient[kernel.index], shifted[kernel.index]
        rows.append({"layer": kernel.layer.name, "depth": kernel.depth, "l2": _norm([old - new]),
                     "cosine": _cosine(old, new)})
    return pd.DataFrame(rows, columns=list(COVARIATE_SHIFT_COLUMNS))


def check_step_sizes(step_sizes, where: str = "landscape_step") -> tuple[float, ...]:
    """The step sizes as floats; raises ValueError, naming `where`, unless they are valid."""
    try:
        values = tuple(float(value) for value in step_sizes)
    except (TypeError, ValueError):
        values = ()
    if not values or not all(math.isfinite(value) and value >= 0 for value in values) or max(values) <= 0:
        raise ValueError(f"{where}: step_sizes must be non-negative finite numbers, at least one of them "
                         f"positive; received {step_sizes!r}.")
    return values


def check_learning_rate(learning_rate, where: str = "covariate_shift") -> float:
    """The learning rate as a float; raises ValueError, naming `where`, unless it is positive and finite."""
    real = isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool)
    if not (real and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"{where}: learning_rate must be a positive finite number; received {learning_rate!r}.")
    return float(learning_rate)


def _earlier_variables(model) -> dict[int, set[int]]:
    """For each layer (by id), the positions in model.trainable_variables of the earlier layers' variables."""
    positions = {id(variable): index for index, variable in enumerate(model.trainable_variables)}
    before, seen = {}, set()
    for layer in flatten_layers(model):
        before[id(layer)] = set(seen)
        seen.update(positions[id(variable)] for variable in layer.trainable_variables if id(variable) in positions)
    return before


def _weights(model) -> list[np.ndarray]:
    return [np.asarray(variable.numpy(), dtype="float64") for variable in model.trainable_variables]


def _norm(arrays) -> float:
    return math.sqrt(sum(float(np.sum(np.square(array))) for array in arrays))


def _cosine(first: np.ndarray, second: np.ndarray) -> float:
    norms = _norm([first]) * _norm([second])
    return float(np.sum(first * second)) / norms if norms > 0 else math.nan
