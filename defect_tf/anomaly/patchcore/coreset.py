"""Greedy coreset selection for a memory bank (PatchCore, Roth et al. 2022): keep the rows that cover the rest.

Each next row is the one farthest from every row kept so far (the k-center greedy rule, within twice the optimal
covering radius), measured on a fixed random projection of the rows, as PatchCore does to make it fast.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def greedy_coreset(rows: np.ndarray, size: int, projection: int | None = 128, seed: int = 0,
                   report: Callable[[int], None] | None = None) -> np.ndarray:
    """Indices of `size` rows of `rows` (n x d) chosen by k-center greedy, starting from a seeded random row.

    `projection`: project to this many dimensions first (None: the rows as they are); `report(n)` is called with
    each further 1,000 rows chosen (a progress bar's update)."""
    rows = np.asarray(rows, dtype=np.float32)
    size = min(int(size), len(rows))
    rng = np.random.default_rng(seed)
    if projection is not None and projection < rows.shape[1]:
        rows = rows @ (rng.standard_normal((rows.shape[1], projection)).astype(np.float32) / np.sqrt(projection))
    squared = np.einsum("ij,ij->i", rows, rows)
    chosen = np.empty(size, dtype=np.int64)
    chosen[0] = rng.integers(len(rows))
    nearest = np.maximum(squared - 2 * (rows @ rows[chosen[0]]) + squared[chosen[0]], 0)  # squared distance to the kept
    for step in range(1, size):
        chosen[step] = int(np.argmax(nearest))
        np.minimum(nearest, squared - 2 * (rows @ rows[chosen[step]]) + squared[chosen[step]], out=nearest)
        if report is not None and step % 1000 == 0:
            report(1000)
    return chosen


def covering_radius(rows: np.ndarray, chosen: np.ndarray) -> float:
    """The largest distance from any row to its nearest chosen row: how well the coreset stands for the bank."""
    return float(np.sqrt(nearest_distances(rows, rows[chosen]).max()))


def nearest_distances(queries: np.ndarray, bank: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Squared Euclidean distance from each query row to its nearest row of `bank`, in chunks of queries."""
    queries, bank = np.asarray(queries, np.float32), np.asarray(bank, np.float32)
    bank_squared = np.einsum("ij,ij->i", bank, bank)
    out = np.empty(len(queries), dtype=np.float32)
    for start in range(0, len(queries), chunk):
        block = queries[start:start + chunk]
        distances = np.einsum("ij,ij->i", block, block)[:, None] - 2 * block @ bank.T + bank_squared[None]
        out[start:start + chunk] = np.maximum(distances.min(axis=1), 0)
    return out
