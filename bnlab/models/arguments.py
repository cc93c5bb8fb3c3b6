"""The arguments of the MLP builder (`bnlab.models.builders.build_mlp`) and their checks.

No Keras import: configs check builder overrides with these before Keras is first imported.
"""

from __future__ import annotations

import enum

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
