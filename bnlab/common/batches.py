"""Fixed-shape batches for inference passes: one compiled predict step per model and batch size."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def padded_batches(x: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """(batch, rows) for consecutive rows of `x`: every batch has `batch_size` rows, the last one padded
    with zeros after its `rows` real rows. In inference mode each row's outputs depend on that row alone
    (BN uses its moving statistics), so a caller keeps the first `rows` outputs and drops the padding."""
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        rows = len(batch)
        if rows < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - rows, *batch.shape[1:]), batch.dtype)])
        yield batch, rows
