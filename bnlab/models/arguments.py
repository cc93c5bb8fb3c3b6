"""The arguments of the MLP builder (`bnlab.models.builders.build_mlp`) and their checks.

No Keras import: configs check builder overrides with these before Keras is first imported.
"""

from __future__ import annotations

import enum
import math

from bnlab.models.normalizers import NORMALIZERS, get_normalizer, group_problem, virtual_batch_problem

# The keyword arguments of `bnlab.models.builders.build_mlp` and their defaults, kept here so that
# configs can check builder overrides without importing Keras (a test keeps the two in step).
BUILDER_DEFAULTS = {
    "hidden_units": (300, 100),  # the classic 784-300-100-10 MNIST MLP
    "activation": "relu",
    "batch_norm": "none",
    "input_normalization": "none",
    "num_classes": 10,
    "input_shape": (28, 28),
    "momentum": 0.99,  # keras.layers.BatchNormalization's default
    "epsilon": 1e-3,  # keras.layers.BatchNormalization's (and Layer/GroupNormalization's) default
    "kernel_initializer": "glorot_uniform",
    "name": "mlp",
    "normalization": "batch",  # today's behaviour: Keras BatchNormalization where batch_norm places it
    "virtual_batch_size": None,  # ghost and renorm: None normalizes over the whole batch
    "groups": 10,  # divides 300 and 100 (30 and 10 units a group); Wu & He's default 32 divides neither
    # Ioffe 2017, sec. 4: plain BN for 5k steps, then r_max 1 -> 3 by 40k steps and d_max 0 -> 5 by 25k;
    # bnlab's runs are far shorter, so studies scale these down in their configs.
    "renorm_r_max": 3.0,
    "renorm_d_max": 5.0,
    "renorm_warmup_steps": 5000,
    "renorm_r_max_steps": 40000,
    "renorm_d_max_steps": 25000,
    # noisy (Santurkar et al. 2018, sec. 2.1): each step, each unit's noise mean is drawn from
    # [-noise_mean, noise_mean] and its standard deviation from [1, noise_stddev]: non-zero mean,
    # non-unit variance, as the paper describes; the bounds are bnlab's choice (its appendix not consulted).
    "noise_mean": 0.5,
    "noise_stddev": 1.5,
}
BUILDER_ARGUMENTS = tuple(BUILDER_DEFAULTS)


_STEP_ARGUMENTS = ("renorm_warmup_steps", "renorm_r_max_steps", "renorm_d_max_steps")


class BatchNormPlacement(str, enum.Enum):
    """Where the normalizer goes in each hidden layer (the argument's name, batch_norm, is historical)."""

    NONE = "none"
    BEFORE_ACTIVATION = "before_activation"
    AFTER_ACTIVATION = "after_activation"


class InputNormalization(str, enum.Enum):
    """Whether the normalizer (Keras BatchNormalization by default) also normalizes the flattened input."""

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
        "normalization": (lambda v: v in NORMALIZERS, "one of " + ", ".join(map(repr, NORMALIZERS))),
        "virtual_batch_size": (lambda v: v is None or _positive_int_sequence([v]), "null or a positive integer"),
        "groups": (lambda v: _positive_int_sequence([v]), "a positive integer"),
        "renorm_r_max": (lambda v: _is_real(v) and v >= 1.0, "a number of at least 1 (1: r is not corrected)"),
        "renorm_d_max": (lambda v: _is_real(v) and v >= 0.0, "a number of at least 0 (0: d is not corrected)"),
        **{name: (_step_count, "a whole number of steps, 0 or more") for name in _STEP_ARGUMENTS},
        "noise_mean": (lambda v: _is_finite(v) and v >= 0.0, "a number of at least 0 (0: zero-mean noise)"),
        "noise_stddev": (lambda v: _is_finite(v) and v >= 1.0, "a number of at least 1 (1: unit-variance noise)"),
    }
    return [
        (name, checks[name][1], value)
        for name, value in arguments.items()
        if name in checks and not checks[name][0](value)
    ]


def builder_setting_problems(arguments: dict, batch_size: int | None = None) -> list[tuple[str, str, object]]:
    """Check how `build_mlp` arguments fit together (the values one by one are checked above).

    Args:
        arguments: build_mlp keyword arguments; missing ones take their defaults.
        batch_size: the training batch, for ghost and renorm's virtual_batch_size; None: not checked.

    Returns:
        One (argument, what was expected, the value received) per problem.
    """
    settings = {**BUILDER_DEFAULTS, **arguments}
    if builder_argument_problems(**settings):  # a bad value alone: reported by the value checks
        return []
    normalizer = get_normalizer(settings["normalization"])
    problems = []
    if normalizer.on_kernel and settings["input_normalization"] != InputNormalization.NONE.value:
        problems.append(("input_normalization", f"'none' with normalization {normalizer.name!r}, which "
                         "reparametrizes Dense kernels and has no layer to put on the input",
                         settings["input_normalization"]))
    if normalizer.name == "group":
        problem = group_problem(settings["groups"], _normalized_widths(settings))
        problems += [("groups", problem, settings["groups"])] if problem else []
    if normalizer.name == "renorm":
        problems += _schedule_problems(settings)
    if batch_size is not None and normalizer.batch_statistics and "virtual_batch_size" in normalizer.options:
        problem = virtual_batch_problem(settings["virtual_batch_size"], batch_size)
        problems += [("virtual_batch_size", problem, settings["virtual_batch_size"])] if problem else []
    return problems


def _normalized_widths(settings: dict) -> dict[str, int]:
    """{where: units} of every layer the normalizer will normalize."""
    widths = {}
    if settings["input_normalization"] != InputNormalization.NONE.value:
        widths["input"] = math.prod(settings["input_shape"])
    if settings["batch_norm"] != BatchNormPlacement.NONE.value:
        widths.update({f"hidden_{i}": units for i, units in enumerate(settings["hidden_units"], start=1)})
    return widths


def _schedule_problems(settings: dict) -> list[tuple[str, str, object]]:
    warmup = settings["renorm_warmup_steps"]
    return [(name, f"at least renorm_warmup_steps ({warmup}): the step at which the ramp that starts after "
             "the warm-up ends", settings[name])
            for name in ("renorm_r_max_steps", "renorm_d_max_steps") if settings[name] < warmup]


def _step_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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


def _is_finite(value) -> bool:
    return _is_real(value) and math.isfinite(value)


def _choice(enum_type):
    return lambda value: value in {member.value for member in enum_type}


def _choices_text(enum_type) -> str:
    return "one of " + ", ".join(repr(member.value) for member in enum_type)
