"""Fused loops over int8 codes (row-major, (n, d)), compiled with numba.

Each reads every code byte once and keeps the arithmetic in registers: numpy needs a
float32 copy of each block first (an int8 -> float32 conversion, then a GEMV over the
copy), which cost 2-4x the fused loop (2M x 128, this machine: 118-131 ms to convert
blocks, 180-250 ms with the GEMV, against 59 ms fused on one thread; docs/learning.md,
"Compact features"). The functions release the GIL: callers split the rows between
threads (a worker per core), not numba's parallel layer, which must not be entered from
two threads at once (the app serves several browser sessions).

Without numba (an environment that lacks it) the same functions run in numpy, block by
block: same results up to float32 summation order, slower.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

    from numba.typed import List

LEVELS = 127  # codes in -127..127


@functools.cache
def _compiled() -> ModuleType | None:
    """The compiled loops (`int8_jit`), or None without numba; imported on first use."""
    try:
        from eominer.learning import int8_jit
    except ImportError:  # pragma: no cover - numba is a dependency; numpy then
        return None
    return int8_jit


def gemv(codes: np.ndarray, ws: np.ndarray, bias: float, out: np.ndarray, s0: int,
         s1: int) -> None:
    """out[s0:s1] = codes[s0:s1] @ ws + bias (float32; ws float32 (d,))."""
    if (k := _compiled()) is not None:
        k._gemv(codes, ws, np.float32(bias), out, s0, s1)
        return
    for s in range(s0, s1, 8192):
        e = min(s1, s + 8192)
        np.matmul(codes[s:e].astype(np.float32), ws, out=out[s:e])
        out[s:e] += np.float32(bias)


def score_margin(codes: np.ndarray, ws: np.ndarray, bias: float, slope: float,
                 out: np.ndarray, s0: int, s1: int, exclude: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray]:
    """One pass over rows s0..s1: out[i] = sigmoid(slope * (codes[i] @ ws + bias)) (the
    float32 steps of `models.sigmoid`), and the k rows of smallest |out[i] - 0.5| not in
    `exclude` (sorted int64), smallest first, ties by row: (keys, rows)."""
    if (c := _compiled()) is not None:
        kk = np.empty(k, np.float32)
        ki = np.empty(k, np.int64)
        m = c._score_margin(codes, ws, np.float32(bias), np.float32(-slope), out, s0, s1,
                            exclude, kk, ki)
        return kk[:m], ki[:m]
    from eominer.learning.strategies import smallest

    gemv(codes, ws, bias, out, s0, s1)
    z = out[s0:s1]
    np.multiply(z, np.float32(-slope), out=z)
    np.clip(z, -80.0, 80.0, out=z)
    np.exp(z, out=z)
    z += np.float32(1.0)
    np.reciprocal(z, out=z)
    key = np.abs(z - np.float32(0.5))
    ex = exclude[(exclude >= s0) & (exclude < s1)] - s0
    key[ex] = np.inf
    rows = smallest(key, k)
    return key[rows], rows + s0


def nearest(codes: np.ndarray, ws: np.ndarray, bias: float, qq: float, sq: np.ndarray,
            s0: int, s1: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of s0..s1 of smallest key -(2 (codes[i] @ ws + bias) - sq[i] - qq)
    (minus the similarity of `models.similar_to`; -(codes[i] @ ws + bias) when `sq` is
    empty), smallest first, ties by row: (keys, rows). No vector of n keys is made."""
    if (c := _compiled()) is not None:
        kk = np.empty(k, np.float32)
        ki = np.empty(k, np.int64)
        m = c._nearest(codes, ws, np.float32(bias), np.float32(qq), sq, s0, s1, kk, ki)
        return kk[:m], ki[:m]
    from eominer.learning.strategies import smallest

    v = np.empty(s1 - s0, np.float32)
    gemv(codes[s0:s1], ws, bias, v, 0, s1 - s0)
    if len(sq):
        v *= np.float32(2.0)
        v -= sq[s0:s1]
        v -= np.float32(qq)
    np.negative(v, out=v)
    rows = smallest(v, k)
    return v[rows], rows + s0


def sq_norms(codes: np.ndarray, scale: np.ndarray, offset: np.ndarray, out: np.ndarray,
             s0: int, s1: int) -> None:
    """out[s0:s1] = ||offset + scale * codes[i]||^2 (float32)."""
    if (k := _compiled()) is not None:
        k._sq_norms(codes, scale, offset, out, s0, s1)
        return
    for s in range(s0, s1, 8192):
        e = min(s1, s + 8192)
        b = codes[s:e].astype(np.float32)
        b *= scale
        b += offset
        out[s:e] = np.einsum("ij,ij->i", b, b)


def quantise_column(col: np.ndarray, codes: np.ndarray, j: int, pos: np.ndarray | None,
                    start: int, inv: float, off: float) -> tuple[float, float, float, int]:
    """Write the codes of the float32 column `col` into column j of `codes`, at rows
    `pos` (or start, start + 1, ... when `pos` is None); non-finite values get code 0.
    Returns (sum of col, sum of its finite values, sum of the squared unrounded codes of
    those, number of non-finite values), sums in float64."""
    col = np.ascontiguousarray(col, np.float32)
    if (k := _compiled()) is not None:
        p = np.empty(0, np.int64) if pos is None else pos
        raw, fin, s2, bad = k._quantise_column(col, codes, j, p, start, np.float32(inv),
                                             np.float32(off))
        return float(raw), float(fin), float(s2), int(bad)
    t = np.subtract(col, np.float32(off), dtype=np.float32)
    t *= np.float32(inv)
    ok = np.isfinite(t)
    raw = float(col.sum(dtype=np.float64))
    fin = float(col[ok].sum(dtype=np.float64))
    t[~ok] = 0.0
    s2 = float(np.dot(t.astype(np.float64), t))
    np.clip(t, -LEVELS, LEVELS, out=t)
    np.rint(t, out=t)
    rows = np.arange(start, start + len(col)) if pos is None else pos
    codes[rows, j] = t.astype(np.int8)
    return raw, fin, s2, int((~ok).sum())


def as_columns(cols: list[np.ndarray]) -> list[np.ndarray] | List[np.ndarray]:
    """The columns as the compiled `quantise_rows` takes them (a numba typed list; made
    once per batch, not per worker)."""
    if _compiled() is None or not isinstance(cols, list):
        return cols
    from numba.typed import List

    return List(cols)


def quantise_rows(cols: Sequence[np.ndarray] | List, sel: np.ndarray | None, codes: np.ndarray,
                  pos: np.ndarray | None, start: int, a: int, b: int, inv: np.ndarray,
                  off: np.ndarray, acc: np.ndarray) -> None:
    """Rows a..b of a batch of float32 columns `cols` (row i is cols[j][sel[i]], or
    cols[j][i] when `sel` is None) into `codes` (at rows pos[i], or start + i when `pos`
    is None), every column; adds to acc (4, d) the raw sums, finite sums, sums of squared
    unrounded codes and non-finite counts per column."""
    if (k := _compiled()) is not None:
        p = np.empty(0, np.int64) if pos is None else pos
        s = np.empty(0, np.int64) if sel is None else sel
        k._quantise_rows(as_columns(cols), s, codes, p, start, a, b, inv, off, acc)
        return
    for j, col in enumerate(cols):
        col = col if sel is None else col[sel]
        r, f, q, nbad = quantise_column(col[a:b], codes, j, None if pos is None else pos[a:b],
                                        start + a, float(inv[j]), float(off[j]))
        acc[:, j] += (r, f, q, nbad)


def warm() -> None:
    """Load the compiled kernels (numba's first call in a process reads them from its
    cache, or compiles them: seconds); a loader runs this in a thread while the store
    answers its first query."""
    codes = np.zeros((2, 2), np.int8)
    out = np.zeros(2, np.float32)
    one = np.ones(2, np.float32)
    gemv(codes, one, 0.0, out, 0, 2)
    score_margin(codes, one, 0.0, 1.0, out, 0, 2, np.empty(0, np.int64), 1)
    nearest(codes, one, 0.0, 0.0, out, 0, 2, 1)
    nearest(codes, one, 0.0, 0.0, np.empty(0, np.float32), 0, 2, 1)
    sq_norms(codes, one, one, out, 0, 2)
    quantise_column(one, codes, 0, None, 0, 1.0, 0.0)
    quantise_column(one, codes, 0, np.arange(2), 0, 1.0, 0.0)
    acc = np.zeros((4, 2))
    ro = np.ones(2, np.float32)  # Arrow's zero-copy columns are read-only: their own
    ro.flags.writeable = False  # specialisation (and the typed list's), ~0.5 s to load
    for c in (one, ro):
        quantise_rows([c, c], None, codes, None, 0, 0, 2, one, one, acc)
        quantise_rows([c, c], np.arange(2), codes, np.arange(2), 0, 0, 2, one, one, acc)
