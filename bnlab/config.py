"""Experiment configs: the only code that reads YAML, and all of their validation.

A config file is validated into frozen dataclasses by `load_config`. Every problem found
becomes one line `FILE: dotted.key: expected ..., received ...`; all lines are raised
together as one `ConfigError`, before anything is trained or written.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from bnlab.variants import BUILDER_ARGUMENTS, builder_argument_problems, list_variants

# Optimizer names accepted in configs -> the keyword arguments each accepts (Keras names).
OPTIMIZERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "sgd": ("learning_rate", "momentum", "nesterov"),
        "adam": ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad"),
        "adamw": ("learning_rate", "weight_decay", "beta_1", "beta_2", "epsilon", "amsgrad"),
        "rmsprop": ("learning_rate", "rho", "momentum", "epsilon", "centered"),
        "adagrad": ("learning_rate", "initial_accumulator_value", "epsilon"),
        "nadam": ("learning_rate", "beta_1", "beta_2", "epsilon"),
    }
)
_BOOLEAN_PARAMS = {"nesterov", "amsgrad", "centered"}
_FRACTION_PARAMS = {"momentum", "beta_1", "beta_2", "rho"}  # must lie in [0, 1)
LOSSES = ("sparse_categorical_crossentropy",)  # labels are class indices, as MNIST ships them
VALIDATION_MODES = ("holdout", "test")
BACKENDS = ("tensorflow", "jax", "torch")  # Keras 3 backends that can train
EXECUTORS = ("local", "dask")  # where trials run: this process, or tasks on a Dask cluster
_LABEL = re.compile(r"[A-Za-z0-9_.-]+")


class ConfigError(ValueError):
    """A config failed validation; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """Which MNIST images train and validate.

    Attributes:
        validation: "holdout" (the last `validation_size` training images) or "test".
        validation_size: images held out when validation is "holdout".
        train_subset: keep only this many training images (None: all of them).
        stratify: take the subset class-stratified instead of the first N.
    """

    validation: str = "holdout"  # keeps the test set untouched until the final evaluation
    validation_size: int = 5000  # the classic 55,000 / 5,000 MNIST split
    train_subset: int | None = None  # None: every remaining training image
    stratify: bool = False  # first N in the published order unless asked

    @property
    def remaining_images(self) -> int:
        """MNIST training images left after the validation hold-out."""
        return 60000 - (self.validation_size if self.validation == "holdout" else 0)

    @property
    def train_images(self) -> int:
        """How many MNIST images each trial trains on."""
        return self.train_subset or self.remaining_images


@dataclasses.dataclass(frozen=True)
class VariantConfig:
    """One model variant of the experiment: a registry name, a label and builder overrides."""

    name: str
    label: str
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """A Keras optimizer by name with its keyword arguments (learning_rate included)."""

    name: str
    params: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How each trial is compiled and fitted."""

    epochs: int
    batch_size: int
    optimizer: OptimizerConfig
    loss: str = "sparse_categorical_crossentropy"
    eval_batch_size: int = 1024  # evaluation has no update step, so large batches only save time
    # Runs 64 training steps per call into the backend: same batches, same updates, less
    # Python overhead (about 2x faster TensorFlow epochs on a 2-core CPU; 256 was no faster:
    # `bnlab bench --explore`). Keras's torch trainer takes one step per call, so torch runs 1.
    steps_per_execution: int = 64
    # XLA-compiled steps: about 25% faster TensorFlow epochs on a 2-core CPU (bnlab bench), and
    # with JAX False would mean no jax.jit at all (about 100x slower). The same math; float
    # rounding differs by about 1e-7 relative. Keras turns it off under `deterministic`;
    # torch runs eagerly (torch.compile cost 35 s a trial and no epoch got faster).
    jit_compile: bool = True
    # TensorFlow's op determinism: identical reruns at some cost in speed; off by default
    # because seeded CPU runs were already identical in our tests.
    deterministic: bool = False


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """Where else a run reports, besides its run folder. Both need no server."""

    mlflow: bool = False  # one MLflow run per trial in MLflow's default local store (bnlab[mlflow])
    tensorboard: bool = False  # Keras's TensorBoard callback, logs under RUN_DIR/tensorboard/


@dataclasses.dataclass(frozen=True)
class ExecutorConfig:
    """Where the trials run. Not part of a run's identity: a run may resume on another executor."""

    name: str = "local"  # one trial after another in this process, as bnlab always ran them
    scheduler: str | None = None  # dask: a running scheduler (tcp://HOST:8786); None: a LocalCluster for the run
    # dask LocalCluster only: worker processes of one thread each; 2 matches a 2-core laptop,
    # more workers than cores only share the same cores
    workers: int = 2


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A validated, immutable experiment: variants x seeds, trained and measured alike.

    Build one with `load_config`; `trials` gives the (variant, seed) grid.
    """

    name: str
    description: str
    dataset: DatasetConfig
    variants: tuple[VariantConfig, ...]
    seeds: tuple[int, ...]
    training: TrainingConfig
    targets: tuple[float, ...]
    output_dir: str
    backend: str | None = None  # None: whatever KERAS_BACKEND / keras.json selects, as in Keras
    tracking: TrackingConfig = TrackingConfig()
    executor: ExecutorConfig = ExecutorConfig()

    @property
    def trials(self) -> list[tuple[VariantConfig, int]]:
        """Every (variant, seed) pair: seed by seed, each seed over all variants in config order.

        Interleaving the variants spreads any slowdown of a shared machine over all of them
        alike, so their epoch times stay comparable.
        """
        return [(variant, seed) for seed in self.seeds for variant in self.variants]

    def with_variants(self, names: list[str]) -> "ExperimentConfig":
        """This config restricted to (or extended with) the given variant labels or registry names.

        Raises:
            ConfigError: a name is neither a label of this config nor a registered variant.
        """
        known = {variant.label: variant for variant in self.variants}
        unknown = [n for n in names if n not in known and n not in list_variants()]
        if unknown or not names:
            choices = ", ".join(dict.fromkeys([*known, *list_variants()]))
            raise ConfigError([f"command line: --variants: expected labels among {choices}; "
                               f"received {', '.join(unknown) or 'none'}."])
        chosen = tuple(known.get(n) or VariantConfig(n, n, {}) for n in dict.fromkeys(names))
        return dataclasses.replace(self, variants=chosen)

    def to_dict(self) -> dict:
        """Plain data that `load_config` accepts back (the resolved config of a run)."""
        data = dataclasses.asdict(self)
        data["variants"] = [
            {"name": v.name, "label": v.label, "overrides": dict(v.overrides)}
            for v in self.variants
        ]
        optimizer = self.training.optimizer
        data["training"]["optimizer"] = {"name": optimizer.name, **optimizer.params}
        data["seeds"] = list(self.seeds)
        data["targets"] = list(self.targets)
        return data


def load_config(source: str | Path | Mapping, overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """Read and validate an experiment config.

    Args:
        source: a config name (`configs/NAME.yaml` here or shipped with bnlab), a path to
            a YAML file, or an already parsed mapping.
        overrides: dotted keys replacing values of the file, e.g.
            `{"training.epochs": 3, "seeds": [0, 1]}` (the command line's options).

    Returns:
        The validated `ExperimentConfig`.

    Raises:
        ConfigError: the file cannot be found or read, or holds invalid values; one line
            per problem, each naming the file, the key, what was expected and what was
            received.

    Example:
        >>> config = load_config("quickstart", {"training.epochs": 2})
        >>> [(v.label, seed) for v, seed in config.trials][:2]
        [('no_bn', 0), ('bn_after_activation', 0)]
    """
    if isinstance(source, Mapping):
        origin, data = "<config>", dict(source)
    else:
        path = resolve_config_path(source)
        origin, data = str(path), _read_yaml(path)
    problems = _Problems(origin, set(overrides or {}))
    data = _apply_overrides(data, overrides or {})
    config = _parse_experiment(data, problems)
    if problems.lines:
        raise ConfigError(problems.lines)
    return config


# ---- finding and reading files ------------------------------------------------------


def config_dirs() -> list[Path]:
    """Folders searched for named configs: ./configs, then those shipped with bnlab."""
    package = Path(__file__).resolve().parent
    candidates = [Path.cwd() / "configs", package / "configs", package.parent / "configs"]
    return [d for d in dict.fromkeys(candidates) if d.is_dir()]


def list_configs() -> list[str]:
    """Names of the configs found in `config_dirs()`, sorted."""
    return sorted({p.stem for d in config_dirs() for p in d.glob("*.yaml")})


def resolve_config_path(source: str | Path) -> Path:
    """A config name or path -> the YAML file it means.

    Raises:
        ConfigError: no such file or name (the message lists the known names), or a
            directory was given.
    """
    path = Path(source)
    looks_like_path = path.suffix in (".yaml", ".yml") or len(path.parts) > 1
    if not looks_like_path:
        for folder in config_dirs():
            if (folder / f"{source}.yaml").is_file():
                return folder / f"{source}.yaml"
        raise ConfigError(
            [
                f"{source}: unknown config name; expected one of "
                f"{', '.join(list_configs()) or '(none found)'} or a path to a YAML file."
            ]
        )
    if path.is_dir():
        raise ConfigError([f"{path}: expected a YAML config file, received a directory."])
    if not path.is_file():
        raise ConfigError([f"{path}: config file not found."])
    return path


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{path}: cannot read the config file ({error})."]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        place = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError([f"{path}: invalid YAML{place}: {reason}."]) from None
    if data is None:
        raise ConfigError([f"{path}: the file is empty; expected a mapping of experiment settings."])
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{path}: expected a mapping of experiment settings at the top level, "
             f"received {_describe(data)}."]
        )
    return data


def _apply_overrides(data: dict, overrides: Mapping[str, Any]) -> dict:
    data = dict(data)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[leaf] = value
    return data


# ---- validation -----------------------------------------------------------------------


class _Problems:
    """Collects one line per problem, each naming where the bad value came from."""

    def __init__(self, origin: str, overridden: set[str]):
        self.origin = origin
        self.overridden = overridden
        self.lines: list[str] = []

    def add(self, key: str, expected: str, received: Any = dataclasses.MISSING, *, raw: bool = False):
        origin = "command line" if key in self.overridden else self.origin
        got = "" if received is dataclasses.MISSING else f", received {received if raw else _describe(received)}"
        self.lines.append(f"{origin}: {key}: expected {expected}{got}.")


def _describe(value: Any) -> str:
    kind = {dict: "a mapping", list: "a list", str: "the string", bool: "the boolean"}.get(type(value))
    if value is None:
        return "nothing (null)"
    if kind in ("a mapping", "a list"):
        return kind
    return f"{kind} {value!r}" if kind else repr(value)


_REQUIRED = object()


def _section(data: dict, key: str, allowed: tuple[str, ...], problems: _Problems, required=True) -> dict | None:
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


def _check_keys(mapping: dict, allowed: tuple[str, ...], prefix: str, problems: _Problems):
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


_TOP_KEYS = ("name", "description", "dataset", "variants", "seeds", "training", "targets", "output_dir", "backend", "tracking", "executor")


def _parse_experiment(data: dict, problems: _Problems) -> ExperimentConfig | None:
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
    if problems.lines:
        return None
    remaining = dataset.remaining_images
    if dataset.train_subset is not None and dataset.train_subset > remaining:
        problems.add("dataset.train_subset", f"at most the {remaining} training images left "
                     "after the validation hold-out", dataset.train_subset)
        return None
    if training.batch_size > dataset.train_images:
        problems.add("training.batch_size", f"at most the {dataset.train_images} training images",
                     training.batch_size)
        return None
    return ExperimentConfig(
        name, description, dataset, variants, seeds, training, targets, output_dir, backend,
        _parse_tracking(data, problems), _parse_executor(data, problems),
    )


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
    fields = ("validation", "validation_size", "train_subset", "stratify")
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


def _parse_training(data, problems) -> TrainingConfig | None:
    fields = ("epochs", "batch_size", "optimizer", "loss", "eval_batch_size", "steps_per_execution",
              "jit_compile", "deterministic")
    section = _section(data, "training", fields, problems)
    if section is None:
        return None
    optimizer = _parse_optimizer(section, problems)
    default = TrainingConfig
    return TrainingConfig(
        epochs=_value(section, "epochs", "training", problems, _positive_int, "a positive integer"),
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
    )


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
