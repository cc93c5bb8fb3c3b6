"""Validation of a parsed YAML mapping into an `ExperimentConfig`.

Every problem becomes one line `ORIGIN: dotted.key: expected ..., received ...`, where ORIGIN
is the file (or "command line" for a value given as an option); the loader raises them all
together as one `ConfigError`, before anything is trained or written.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from bnlab.config.schema import (
    BACKENDS,
    EXECUTORS,
    LOSSES,
    OPTIMIZERS,
    VALIDATION_MODES,
    ActivationProbeConfig,
    DatasetConfig,
    ExecutorConfig,
    ExperimentConfig,
    OptimizerConfig,
    TrackingConfig,
    TrainingConfig,
    VariantConfig,
    grid_column,
)
from bnlab.variants import BUILDER_ARGUMENTS, builder_argument_problems, list_variants

_BOOLEAN_PARAMS = {"nesterov", "amsgrad", "centered"}
_FRACTION_PARAMS = {"momentum", "beta_1", "beta_2", "rho"}  # must lie in [0, 1)
_LABEL = re.compile(r"[A-Za-z0-9_.-]+")
_DEFAULT_HIDDEN_UNITS = (300, 100)  # build_mlp's default, for checking activation_probe


class Problems:
    """Collects one line per problem, each naming where the bad value came from."""

    def __init__(self, origin: str, overridden: set[str]):
        self.origin = origin
        self.overridden = overridden
        self.lines: list[str] = []

    def add(self, key: str, expected: str, received: Any = dataclasses.MISSING, *, raw: bool = False):
        origin = "command line" if key in self.overridden else self.origin
        got = "" if received is dataclasses.MISSING else f", received {received if raw else describe(received)}"
        self.lines.append(f"{origin}: {key}: expected {expected}{got}.")


def describe(value: Any) -> str:
    kind = {dict: "a mapping", list: "a list", str: "the string", bool: "the boolean"}.get(type(value))
    if value is None:
        return "nothing (null)"
    if kind in ("a mapping", "a list"):
        return kind
    return f"{kind} {value!r}" if kind else repr(value)


_REQUIRED = object()


def _section(data: dict, key: str, allowed: tuple[str, ...], problems: Problems, required=True) -> dict | None:
    """data[key] as a mapping with only allowed keys; None (and a problem) when unusable."""
    value = data.get(key, _REQUIRED)
    if value is _REQUIRED:
        if required:
            problems.add(key, f"a mapping with keys {', '.join(allowed)}; the key is missing")
            return None
        return {}
    if not isinstance(value, dict):
        problems.add(key, f"a mapping with keys {', '.join(allowed)}", value)
        return None
    _check_keys(value, allowed, key, problems)
    return value


def _check_keys(mapping: dict, allowed: tuple[str, ...], prefix: str, problems: Problems):
    for key in mapping:
        if key not in allowed:
            name = f"{prefix}.{key}" if prefix else str(key)
            problems.add(name, f"no such key; allowed here: {', '.join(allowed)}", "an unknown key", raw=True)


def _value(data, key, prefix, problems, check, expected, default=_REQUIRED):
    """data[key] if `check` accepts it; else record a problem and return the default."""
    name = f"{prefix}.{key}" if prefix else key
    if key not in data:
        if default is _REQUIRED:
            problems.add(name, f"{expected}; the key is missing")
            return None
        return default
    value = data[key]
    if not check(value):
        problems.add(name, expected, value)
        return default if default is not _REQUIRED else None
    return value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _positive_int(value) -> bool:
    return _is_int(value) and value > 0


def _text(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


_TOP_KEYS = ("name", "description", "dataset", "variants", "seeds", "training", "targets", "output_dir",
             "backend", "tracking", "executor", "grid", "activation_probe")


def parse_experiment(data: dict, problems: Problems) -> ExperimentConfig | None:
    """Validate a whole config mapping; None (with problems recorded) when it is invalid."""
    _check_keys(data, _TOP_KEYS, "", problems)
    name = _value(data, "name", "", problems, _text, "a non-empty string")
    description = _value(data, "description", "", problems, lambda v: isinstance(v, str), "a string", default="")
    dataset = _parse_dataset(data, problems)
    variants = _parse_variants(data.get("variants", _REQUIRED), problems)
    seeds = _parse_seeds(data.get("seeds", _REQUIRED), problems)
    training = _parse_training(data, problems)
    targets = _parse_targets(data.get("targets", _REQUIRED), problems)
    backend = _value(data, "backend", "", problems, lambda v: v is None or v in BACKENDS,
                     f"null or one of {', '.join(BACKENDS)}", default=None)
    output_dir = _value(
        data, "output_dir", "", problems, _text, "a folder path", default=f"runs/{name}"
    )
    tracking, executor = _parse_tracking(data, problems), _parse_executor(data, problems)
    probe = _parse_probe(data, problems)
    if problems.lines:
        return None
    grid = _parse_grid(data, training, dataset, problems)
    _check_dataset_fits(dataset, training, "training", problems)
    _check_probe_fits(probe, variants, problems)
    if problems.lines:
        return None
    return ExperimentConfig(
        name, description, dataset, variants, seeds, training, targets, output_dir, backend,
        tracking, executor, grid, probe,
    )


def _check_dataset_fits(dataset, training, key, problems) -> None:
    """Checks of training against the data: batch size, and step mode's exact step counts."""
    remaining = dataset.remaining_images
    if dataset.train_subset is not None and dataset.train_subset > remaining:
        problems.add("dataset.train_subset", f"at most the {remaining} training images left "
                     "after the validation hold-out", dataset.train_subset)
        return
    if training.batch_size > dataset.train_images:
        problems.add(f"{key}.batch_size", f"at most the {dataset.train_images} training images",
                     training.batch_size)
        return
    if training.step_mode:
        _check_step_counts(training, training.steps_per_epoch(dataset.train_images), key, problems)


def _check_step_counts(training, per_epoch, key, problems) -> None:
    # Evaluations happen between two calls into the backend, each running steps_per_execution
    # steps from the start of an epoch: so that they fall exactly every eval_every_steps, the
    # execution must divide both the evaluation interval and the epoch.
    every, execution = training.eval_every_steps, training.steps_per_execution
    if training.steps % every:
        problems.add(f"{key}.steps", f"a multiple of {key}.eval_every_steps ({every})", training.steps)
    if every % execution or per_epoch % execution:
        divisors = [d for d in range(1, min(every, per_epoch) + 1) if every % d == 0 and per_epoch % d == 0]
        problems.add(f"{key}.steps_per_execution",
                     f"in step mode, a divisor of both {key}.eval_every_steps ({every}) and the steps in "
                     f"an epoch ({per_epoch}), so that evaluations fall exactly every {every} steps; "
                     f"the largest is {divisors[-1]}", execution)


def _parse_tracking(data, problems) -> TrackingConfig:
    section = _section(data, "tracking", ("mlflow", "tensorboard"), problems, required=False) or {}
    return TrackingConfig(**{
        key: _value(section, key, "tracking", problems, lambda v: isinstance(v, bool), "true or false", False)
        for key in ("mlflow", "tensorboard")
    })


def _parse_executor(data, problems) -> ExecutorConfig:
    section = _section(data, "executor", ("name", "scheduler", "workers"), problems, required=False) or {}
    default = ExecutorConfig()
    name = _value(section, "name", "executor", problems, lambda v: v in EXECUTORS,
                  f"one of {', '.join(EXECUTORS)}", default.name)
    scheduler = _value(section, "scheduler", "executor", problems, lambda v: v is None or _text(v),
                       "null or a Dask scheduler address such as tcp://HOST:8786", default.scheduler)
    workers = _value(section, "workers", "executor", problems, _positive_int, "a positive integer",
                     default.workers)
    if name == "local" and scheduler is not None:  # a scheduler asked for would go unused
        problems.add("executor.scheduler", "null when executor.name is local (a scheduler address is "
                     "for the dask executor: --executor dask)", scheduler)
    return ExecutorConfig(name, scheduler, workers)


def _parse_dataset(data, problems) -> DatasetConfig:
    fields = ("validation", "validation_size", "train_subset", "stratify", "binarize")
    section = _section(data, "dataset", fields, problems, required=False) or {}
    default = DatasetConfig()
    return DatasetConfig(
        validation=_value(section, "validation", "dataset", problems, lambda v: v in VALIDATION_MODES,
                          f"one of {', '.join(VALIDATION_MODES)}", default.validation),
        validation_size=_value(section, "validation_size", "dataset", problems,
                               lambda v: _is_int(v) and 0 < v < 60000,
                               "an integer from 1 to 59999", default.validation_size),
        train_subset=_value(section, "train_subset", "dataset", problems,
                            lambda v: v is None or (_is_int(v) and 0 < v < 60000),
                            "null or an integer from 1 to 59999", default.train_subset),
        stratify=_value(section, "stratify", "dataset", problems, lambda v: isinstance(v, bool),
                        "true or false", default.stratify),
        binarize=_value(section, "binarize", "dataset", problems, lambda v: isinstance(v, bool),
                        "true or false", default.binarize),
    )


def _parse_variants(value, problems) -> tuple[VariantConfig, ...]:
    expected = f"a non-empty list of variant names ({', '.join(list_variants())}) or mappings with name, label, overrides"
    if value is _REQUIRED or not isinstance(value, list) or not value:
        problems.add("variants", expected + ("; the key is missing" if value is _REQUIRED else ""),
                     *(() if value is _REQUIRED else (value,)))
        return ()
    variants = tuple(_parse_variant(item, f"variants[{i}]", problems) for i, item in enumerate(value))
    labels = [v.label for v in variants if v is not None]
    for label in sorted({label for label in labels if labels.count(label) > 1}):
        problems.add("variants", "distinct labels (give repeated variants a label)", f"{label!r} more than once", raw=True)
    return variants


def _parse_variant(item, key, problems) -> VariantConfig | None:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict):
        problems.add(key, "a variant name or a mapping with name, label, overrides", item)
        return None
    _check_keys(item, ("name", "label", "overrides"), key, problems)
    name = _value(item, "name", key, problems, lambda v: v in list_variants(),
                  f"one of {', '.join(list_variants())}")
    label = _value(item, "label", key, problems, lambda v: isinstance(v, str) and _LABEL.fullmatch(v),
                   "a label of letters, digits, '_', '.', '-' (it names the trial folders)", default=name)
    overrides = _value(item, "overrides", key, problems, lambda v: isinstance(v, dict),
                       "a mapping of build_mlp arguments", default={})
    _check_keys(overrides, BUILDER_ARGUMENTS, f"{key}.overrides", problems)
    for argument, expected, received in builder_argument_problems(**overrides):
        problems.add(f"{key}.overrides.{argument}", expected, received)
    return VariantConfig(name, label, dict(overrides))


def _parse_seeds(value, problems) -> tuple[int, ...]:
    expected = "a positive count of seeds (0, 1, ...) or a non-empty list of distinct integers"
    if value is _REQUIRED:
        problems.add("seeds", expected + "; the key is missing")
        return ()
    if _positive_int(value):
        return tuple(range(value))
    if isinstance(value, list) and value and all(_is_int(s) and s >= 0 for s in value):
        duplicates = sorted({s for s in value if value.count(s) > 1})
        if duplicates:
            problems.add("seeds", "distinct seeds", f"{', '.join(map(str, duplicates))} more than once", raw=True)
        return tuple(value)
    problems.add("seeds", expected, value)
    return ()


_TRAINING_FIELDS = ("epochs", "batch_size", "optimizer", "loss", "eval_batch_size", "steps_per_execution",
                   "jit_compile", "deterministic", "steps", "eval_every_steps")


def _parse_training(data, problems) -> TrainingConfig | None:
    section = _section(data, "training", _TRAINING_FIELDS, problems)
    if section is None:
        return None
    optimizer = _parse_optimizer(section, problems)
    default = TrainingConfig
    epochs, steps, every = _parse_length(section, problems)
    return TrainingConfig(
        epochs=epochs,
        batch_size=_value(section, "batch_size", "training", problems, _positive_int, "a positive integer"),
        optimizer=optimizer,
        loss=_value(section, "loss", "training", problems, lambda v: v in LOSSES,
                    f"one of {', '.join(LOSSES)}", default.loss),
        eval_batch_size=_value(section, "eval_batch_size", "training", problems, _positive_int,
                               "a positive integer", default.eval_batch_size),
        steps_per_execution=_value(section, "steps_per_execution", "training", problems, _positive_int,
                                   "a positive integer", default.steps_per_execution),
        jit_compile=_value(section, "jit_compile", "training", problems, lambda v: isinstance(v, bool),
                           "true or false", default.jit_compile),
        deterministic=_value(section, "deterministic", "training", problems,
                             lambda v: isinstance(v, bool), "true or false", default.deterministic),
        steps=steps,
        eval_every_steps=every,
    )


def _parse_length(section, problems) -> tuple[int | None, int | None, int | None]:
    """(epochs, steps, eval_every_steps): a trial runs for epochs, or for steps."""
    if "steps" not in section and "eval_every_steps" not in section:
        if "epochs" not in section:
            problems.add("training.epochs", "a positive integer (or training.steps with "
                         "training.eval_every_steps); the key is missing")
            return None, None, None
        return _value(section, "epochs", "training", problems, _positive_int, "a positive integer"), None, None
    if "epochs" in section:
        problems.add("training.epochs", "no epochs when training.steps is given (a trial runs either for "
                     "epochs or for steps)", section["epochs"])
    steps = _value(section, "steps", "training", problems, _positive_int,
                   "a positive integer (with eval_every_steps: step mode)")
    every = _value(section, "eval_every_steps", "training", problems, _positive_int,
                   "a positive integer (with steps: step mode)")
    return None, steps, every


def _parse_optimizer(training: dict, problems) -> OptimizerConfig | None:
    key = "training.optimizer"
    value = training.get("optimizer", _REQUIRED)
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        received = () if value is _REQUIRED else (value,)
        problems.add(key, "a mapping with name and learning_rate" + ("; the key is missing" if not received else ""), *received)
        return None
    name = _value(value, "name", key, problems, lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}")
    if name is None:
        return None
    _check_keys(value, ("name",) + OPTIMIZERS[name], key, problems)
    params = {k: v for k, v in value.items() if k in OPTIMIZERS[name]}
    _value(value, "learning_rate", key, problems, lambda v: _is_number(v) and v > 0, "a positive number")
    for param, setting in params.items():
        _check_optimizer_param(f"{key}.{param}", param, setting, problems)
    return OptimizerConfig(name, params)


def _check_optimizer_param(key, param, value, problems):
    if param in _BOOLEAN_PARAMS:
        if not isinstance(value, bool):
            problems.add(key, "true or false", value)
    elif param in _FRACTION_PARAMS:
        if not (_is_number(value) and 0 <= value < 1):
            problems.add(key, "a number in [0, 1)", value)
    elif param != "learning_rate" and not (_is_number(value) and value >= 0):
        problems.add(key, "a non-negative number", value)


def _parse_targets(value, problems) -> tuple[float, ...]:
    expected = "a non-empty list of validation accuracies in (0, 1], e.g. [0.97, 0.98]"
    if _is_number(value):
        value = [value]
    if value is _REQUIRED or not isinstance(value, list) or not value:
        problems.add("targets", expected + ("; the key is missing" if value is _REQUIRED else ""),
                     *(() if value is _REQUIRED else (value,)))
        return ()
    for i, target in enumerate(value):
        if not (_is_number(target) and 0 < target <= 1):
            problems.add(f"targets[{i}]", "a number in (0, 1]", target)
    if len(set(value)) < len(value):
        problems.add("targets", "distinct targets", value)
    return tuple(sorted(float(t) for t in value if _is_number(t)))


def _parse_grid(data, training, dataset, problems) -> dict[str, tuple]:
    """grid: dotted training keys -> lists of values; each value is checked like the key itself."""
    value = data.get("grid", {})
    expected = ("a mapping of dotted training keys to lists of values, e.g. "
                "{training.optimizer.learning_rate: [0.01, 0.1, 1.0]}")
    if not isinstance(value, dict):
        problems.add("grid", expected, value)
        return {}
    grid = {}
    for key, values in value.items():
        name = f"grid.{key}"
        if not _grid_key_ok(key, training):
            problems.add(name, "a training setting: training.FIELD or training.optimizer.PARAM "
                         f"(allowed fields: {', '.join(f for f in _TRAINING_FIELDS if f != 'optimizer')}; "
                         f"optimizer params: {', '.join(OPTIMIZERS[training.optimizer.name])})",
                         "an unknown key", raw=True)
        elif not isinstance(values, list) or not values:
            problems.add(name, "a non-empty list of values", values)
        elif len({repr(v) for v in values}) < len(values):
            problems.add(name, "distinct values", values)
        else:
            grid[key] = tuple(values)
    leaves = [grid_column(key) for key in grid]
    if len(set(leaves)) < len(leaves):
        problems.add("grid", "keys whose last parts differ (they name columns and trial labels)", list(grid))
    for key, values in grid.items():
        for index, value in enumerate(values):
            _check_grid_value(f"grid.{key}[{index}]", key, value, training, dataset, problems)
    return grid


def _grid_key_ok(key, training) -> bool:
    parts = str(key).split(".")
    if parts[0] != "training" or len(parts) not in (2, 3):
        return False
    if len(parts) == 3:
        return parts[1] == "optimizer" and parts[2] in OPTIMIZERS[training.optimizer.name]
    return parts[1] in _TRAINING_FIELDS and parts[1] != "optimizer"


def _check_grid_value(name, key, value, training, dataset, problems) -> None:
    """Validate `training` with one grid value put in, reporting its problems under `name`."""
    inner = Problems(problems.origin, set())
    section = {"training": _training_mapping(training)}
    *_, leaf = key.split(".")
    target = section["training"]["optimizer"] if key.count(".") == 2 else section["training"]
    target[leaf] = value
    parsed = _parse_training(section, inner)
    if not inner.lines:
        _check_dataset_fits(dataset, parsed, "training", inner)
    for line in inner.lines:
        problems.lines.append(line.replace(f": {key}: ", f": {name}: ", 1) if f": {key}: " in line
                              else f"{line[:-1]} (with {name} = {value!r}).")


def _training_mapping(training: TrainingConfig) -> dict:
    data = {k: v for k, v in dataclasses.asdict(training).items() if v is not None}
    data["optimizer"] = {"name": training.optimizer.name, **training.optimizer.params}
    return data


_PROBE_KEYS = ("hidden_layer", "units", "probe_examples", "percentiles")


def _parse_probe(data, problems) -> ActivationProbeConfig | None:
    if "activation_probe" not in data:
        return None
    section = _section(data, "activation_probe", _PROBE_KEYS, problems)
    if section is None:
        return None
    default = ActivationProbeConfig
    key = "activation_probe"
    hidden_layer = _value(section, "hidden_layer", key, problems, _positive_int,
                          "a positive integer: 1 for the first hidden layer")
    units = _value(section, "units", key, problems,
                   lambda v: isinstance(v, list) and v and all(_is_int(u) and u >= 0 for u in v),
                   "a non-empty list of unit indices (integers from 0)", list(default.units))
    examples = _value(section, "probe_examples", key, problems, _positive_int, "a positive integer",
                      default.probe_examples)
    percentiles = _value(section, "percentiles", key, problems,
                         lambda v: isinstance(v, list) and v and all(_is_number(p) and 0 <= p <= 100 for p in v),
                         "a non-empty list of numbers from 0 to 100", list(default.percentiles))
    if hidden_layer is None:
        return None
    return ActivationProbeConfig(hidden_layer, tuple(units), examples, tuple(float(p) for p in percentiles))


def _check_probe_fits(probe, variants, problems) -> None:
    """The watched layer and units exist in every variant's network (the first misfit is reported)."""
    if probe is None:
        return
    for index, variant in enumerate(variants):
        if problems.lines:
            return
        hidden = tuple(variant.overrides.get("hidden_units", _DEFAULT_HIDDEN_UNITS))
        if probe.hidden_layer > len(hidden):
            problems.add("activation_probe.hidden_layer", f"at most {len(hidden)}, the hidden layers of "
                         f"variants[{index}] ({variant.label})", probe.hidden_layer)
        elif max(probe.units) >= hidden[probe.hidden_layer - 1]:
            problems.add("activation_probe.units", f"unit indices below {hidden[probe.hidden_layer - 1]}, "
                         f"the width of hidden layer {probe.hidden_layer} of variants[{index}] "
                         f"({variant.label})", max(probe.units))
