"""Real features repeated and jittered to archive scale (issue 18: correctness at 10M is
shown on real features, not only on synthetic ones).

Row i of the n rows is real row `i % m` plus uniform noise of standard deviation `jitter`
(in units of each column's standard deviation over the real rows). The noise is a hash of
(i, column), not a random stream: any row can be regenerated alone (a session's exact
labelled rows, an exact search chunk by chunk) without holding the n x d matrix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

_SQRT12 = np.float32(np.sqrt(12.0))


def oscd_features(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The OSCD "new construction" task at 16 px: (X float32, y in {-1, +1})."""
    from eominer.evaluation import oscd

    ds = oscd.oscd(root, 16)
    return ds.X.astype(np.float32), ds.y.astype(np.int8)


def _hash01(rows: np.ndarray, d: int) -> np.ndarray:
    """(len(rows), d) float32 in [0, 1): a 64-bit mix (splitmix64's) of (row, column)."""
    z = rows.astype(np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15) \
        + np.arange(1, d + 1, dtype=np.uint64)[None, :] * np.uint64(0xD1B54A32D192ED03)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return ((z >> np.uint64(40)).astype(np.float32) / np.float32(2 ** 24))


def jittered_rows(real: np.ndarray, rows: np.ndarray, jitter: float) -> np.ndarray:
    """Rows `rows` (any order) of the jittered matrix, float32."""
    rows = np.asarray(rows, np.int64)
    scale = np.float32(jitter) * real.std(axis=0).astype(np.float32) * _SQRT12
    noise = (_hash01(rows, real.shape[1]) - np.float32(0.5)) * scale
    return real[rows % len(real)] + noise


def jittered_chunks(real: np.ndarray, n: int, jitter: float, chunk: int = 1_000_000
                    ) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of the n x d jittered matrix, chunk by chunk."""
    for a in range(0, n, chunk):
        yield a, jittered_rows(real, np.arange(a, min(n, a + chunk)), jitter)
