"""The table of named model variants: each one is data for the one generic MLP builder.

This module imports neither Keras nor TensorFlow, so configs can be validated (and a
backend chosen) before Keras is first imported.
"""

from __future__ import annotations

import dataclasses
import enum
from types import MappingProxyType
from typing import Mapping

import numpy as np

# The keyword arguments of `bnlab.models.builders.build_mlp`, kept here so that configs can check
# builder overrides without importing Keras (a test keeps the two in step).
BUILDER_ARGUMENTS = (
    "hidden_units",
    "activation",
    "batch_norm",
    "input_normalization",
    "num_classes",
    "input_shape",
    "momentum",
    "epsilon",
    "kernel_initializer",
    "name",
)


class BatchNormPlacement(str, enum.Enum):
    """Where BatchNormalization goes in each hidden layer."""

    NONE = "none"
    BEFORE_ACTIVATION = "before_activation"
    AFTER_ACTIVATION = "after_activation"


class InputNormalization(str, enum.Enum):
    """What normalizes the flattened input before the first hidden layer."""

    NONE = "none"
    BATCH_NORM = "batch_norm"


def builder_argument_problems(**arguments) -> list[tuple[str, str, object]]:
    """Check values of `build_mlp` arguments without importing Keras.

    Only the arguments given are checked; activation and kernel_initializer are left to
    Keras. Configs call this to reject bad builder overrides before anything is built.

    Returns:
        One (argument, what was expected, the value received) per problem.
    """
    checks = {
        "hidden_units": (_positive_int_sequence, "a non-empty sequence of positive integers, e.g. (300, 100)"),
        "batch_norm": (_choice(BatchNormPlacement), _choices_text(BatchNormPlacement)),
        "input_normalization": (_choice(InputNormalization), _choices_text(InputNormalization)),
        "num_classes": (lambda v: _positive_int_sequence([v]), "a positive integer"),
        "input_shape": (_positive_int_sequence, "a non-empty sequence of positive integers, e.g. (28, 28)"),
        "momentum": (lambda v: _is_real(v) and 0.0 <= v < 1.0, "in [0, 1)"),
        "epsilon": (lambda v: _is_real(v) and v > 0.0, "positive"),
    }
    return [
        (name, checks[name][1], value)
        for name, value in arguments.items()
        if name in checks and not checks[name][0](value)
    ]


def _positive_int_sequence(values) -> bool:
    if isinstance(values, (str, bytes)):
        return False
    try:
        values = list(values)
    except TypeError:
        return False
    return bool(values) and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
    )


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _choice(enum_type):
    return lambda value: value in {member.value for member in enum_type}


def _choices_text(enum_type) -> str:
    return "one of " + ", ".join(repr(member.value) for member in enum_type)


@dataclasses.dataclass(frozen=True)
class Variant:
    """A named model variant: arguments for `build_mlp` plus the input scaling it expects.

    Attributes:
        name: registry name, e.g. "bn_before_activation".
        summary: one line for listings.
        batch_norm: placement of BN in the hidden layers.
        input_normalization: what normalizes the input inside the model.
        input_scale: factor applied to raw pixel values (0..255) before they reach the model.
    """

    name: str
    summary: str
    batch_norm: BatchNormPlacement
    input_normalization: InputNormalization
    input_scale: float

    def builder_args(self) -> dict:
        """The keyword arguments of `build_mlp` that define this variant."""
        return {
            "batch_norm": self.batch_norm.value,
            "input_normalization": self.input_normalization.value,
            "name": self.name,
        }

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """Raw uint8 images -> float32 model input, scaled as this variant expects."""
        return np.multiply(images, np.float32(self.input_scale), dtype=np.float32)


def _variant(name, summary, batch_norm, input_normalization, input_scale) -> Variant:
    return Variant(
        name,
        summary,
        BatchNormPlacement(batch_norm),
        InputNormalization(input_normalization),
        input_scale,
    )


_UNIT = 1.0 / 255.0  # the classic Keras MNIST scaling: pixels to [0, 1]
_RAW = 1.0  # raw 0..255 pixels: the input BatchNormalization layer standardizes them

VARIANTS: Mapping[str, Variant] = MappingProxyType(
    {
        v.name: v
        for v in (
            _variant("no_bn", "no batch normalization", "none", "none", _UNIT),
            _variant(
                "bn_after_activation",
                "BN after each hidden activation",
                "after_activation",
                "none",
                _UNIT,
            ),
            # Ioffe & Szegedy 2015, sec. 3.2: BN goes on Wx before the nonlinearity, and
            # the Dense bias is dropped because BN's offset (beta) subsumes it.
            _variant(
                "bn_before_activation",
                "BN before each hidden activation, Dense without bias",
                "before_activation",
                "none",
                _UNIT,
            ),
            _variant(
                "bn_input",
                "BN on the raw input instead of dividing pixels by 255",
                "none",
                "batch_norm",
                _RAW,
            ),
        )
    }
)


def list_variants() -> list[str]:
    """Names of the registered variants, sorted.

    Returns:
        The names accepted by `build_model` and in experiment configs.
    """
    return sorted(VARIANTS)


def get_variant(name: str) -> Variant:
    """Look up a variant by name.

    Args:
        name: a registry name, see `list_variants()`.

    Returns:
        The `Variant`.

    Raises:
        ValueError: the name is not registered; the message lists the available names.
    """
    if name not in VARIANTS:
        raise ValueError(
            f"Unknown variant {name!r}. Available: {', '.join(list_variants())}."
        )
    return VARIANTS[name]


def preprocess_input(variant: str, images: np.ndarray) -> np.ndarray:
    """Scale raw uint8 images the way the named variant expects.

    Args:
        variant: a registry name.
        images: raw pixel values 0..255, any shape.

    Returns:
        float32 array of the same shape.

    Example:
        >>> x = preprocess_input("bn_input", x_train)  # raw 0..255 as float32
        >>> x = preprocess_input("no_bn", x_train)     # pixels / 255
    """
    return get_variant(variant).preprocess(images)
