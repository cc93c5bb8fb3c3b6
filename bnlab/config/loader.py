"""Finding config files by name, reading their YAML, and `load_config`: the only YAML reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from bnlab.config.parse import parse_experiment
from bnlab.config.problems import Problems, describe_value
from bnlab.config.schema import ConfigError, ExperimentConfig


def load_config(source: str | Path | Mapping, overrides: Mapping[str, Any] | None = None,
                missing: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """Read and validate an experiment config.

    Args:
        source: a config name (`configs/NAME.yaml` here or shipped with bnlab), a path to
            a YAML file, or an already parsed mapping.
        overrides: dotted keys replacing values of the file, e.g.
            `{"training.epochs": 3, "seeds": [0, 1]}` (the command line's options).
        missing: dotted keys with the values they take where the file lacks them, instead of
            today's defaults (a run folder saved before a key existed: `load_saved_config`).

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
    problems = Problems(origin, set(overrides or {}))
    present = dotted_keys(data)
    data = apply_overrides(data, {key: value for key, value in (missing or {}).items() if key not in present})
    data = apply_overrides(data, overrides or {})
    config = parse_experiment(data, problems)
    if problems.lines:
        raise ConfigError(problems.lines)
    return config


def config_dirs() -> list[Path]:
    """Folders searched for named configs: ./configs, then those shipped with bnlab."""
    package = Path(__file__).resolve().parent.parent  # bnlab/
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
             f"received {describe_value(data)}."]
        )
    return data


def apply_overrides(data: dict, overrides: Mapping[str, Any]) -> dict:
    """A copy of `data` with dotted keys set (parents created as mappings where missing)."""
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


def dotted_keys(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"training.epochs": 2, ...}: the nested mappings' leaves under dotted keys (`apply_overrides`'s keys)."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        flat.update(dotted_keys(value, f"{name}.") if isinstance(value, Mapping) else {name: value})
    return flat


_EXAMPLE = "e.g. training.optimizer.learning_rate=0.1"


def merge_overrides(options: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """The options' config keys and the KEY=VALUE items together, for `load_config`.

    Raises:
        ConfigError: an item is no KEY=VALUE, its VALUE is no YAML, or a key is given twice
            (by two items, or by an item and an option such as --epochs).
    """
    merged = dict(options)
    for item in items:
        key, value = parse_override(item)
        if key in merged:
            raise ConfigError([f"command line: {key}: expected one value, received {merged[key]!r} and {value!r}."])
        merged[key] = value
    return merged


def parse_override(item: str) -> tuple[str, Any]:
    """"training.epochs=3" -> ("training.epochs", 3): a dotted key and a YAML value.

    Raises:
        ConfigError: no "=", an empty key or key part, or a VALUE that is no YAML.
    """
    key, equals, text = item.partition("=")
    if not equals or not all(part and part == part.strip() for part in key.split(".")):
        raise ConfigError([f"command line: expected KEY=VALUE after the config name, a dotted config key and a "
                           f"value ({_EXAMPLE}), received {item!r}."])
    try:
        return key, yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError([f"command line: {key}: expected a YAML value (a number, true or false, a word, "
                           f"[a, list] or {{a: mapping}}), received {text!r}."]) from None
