"""Grid points and the names they give: trial variant labels, trials-table columns, and what a
point changes (training settings, builder overrides).

Plain functions of plain values, so that `schema` and `claims` both import them from here and
neither imports the other.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from bnlab.config.schema import TrainingConfig

MODEL_PREFIX = "model."  # grid keys "model.ARG" set the builder argument ARG of every variant
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")  # labels name trial folders: anything else becomes "_"


def grid_label(label: str, point: Mapping[str, Any]) -> str:
    """A variant label with a grid point.

    ("no_bn", {"training.optimizer.learning_rate": 0.3}) -> "no_bn-learning_rate0.3";
    ("no_bn", {"backend": "jax"}) -> "no_bn-backend_jax";
    ("no_bn", {"model.hidden_units": [300, 100]}) -> "no_bn-hidden_units300-100".
    """
    return "-".join([label, *(f"{grid_column(key)}{value_text(value)}" for key, value in point.items())])


def grid_column(key: str) -> str:
    """The column (and label part) naming a grid key: its last dotted part."""
    return key.rsplit(".", 1)[-1]


def value_text(value: Any) -> str:
    """A grid value as labels show it: 0.3 -> "0.3", True -> "true", "jax" -> "_jax",
    [300, 100] -> "300-100", [300] * 10 -> "300x10" (a run of 4 or more equal values, so a deep network's
    label stays short); characters a folder name should not hold become "_"."""
    text = _plain_text(value)
    if isinstance(value, str) or (isinstance(value, (list, tuple)) and any(isinstance(v, str) for v in value)):
        text = f"_{text}"  # a word does not run into the key's name
    return _UNSAFE.sub("_", text)


def _plain_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "-".join(_run_text(_plain_text(item), count) for item, count in _runs(value))
    if isinstance(value, dict):
        return "-".join(f"{key}{_plain_text(item)}" for key, item in value.items())
    return str(value)


def _runs(values) -> list[tuple[Any, int]]:
    """Consecutive equal values as (value, count): [300, 300, 100] -> [(300, 2), (100, 1)]."""
    runs: list[list] = []
    for value in values:
        if runs and runs[-1][0] == value and type(runs[-1][0]) is type(value):
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    return [(value, count) for value, count in runs]


def _run_text(text: str, count: int) -> str:
    return f"{text}x{count}" if count >= _SHORT_RUN else "-".join([text] * count)


_SHORT_RUN = 4  # [1000, 1000, 1000] keeps its label "1000-1000-1000"


def model_overrides(point: Mapping[str, Any]) -> dict[str, Any]:
    """The builder overrides a grid point sets: {"model.momentum": 0.9, ...} -> {"momentum": 0.9}."""
    return {key[len(MODEL_PREFIX):]: value for key, value in point.items() if key.startswith(MODEL_PREFIX)}


def apply_training_point(training: TrainingConfig, point: Mapping[str, Any]) -> TrainingConfig:
    """`training` with dotted keys ("training.batch_size", "training.optimizer.momentum") replaced;
    keys outside `training` (a grid over `backend` or `model.ARG`) are left to their own consumers."""
    for key, value in point.items():
        parts = key.split(".")
        if parts[0] != "training":
            continue
        if parts[1] == "optimizer":
            optimizer = training.optimizer
            training = dataclasses.replace(
                training, optimizer=dataclasses.replace(optimizer, params={**optimizer.params, parts[2]: value}))
        else:
            training = dataclasses.replace(training, **{parts[1]: value})
    return training
