"""How the commands print: rich tables on a console, and an error as one `bnlab: ...` line."""

from __future__ import annotations

import sys


def console():
    """rich's console; in a log file or a pipe 200 columns wide, not squeezing tables into 80."""
    from rich.console import Console

    terminal = Console()
    return terminal if terminal.is_terminal else Console(width=200)


def print_table(title: str, headings, rows) -> None:
    from rich.table import Table

    table = Table(title=title)
    for heading in headings:
        table.add_column(heading)
    for row in rows:
        table.add_row(*row)
    console().print(table)


def fail(error, code: int) -> int:
    """Print `error` as the command's one `bnlab: ...` line; return the exit `code`."""
    print(f"bnlab: {error}", file=sys.stderr)
    return code


def is_missing(value) -> bool:
    """None or NaN (a figure a table could not give)."""
    return value is None or value != value
