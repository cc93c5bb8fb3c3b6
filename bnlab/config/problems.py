"""The primitives of config validation: collecting problems and checking single values.

Every problem becomes one line `ORIGIN: dotted.key: expected ..., received ...`, where ORIGIN
is the file (or "command line" for a value given as an option).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


class Problems:
    """Collects one line per problem, each naming where the bad value came from."""

    def __init__(self, origin: str, overridden: set[str]):
        self.origin = origin
        self.overridden = overridden
        self.lines: list[str] = []

    def add(self, key: str, expected: str, received: Any = dataclasses.MISSING, *, raw: bool = False):
        origin = "command line" if self._overridden(key) else self.origin
        got = ""
        if received is not dataclasses.MISSING:
            got = f", received {received if raw else describe_value(received)}"
        self.lines.append(f"{origin}: {key}: expected {expected}{got}.")

    def _overridden(self, key: str) -> bool:
        return any(_is_within(key, overridden) for overridden in self.overridden)


def _is_within(key: str, overridden: str) -> bool:
    """Whether `key` names `overridden` or a part of its value ("variants[0].name" within "variants")."""
    return key == overridden or key.startswith((f"{overridden}.", f"{overridden}["))


def describe_value(value: Any) -> str:
    """How a message shows a received value: "the string 'x'", "a list", "nothing (null)", "3"."""
    kind = {dict: "a mapping", list: "a list", str: "the string", bool: "the boolean"}.get(type(value))
    if value is None:
        return "nothing (null)"
    if kind in ("a mapping", "a list"):
        return kind
    return f"{kind} {value!r}" if kind else repr(value)


REQUIRED = object()  # marks a key with no default


def get_section(data: dict, key: str, allowed: tuple[str, ...], problems: Problems, required=True) -> dict | None:
    """data[key] as a mapping with only allowed keys; None (and a problem) when unusable."""
    value = data.get(key, REQUIRED)
    if value is REQUIRED:
        if required:
            problems.add(key, f"a mapping with keys {', '.join(allowed)}; the key is missing")
            return None
        return {}
    if not isinstance(value, dict):
        problems.add(key, f"a mapping with keys {', '.join(allowed)}", value)
        return None
    check_keys(value, allowed, key, problems)
    return value


def check_keys(mapping: dict, allowed: tuple[str, ...], prefix: str, problems: Problems):
    for key in mapping:
        if key not in allowed:
            name = f"{prefix}.{key}" if prefix else str(key)
            problems.add(name, f"no such key; allowed here: {', '.join(allowed)}", "an unknown key", raw=True)


def get_value(data, key, prefix, problems, check, expected, default=REQUIRED):
    """data[key] if `check` accepts it; else record a problem and return the default."""
    name = f"{prefix}.{key}" if prefix else key
    if key not in data:
        if default is REQUIRED:
            problems.add(name, f"{expected}; the key is missing")
            return None
        return default
    value = data[key]
    if not check(value):
        problems.add(name, expected, value)
        return default if default is not REQUIRED else None
    return value


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def positive_int(value) -> bool:
    return is_int(value) and value > 0


def is_text(value) -> bool:
    return isinstance(value, str) and value.strip() != ""
