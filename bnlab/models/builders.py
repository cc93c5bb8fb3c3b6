"""The MLP builder and its batch-normalization placements, and `build_model`, which builds any
registered variant: a built-in one with `build_mlp`, a user's own with its builder.

Example:
    >>> model = build_model("bn_before_activation")
    >>> model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    >>> model.fit(preprocess_input("bn_before_activation", x_train), y_train)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from bnlab.models.references import function_text
from bnlab.models.variants import (
    BatchNormPlacement,
    InputNormalization,
    Variant,
    builder_argument_problems,
    get_variant,
)

_KERAS_BN_MOMENTUM = 0.99  # keras.layers.BatchNormalization's default
_KERAS_BN_EPSILON = 1e-3  # keras.layers.BatchNormalization's default


class BuilderError(ValueError):
    """A registered variant's own builder failed, or returned something other than a keras.Model."""


def build_mlp(
    hidden_units: Sequence[int] = (300, 100),
    activation: str = "relu",
    batch_norm: str = "none",
    input_normalization: str = "none",
    num_classes: int = 10,
    input_shape: Sequence[int] = (28, 28),
    momentum: float = _KERAS_BN_MOMENTUM,
    epsilon: float = _KERAS_BN_EPSILON,
    kernel_initializer: str | dict = "glorot_uniform",
    name: str = "mlp",
) -> keras.Model:
    """Build an uncompiled multilayer perceptron with BN where asked.

    Layers: Flatten, an optional BatchNormalization on the input, one hidden block per
    entry of `hidden_units`, then Dense(num_classes, softmax).

    Args:
        hidden_units: width of each hidden Dense layer, input to output.
        activation: Keras activation of the hidden layers, e.g. "relu" or "sigmoid".
        batch_norm: BN placement in the hidden layers: "none", "before_activation"
            (Dense without bias, BN, then a separate Activation layer) or
            "after_activation" (Dense with its activation, then BN).
        input_normalization: "none", or "batch_norm" for a BatchNormalization layer
            right after Flatten.
        num_classes: units of the softmax output.
        input_shape: shape of one example, without the batch axis.
        momentum: momentum of every BatchNormalization layer's moving statistics.
        epsilon: epsilon of every BatchNormalization layer.
        kernel_initializer: Keras initializer of the Dense kernels.
        name: the model's name.

    Returns:
        An uncompiled `keras.Model`.

    Raises:
        ValueError: an argument is out of range or not one of its choices.

    Example:
        >>> model = build_mlp(hidden_units=(512, 256), batch_norm="before_activation",
        ...                   input_shape=(32, 32, 3), num_classes=100)
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    """
    _check_arguments(hidden_units=hidden_units, batch_norm=batch_norm, input_normalization=input_normalization,
                     num_classes=num_classes, input_shape=input_shape, momentum=momentum, epsilon=epsilon)
    bn_args = {"momentum": momentum, "epsilon": epsilon}
    layers = [keras.Input(shape=tuple(input_shape)), keras.layers.Flatten(name="flatten")]
    layers += _input_block(InputNormalization(input_normalization), bn_args)
    placement = BatchNormPlacement(batch_norm)
    for index, units in enumerate(hidden_units, start=1):
        layers += _hidden_block(f"hidden_{index}", units, activation, placement, kernel_initializer, bn_args)
    layers.append(
        keras.layers.Dense(num_classes, activation="softmax", kernel_initializer=kernel_initializer, name="output")
    )
    return keras.Sequential(layers, name=name)


def _check_arguments(**arguments) -> None:
    problems = builder_argument_problems(**arguments)
    if problems:
        argument, expected, received = problems[0]
        raise ValueError(f"build_mlp: {argument} must be {expected}; received {received!r}.")


def _input_block(normalization, bn_args) -> list:
    if normalization is InputNormalization.BATCH_NORM:
        return [keras.layers.BatchNormalization(name="input_bn", **bn_args)]
    return []


def _hidden_block(prefix, units, activation, placement, kernel_initializer, bn_args):
    if placement is BatchNormPlacement.BEFORE_ACTIVATION:
        # Ioffe & Szegedy 2015, sec. 3.2: normalize Wu, not Wu + b; BN's beta replaces b.
        return [
            keras.layers.Dense(
                units, use_bias=False, kernel_initializer=kernel_initializer, name=prefix
            ),
            keras.layers.BatchNormalization(name=f"{prefix}_bn", **bn_args),
            keras.layers.Activation(activation, name=f"{prefix}_{_activation_name(activation)}"),
        ]
    dense = keras.layers.Dense(
        units, activation=activation, kernel_initializer=kernel_initializer, name=prefix
    )
    if placement is BatchNormPlacement.AFTER_ACTIVATION:
        return [dense, keras.layers.BatchNormalization(name=f"{prefix}_bn", **bn_args)]
    return [dense]


def _activation_name(activation) -> str:
    return activation if isinstance(activation, str) else "activation"


def build_model(variant: str, **overrides) -> keras.Model:
    """Build a registered variant, optionally with builder arguments changed.

    Feed the model `preprocess_input(variant, images)`: the variants differ in the input
    they expect (see `bnlab.models.variants`).

    Args:
        variant: a registry name, see `list_variants()`.
        **overrides: for the built-in variants any `build_mlp` argument, e.g.
            `hidden_units=(512, 256)`, `input_shape=(32, 32, 3)`, `num_classes=100`; for a
            registered one, the keyword arguments of its builder.

    Returns:
        An uncompiled `keras.Model` (a built-in variant's is named after it).

    Raises:
        ValueError: unknown variant (the message lists them) or unknown/bad argument.
        BuilderError: a registered variant's builder raised, or returned no `keras.Model`
            (a subclass of ValueError).

    Example:
        >>> model = build_model("bn_after_activation", activation="tanh")
        >>> model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        >>> model.fit(preprocess_input("bn_after_activation", x_train), y_train)
    """
    spec = get_variant(variant)
    if spec.accepted is not None:
        unknown = sorted(set(overrides) - set(spec.accepted))
        if unknown:
            raise ValueError(
                f"build_model: unknown argument(s) {', '.join(unknown)} for variant "
                f"{variant!r}. Accepted: {', '.join(spec.accepted) or 'none'}."
            )
    arguments = {**spec.builder_args(), **overrides}
    if spec.is_mlp:  # bnlab's own builder: its ValueErrors name the argument at fault
        return build_mlp(**arguments)
    return _build_registered(spec, arguments)


def _build_registered(spec: Variant, arguments: dict) -> keras.Model:
    """A user's builder called, its failures told as one line that names the variant and the builder."""
    builder = function_text(spec.builder)
    try:
        model = spec.resolve_builder()(**arguments)
    except Exception as error:  # anything a user's code raises: one line, the cause chained
        reason = (str(error).splitlines() or [""])[0]
        raise BuilderError(f"build_model: variant {spec.name!r}: its builder {builder} raised "
                           f"{type(error).__name__}: {reason}") from error
    if not isinstance(model, keras.Model):
        text = repr(model)
        text = text if len(text) <= 60 else text[:57] + "..."
        raise BuilderError(f"build_model: variant {spec.name!r}: expected its builder {builder} to return an "
                           f"uncompiled keras.Model, received a {type(model).__name__} ({text}).")
    return model


def nonlinearity_layer(model: keras.Model, hidden_layer: int) -> str:
    """The name of the layer that applies the nonlinearity of a hidden layer of a bnlab MLP.

    With BN before the activation it is the separate Activation layer (`hidden_3_sigmoid`,
    whose input is BN's output); otherwise the Dense layer itself (`hidden_3`), whose
    activation is fused. `ActivationPercentiles` watches the input of either.

    Args:
        model: a model from `build_mlp` / `build_model`.
        hidden_layer: 1-based index of the hidden layer.

    Returns:
        The layer name.

    Raises:
        ValueError: the model has no such hidden layer.
    """
    prefix = f"hidden_{hidden_layer}"
    names = [layer.name for layer in model.layers]
    separate = [n for n in names if n.startswith(f"{prefix}_") and n != f"{prefix}_bn"]
    if separate:
        return separate[0]
    if prefix in names:
        return prefix
    hidden = sorted({n.split("_")[1] for n in names if n.startswith("hidden_")})
    raise ValueError(
        f"nonlinearity_layer: model {model.name!r} has no hidden layer {hidden_layer!r}; "
        f"its hidden layers are {', '.join(hidden) or 'none'} (1-based)."
    )
