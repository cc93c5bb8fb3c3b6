"""`main`, the entry point of the `bnlab` console script and of `python -m bnlab`."""

from __future__ import annotations

import sys

from bnlab.cli.parser import parse_command_line
from bnlab.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bnlab` console script; returns the exit code.

    Args:
        argv: the arguments after `bnlab` (default: the process's command line).

    Returns:
        0 done, 1 the executor failed, 2 bad input (each problem one `bnlab: ...` line on
        stderr), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).

    Example:
        >>> main(["configs"])  # doctest: +SKIP
        0
    """
    args = parse_command_line(argv)
    try:
        return args.command(args)
    except ConfigError as error:
        for line in error.problems:
            print(f"bnlab: {line}", file=sys.stderr)
        return 2
