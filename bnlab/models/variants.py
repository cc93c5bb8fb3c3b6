"""The table of named model variants: a builder, the arguments that make the variant, and the
input scaling it expects, for each name.

The built-in variants are data for the one generic MLP builder; `register_variant` adds a
user's own model to the same table, and every part of bnlab then treats it alike. This module
imports neither Keras nor TensorFlow, so configs can be validated (and a backend chosen) before
Keras is first imported: the MLP builder is held as a "module:function" reference, imported
only when a model is built.
"""

from __future__ import annotations

import dataclasses
import re
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from bnlab.models.arguments import (  # noqa: F401 (re-exported: configs and builders import them from here)
    BUILDER_ARGUMENTS,
    BUILDER_DEFAULTS,
    BatchNormPlacement,
    InputNormalization,
    builder_argument_problems,
    builder_setting_problems,
)
from bnlab.models.references import accepted_arguments, function_text, import_function, reference_of

MLP_BUILDER = "bnlab.models.builders:build_mlp"  # a reference, not an import: the builders import Keras
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")  # a name is its trials' default label, which names folders
_UNIT = 1.0 / 255.0  # the classic Keras MNIST scaling: pixels to [0, 1]
_RAW = 1.0  # raw 0..255 pixels: the input BatchNormalization layer standardizes them


@dataclasses.dataclass(frozen=True)
class Variant:
    """A named model variant: a builder, the arguments that define the variant, and its input.

    Attributes:
        name: registry name, e.g. "bn_before_activation".
        summary: one line for listings.
        builder: a "module:function" reference (imported when first built) or the function itself;
            called with `arguments` and any overrides, it returns an uncompiled `keras.Model`.
        arguments: the builder's keyword arguments that make this variant (none for a user's own).
        accepted: the names of the overrides the builder accepts; None: any (it takes **kwargs).
        input_scale: factor applied to raw pixel values (0..255) when there is no `preprocessor`.
        preprocessor: a user's function from raw uint8 images to model inputs.
    """

    name: str
    summary: str
    builder: str | Callable = MLP_BUILDER
    arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    accepted: tuple[str, ...] | None = BUILDER_ARGUMENTS
    input_scale: float = _UNIT
    preprocessor: Callable | None = None

    @property
    def is_mlp(self) -> bool:
        """True for a variant of `build_mlp`, whose override values configs check before building."""
        return self.builder == MLP_BUILDER

    @property
    def builder_reference(self) -> str | None:
        """The "module:function" that finds the builder in another process (None: none can)."""
        return self.builder if isinstance(self.builder, str) else reference_of(self.builder)

    @property
    def preprocess_reference(self) -> str | None:
        """The "module:function" of the user's preprocessing function (None: none, or not importable)."""
        return None if self.preprocessor is None else reference_of(self.preprocessor)

    def references(self) -> dict[str, str]:
        """For a registered variant, {"builder": ..., "preprocess": ...}: the "module:function" that
        registers it again in another process (configs record them). Empty for the built-in
        variants, and when the builder or the preprocessing cannot be imported (a lambda, a
        function of `__main__`): another process could not rebuild the same variant."""
        builder, preprocess = self.builder_reference, self.preprocess_reference
        if self.is_mlp or builder is None or (self.preprocessor is not None and preprocess is None):
            return {}
        return {"builder": builder, **({"preprocess": preprocess} if preprocess else {})}

    def builder_args(self) -> dict:
        """The keyword arguments of the builder that define this variant."""
        return dict(self.arguments)

    def mlp_settings(self, overrides: Mapping[str, Any]) -> dict:
        """For a `build_mlp` variant: every keyword argument it is built with, given `overrides`."""
        return {**BUILDER_DEFAULTS, **self.arguments, **overrides}

    def resolve_builder(self) -> Callable:
        """The builder function; a reference's module (and so Keras) is imported the first time."""
        return import_function(self.builder) if isinstance(self.builder, str) else self.builder

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """Raw uint8 images -> model input: the user's function, else float32 scaled as this variant expects."""
        if self.preprocessor is not None:
            return self.preprocessor(images)
        return np.multiply(images, np.float32(self.input_scale), dtype=np.float32)


def _variant(name, summary, batch_norm, input_normalization, input_scale, **normalizer) -> Variant:
    arguments = {
        "batch_norm": BatchNormPlacement(batch_norm).value,
        "input_normalization": InputNormalization(input_normalization).value,
        "name": name,
        **normalizer,
    }
    return Variant(name, summary, MLP_BUILDER, MappingProxyType(arguments), BUILDER_ARGUMENTS, input_scale)


_BUILT_IN = (
    _variant("no_bn", "no batch normalization", "none", "none", _UNIT),
    _variant("bn_after_activation", "BN after each hidden activation", "after_activation", "none", _UNIT),
    # Ioffe & Szegedy 2015, sec. 3.2: BN goes on Wx before the nonlinearity, and the Dense bias
    # is dropped because BN's offset (beta) subsumes it.
    _variant("bn_before_activation", "BN before each hidden activation, Dense without bias", "before_activation",
             "none", _UNIT),
    _variant("bn_input", "BN on the raw input instead of dividing pixels by 255", "none", "batch_norm", _RAW),
    # The bn_input puzzle (configs/input_bn.yaml): the same network on pixels / 255, where BN's epsilon
    # (0.001) is no longer negligible against a pixel's variance.
    _variant("bn_input_scaled", "BN on the input, pixels divided by 255 first", "none", "batch_norm", _UNIT),
    # The other normalizers, before the activation as Ioffe & Szegedy place BN (bnlab.models.normalizers).
    # Ghost BN (Hoffer et al. 2017): 16 examples a normalization batch divides the usual batches of 32 and 128.
    _variant("ghost_bn_before_activation", "ghost BN (16 examples a normalization batch) before each activation",
             "before_activation", "none", _UNIT, normalization="ghost", virtual_batch_size=16),
    # Ioffe 2017's schedule (5k warm-up, r_max 3 at 40k, d_max 5 at 25k steps) divided by 10: bnlab's
    # runs last thousands of steps, not the paper's 100k+.
    _variant("renorm_before_activation", "batch renormalization before each activation", "before_activation",
             "none", _UNIT, normalization="renorm", renorm_warmup_steps=500, renorm_r_max_steps=4000,
             renorm_d_max_steps=2500),
    # Santurkar et al. 2018, sec. 2.1, Fig. 2: BN whose output distribution changes every step, to test
    # whether BN helps by stabilizing layer inputs.
    _variant("noisy_bn_before_activation", "noisy BN (Santurkar et al. 2018): BN plus noise whose mean and "
             "variance change every step", "before_activation", "none", _UNIT, normalization="noisy"),
    _variant("layer_norm_before_activation", "layer normalization before each activation", "before_activation",
             "none", _UNIT, normalization="layer"),
    # 10 groups divide both hidden widths (Wu & He's default of 32 divides neither 300 nor 100).
    _variant("group_norm_before_activation", "group normalization (10 groups) before each activation",
             "before_activation", "none", _UNIT, normalization="group", groups=10),
    _variant("weight_norm", "weight-normalized hidden Dense kernels, no normalization layer", "before_activation",
             "none", _UNIT, normalization="weight"),
)
BUILT_IN_VARIANTS = tuple(variant.name for variant in _BUILT_IN)
_REGISTRY: dict[str, Variant] = {variant.name: variant for variant in _BUILT_IN}
# A live, read-only view of the table: registrations show up in it.
VARIANTS: Mapping[str, Variant] = MappingProxyType(_REGISTRY)


def register_variant(
    name: str, builder: Callable, preprocess: Callable | None = None, description: str = ""
) -> Variant:
    """Add a model of your own to the variant table, beside the built-in MLP variants.

    Then `build_model(name)`, `list_variants()`, configs that name it (`run_experiment`), and the
    report with its figures and statistics treat it like any built-in variant. Define the builder
    (and preprocess) at module level in an importable module: runs in worker processes (a grid
    over backends, the dask executor) and `load_results` in a later session find them again by
    the "module:function" the run's config.yaml records. A YAML config can register it itself:
    `variants: [no_bn, {name: small_cnn, builder: "mypkg.models:build_cnn",
    preprocess: "mypkg.models:add_channel", overrides: {filters: 16}}]`. Loading such a config
    imports mypkg.models: if it imports Keras at the top, choose the backend with KERAS_BACKEND
    (a config's `backend` is set only after the config is loaded).

    Args:
        name: the registry name (letters, digits, '_', '.', '-'); also its trials' default label.
        builder: `builder(**overrides)` returns an uncompiled `keras.Model`; configs may override
            the keyword arguments its signature names (any, when it takes **kwargs).
        preprocess: maps raw uint8 MNIST images (N, 28, 28) to model inputs; None: pixels / 255
            as float32.
        description: one line for `bnlab variants` (default: the builder's name).

    Returns:
        The registered `Variant`.

    Raises:
        ValueError: the name is malformed or already registered, or builder or preprocess is not
            callable.

    Example:
        >>> def build_cnn(filters=8, momentum=0.99):  # in mypkg/models.py
        ...     return keras.Sequential([
        ...         keras.Input((28, 28, 1)), keras.layers.Conv2D(filters, 3, use_bias=False),
        ...         keras.layers.BatchNormalization(momentum=momentum), keras.layers.ReLU(),
        ...         keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
        >>> def add_channel(images):  # uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]
        ...     return (images[..., None] / 255.0).astype("float32")
        >>> bnlab.register_variant("small_cnn", build_cnn, add_channel, "Conv-BN-ReLU, global pooling")
        >>> grid = {"model.momentum": [0.9, 0.99]}  # a builder argument as a grid axis
        >>> config = bnlab.load_config("tiny", {"variants": ["no_bn", "small_cnn"], "grid": grid})
        >>> bnlab.write_report(bnlab.run_experiment(config, "runs/small_cnn"))
    """
    problem = _registration_problem(name, builder, preprocess, description)
    if problem:
        raise ValueError(f"register_variant: {problem}")
    summary = description or f"built by {function_text(builder)}"
    variant = Variant(name, summary, builder, MappingProxyType({}), accepted_arguments(builder), _UNIT, preprocess)
    _REGISTRY[name] = variant
    return variant


def _registration_problem(name, builder, preprocess, description) -> str | None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        return f"name must be letters, digits, '_', '.', '-' (it names trial folders); received {name!r}."
    if name in BUILT_IN_VARIANTS:
        return f"{name!r} is a built-in variant; choose another name."
    if name in _REGISTRY:
        return (f"{name!r} is already registered (builder {function_text(_REGISTRY[name].builder)}); choose another "
                f"name, or call bnlab.unregister_variant({name!r}) first to replace it.")
    if not callable(builder):
        return f"builder must be a function returning an uncompiled keras.Model; received {_kind(builder)}."
    if preprocess is not None and not callable(preprocess):
        return f"preprocess must be None or a function of raw uint8 images; received {_kind(preprocess)}."
    if not isinstance(description, str):
        return f"description must be a string; received {_kind(description)}."
    return None


def _kind(value) -> str:
    return f"{value!r} (a {type(value).__name__})"


def unregister_variant(name: str) -> None:
    """Remove a variant that `register_variant` (or a config's `builder` key) added.

    Args:
        name: a registered name that is not built in.

    Raises:
        ValueError: the name is built in, or not registered.
    """
    if name in BUILT_IN_VARIANTS:
        raise ValueError(f"unregister_variant: {name!r} is a built-in variant; only registered ones can be removed.")
    if name not in _REGISTRY:
        added = ", ".join(sorted(set(_REGISTRY) - set(BUILT_IN_VARIANTS))) or "none"
        raise ValueError(f"unregister_variant: {name!r} is not registered. Registered variants: {added}.")
    del _REGISTRY[name]


def list_variants() -> list[str]:
    """Names of the registered variants, sorted.

    Returns:
        The names accepted by `build_model` and in experiment configs.
    """
    return sorted(_REGISTRY)


def get_variant(name: str) -> Variant:
    """Look up a variant by name.

    Args:
        name: a registry name, see `list_variants()`.

    Returns:
        The `Variant`.

    Raises:
        ValueError: the name is not registered; the message lists the available names.
    """
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown variant {name!r}. Available: {', '.join(list_variants())}."
        )
    return _REGISTRY[name]


def preprocess_input(variant: str, images: np.ndarray) -> np.ndarray:
    """Turn raw uint8 images into the input the named variant expects.

    Args:
        variant: a registry name.
        images: raw pixel values 0..255, any shape.

    Returns:
        float32 array of the same shape for the built-in variants; a registered variant's
        `preprocess` decides for its own.

    Example:
        >>> x = preprocess_input("bn_input", x_train)  # raw 0..255 as float32
        >>> x = preprocess_input("no_bn", x_train)     # pixels / 255
    """
    return get_variant(variant).preprocess(images)
