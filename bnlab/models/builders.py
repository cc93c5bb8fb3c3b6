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

from bnlab.models.arguments import builder_setting_problems
from bnlab.models.blocks import hidden_block, input_block
from bnlab.models.references import function_text
from bnlab.models.variants import Variant, builder_argument_problems, get_variant


class BuilderError(ValueError):
    """A registered variant's own builder failed, or returned something other than a keras.Model."""


def build_mlp(
    hidden_units: Sequence[int] = (300, 100),
    activation: str = "relu",
    batch_norm: str = "none",
    input_normalization: str = "none",
    num_classes: int = 10,
    input_shape: Sequence[int] = (28, 28),
    momentum: float = 0.99,
    epsilon: float = 1e-3,
    kernel_initializer: str | dict = "glorot_uniform",
    name: str = "mlp",
    normalization: str = "batch",
    virtual_batch_size: int | None = None,
    groups: int = 10,
    renorm_r_max: float = 3.0,
    renorm_d_max: float = 5.0,
    renorm_warmup_steps: int = 5000,
    renorm_r_max_steps: int = 40000,
    renorm_d_max_steps: int = 25000,
    noise_mean: float = 0.5,
    noise_stddev: float = 1.5,
) -> keras.Model:
    """Build an uncompiled multilayer perceptron with a normalizer where asked.

    Layers: Flatten, an optional normalizer on the input, one hidden block per entry of
    `hidden_units`, then Dense(num_classes, softmax). The defaults are `bnlab.models.arguments.BUILDER_DEFAULTS`.

    Args:
        hidden_units: width of each hidden Dense layer, input to output; any depth, e.g. [300] * 10
            for ten hidden layers of 300 units.
        activation: Keras activation of the hidden layers, e.g. "relu" or "sigmoid".
        batch_norm: where the normalizer goes in the hidden layers (the name is historical):
            "none", "before_activation" (Dense without bias, the normalizer, then a separate
            Activation layer) or "after_activation" (Dense with its activation, then the normalizer).
        input_normalization: "none", or "batch_norm" for the normalizer's layer right after Flatten.
        num_classes: units of the softmax output.
        input_shape: shape of one example, without the batch axis.
        momentum: momentum of the moving statistics (batch, ghost, renorm, noisy).
        epsilon: epsilon of every normalization layer.
        kernel_initializer: Keras initializer of the Dense kernels. For deep ReLU networks "he_normal"
            is the sensible one (He et al. 2015, sec. 2.2: variance 2 / fan_in keeps the activations'
            scale from layer to layer); the default "glorot_uniform" suits shallow or tanh networks.
        name: the model's name.
        normalization: the normalizer, one of `bnlab.models.normalizers.list_normalizers()`: "batch"
            (Keras BatchNormalization), "ghost", "renorm", "noisy" (BN plus noise that changes every
            training step, Santurkar et al. 2018, sec. 2.1), "layer", "group", "weight" (the hidden Dense
            kernels are weight-normalized, whatever the placement; not on the input) or "none".
        virtual_batch_size: ghost and renorm: examples per normalization batch (None: the whole batch).
        groups: group: the number of groups; it must divide every normalized width.
        renorm_r_max: renorm: the final clipping limit of r (Ioffe 2017: 3).
        renorm_d_max: renorm: the final clipping limit of d (Ioffe 2017: 5).
        renorm_warmup_steps: renorm: steps of plain BN (r_max 1, d_max 0) before the limits open.
        renorm_r_max_steps: renorm: the step at which r_max reaches `renorm_r_max` (linear ramp).
        renorm_d_max_steps: renorm: the step at which d_max reaches `renorm_d_max` (linear ramp).
        noise_mean: noisy: each training step, each unit's noise mean is drawn from [-noise_mean, noise_mean].
        noise_stddev: noisy: each training step, each unit's noise standard deviation is drawn from
            [1, noise_stddev] (see `bnlab.models.noise.NoisyBatchNormalization`).

    Returns:
        An uncompiled `keras.Model`.

    Raises:
        ValueError: an argument is out of range, not one of its choices, or does not fit the others
            (e.g. groups that do not divide a width: the message lists the valid ones).

    Example:
        >>> model = build_mlp(batch_norm="before_activation", normalization="ghost", virtual_batch_size=4)
        >>> model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        >>> model.fit(x_train / 255.0, y_train, batch_size=128)  # 32 normalization batches of 4 a step
    """
    settings = dict(locals())  # every argument, by name: the blocks read what they need
    _check_arguments(settings)
    layers = [keras.Input(shape=tuple(input_shape)), keras.layers.Flatten(name="flatten")]
    layers += input_block(settings)
    for index, units in enumerate(hidden_units, start=1):
        layers += hidden_block(index, units, settings)
    layers.append(
        keras.layers.Dense(num_classes, activation="softmax", kernel_initializer=kernel_initializer, name="output")
    )
    return keras.Sequential(layers, name=name)


def _check_arguments(settings: dict) -> None:
    problems = builder_argument_problems(**settings) or builder_setting_problems(settings)
    if problems:
        argument, expected, received = problems[0]
        raise ValueError(f"build_mlp: {argument} must be {expected}; received {received!r}.")


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
    separate = [layer.name for layer in model.layers
                if layer.name.startswith(f"{prefix}_") and isinstance(layer, keras.layers.Activation)]
    if separate:
        return separate[0]
    if prefix in names:
        return prefix
    hidden = sorted({n.split("_")[1] for n in names if n.startswith("hidden_")})
    raise ValueError(
        f"nonlinearity_layer: model {model.name!r} has no hidden layer {hidden_layer!r}; "
        f"its hidden layers are {', '.join(hidden) or 'none'} (1-based)."
    )
