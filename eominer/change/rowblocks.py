"""Row blocks with a halo: a neighbourhood operation over a whole scene, block by block.

A block's rows r0:r1 are computed from rows r0 - halo : r1 + halo (clipped to the scene),
so when `halo` covers the operation's reach the result equals the whole-scene one, while
memory stays at a few blocks and the blocks run on a thread pool (numpy's loops and
scipy.ndimage's filters release the GIL).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

BLOCK_ROWS = 512


def map_row_blocks(
    fn: Callable[[int, int], np.ndarray], shape: tuple[int, int], halo: int,
    threads: int = 1, block_rows: int | None = None, dtype: DTypeLike = np.float32,
) -> np.ndarray:
    """(rows, cols) array whose rows r0:r1 are fn(a0, a1)[r0 - a0 : r1 - a0], with
    a0 = max(0, r0 - halo) and a1 = min(rows, r1 + halo); `fn` returns rows a0:a1."""
    rows, cols = shape
    block_rows = block_rows or BLOCK_ROWS
    out = np.empty((rows, cols), dtype=dtype)

    def run(r0: int) -> None:
        r1 = min(rows, r0 + block_rows)
        a0, a1 = max(0, r0 - halo), min(rows, r1 + halo)
        out[r0:r1] = fn(a0, a1)[r0 - a0:r1 - a0]

    starts = range(0, rows, block_rows)
    if threads <= 1 or rows <= block_rows:
        for r0 in starts:
            run(r0)
    else:
        with ThreadPoolExecutor(threads, thread_name_prefix="rows") as pool:
            list(pool.map(run, starts))  # list(): re-raises a block's error here
    return out
