"""What the command line's values mean: the options' types; `run`'s KEY=VALUE overrides are read by
`bnlab.config.loader.parse_override` (config/ is the only code that reads YAML)."""

from __future__ import annotations

import argparse


def seeds(text: str):
    """--seeds: a count (int) or explicit seeds (a list; "7," is the one seed 7)."""
    parts = [p for p in text.split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or comma-separated integers, received {text!r}") from None
    return values[0] if len(values) == 1 and "," not in text else values


def positive(text: str) -> int:
    if not text.strip().isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return int(text)


def names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]
