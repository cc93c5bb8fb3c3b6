"""Checks of the DataFrames that analysis functions receive, shared so errors read alike."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def require_columns(table, name: str, required: Sequence[str], *, non_empty: bool = False) -> None:
    """Raise unless `table` is a DataFrame with every column in `required`.

    Args:
        table: what the caller received.
        name: how the error names the table, e.g. "per-epoch" or "trials".
        required: the columns the caller reads.
        non_empty: also require at least one row.

    Raises:
        TypeError: not a DataFrame.
        ValueError: a column is missing (the message lists them and the columns received),
            or the table is empty when rows are required.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"Expected the {name} table as a pandas DataFrame. Received: {type(table).__name__}")
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise ValueError(
            f"The {name} table is missing required columns: {missing}. Expected at least "
            f"{list(required)}. Received columns: {list(table.columns)}"
        )
    if non_empty and table.empty:
        raise ValueError(
            f"Expected a non-empty {name} table with columns {list(required)}. Received 0 rows."
        )
