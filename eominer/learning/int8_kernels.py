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

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; this keeps imports working
    numba = None

LEVELS = 127  # codes in -127..127

if numba is not None:
    # reassociation lets the dot products vectorise; not the finite-math flags, which
    # would let the compiler drop the isfinite tests
    _jit = numba.njit(nogil=True, fastmath={"reassoc", "contract"}, cache=True)
    _jit_exact = numba.njit(nogil=True, cache=True)

    @_jit
    def _gemv(codes, ws, bias, out, s0, s1):  # pragma: no cover - compiled
        d = codes.shape[1]
        for i in range(s0, s1):
            acc = np.float32(0.0)
            for j in range(d):
                acc += ws[j] * np.float32(codes[i, j])
            out[i] = acc + bias

    @_jit
    def _sq_norms(codes, scale, offset, out, s0, s1):  # pragma: no cover - compiled
        d = codes.shape[1]
        for i in range(s0, s1):
            acc = np.float32(0.0)
            for j in range(d):
                v = offset[j] + scale[j] * np.float32(codes[i, j])
                acc += v * v
            out[i] = acc

    @_jit_exact
    def _quantise_column(col, codes, j, pos, start, inv, off):  # pragma: no cover
        # (raw sum, sum of the finite values, sum of squares of their unrounded codes,
        # count of non-finite values); pos[i] or start + i is the row of col[i]
        raw = 0.0
        fin = 0.0
        s2 = 0.0
        bad = 0
        m = col.shape[0]
        run = pos.shape[0] == 0
        for i in range(m):
            x = col[i]
            raw += x
            t = (x - off) * inv
            if np.isfinite(t):
                fin += x
                s2 += np.float64(t) * t
                if t > LEVELS:
                    t = np.float32(LEVELS)
                elif t < -LEVELS:
                    t = np.float32(-LEVELS)
                c = np.int8(np.rint(t))
            else:
                bad += 1
                c = np.int8(0)
            if run:
                codes[start + i, j] = c
            else:
                codes[pos[i], j] = c
        return raw, fin, s2, bad

    @_jit
    def _quantise_rows(cols, sel, codes, pos, start, a, b, inv, off, acc):  # pragma: no cover
        # rows a..b of a batch (cols: one float32 array per feature; row i of the batch is
        # cols[j][sel[i]], or cols[j][i] when sel is empty) into codes, in tiles of 256
        # rows: each column's codes of a tile are made in a branch-free (vectorised) loop
        # into a small feature-major buffer, then the tile is transposed into its rows of
        # codes (32 KB at 128-D, in cache). acc (4, d): raw sums, finite sums, sums of
        # squared codes, non-finite counts
        d = len(cols)
        run = pos.shape[0] == 0
        every = sel.shape[0] == 0
        tile = np.empty((d, 256), np.int8)
        xs = np.empty(256, np.float32)
        lim = np.float32(LEVELS)
        for t0 in range(a, b, 256):
            t1 = min(b, t0 + 256)
            m = t1 - t0
            for j in range(d):
                col = cols[j]
                if every:
                    xs[:m] = col[t0:t1]
                else:
                    for i in range(m):
                        xs[i] = col[sel[t0 + i]]
                oj = off[j]
                ij = inv[j]
                raw = 0.0
                fin = 0.0
                s2 = 0.0
                bad = 0
                for i in range(m):
                    x = xs[i]
                    raw += x
                    t = (x - oj) * ij
                    ok = np.isfinite(t)
                    t = t if ok else np.float32(0.0)
                    fin += x if ok else np.float32(0.0)
                    bad += 0 if ok else 1
                    s2 += np.float64(t) * t
                    t = min(max(t, -lim), lim)
                    tile[j, i] = np.int8(np.rint(t))
                acc[0, j] += raw
                acc[1, j] += fin
                acc[2, j] += s2
                acc[3, j] += bad
            if run:
                for i in range(m):
                    r = start + t0 + i
                    for j in range(d):
                        codes[r, j] = tile[j, i]
            else:
                for i in range(m):
                    r = pos[t0 + i]
                    for j in range(d):
                        codes[r, j] = tile[j, i]


def gemv(codes: np.ndarray, ws: np.ndarray, bias: float, out: np.ndarray, s0: int,
         s1: int) -> None:
    """out[s0:s1] = codes[s0:s1] @ ws + bias (float32; ws float32 (d,))."""
    if numba is not None:
        _gemv(codes, ws, np.float32(bias), out, s0, s1)
        return
    for s in range(s0, s1, 8192):
        e = min(s1, s + 8192)
        np.matmul(codes[s:e].astype(np.float32), ws, out=out[s:e])
        out[s:e] += np.float32(bias)


def sq_norms(codes: np.ndarray, scale: np.ndarray, offset: np.ndarray, out: np.ndarray,
             s0: int, s1: int) -> None:
    """out[s0:s1] = ||offset + scale * codes[i]||^2 (float32)."""
    if numba is not None:
        _sq_norms(codes, scale, offset, out, s0, s1)
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
    if numba is not None:
        p = np.empty(0, np.int64) if pos is None else pos
        raw, fin, s2, bad = _quantise_column(col, codes, j, p, start, np.float32(inv),
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


def as_columns(cols: list[np.ndarray]):
    """The columns as the compiled `quantise_rows` takes them (a numba typed list; made
    once per batch, not per worker)."""
    if numba is None or not isinstance(cols, list):
        return cols
    from numba.typed import List

    return List(cols)


def quantise_rows(cols: list[np.ndarray], sel: np.ndarray | None, codes: np.ndarray,
                  pos: np.ndarray | None, start: int, a: int, b: int, inv: np.ndarray,
                  off: np.ndarray, acc: np.ndarray) -> None:
    """Rows a..b of a batch of float32 columns `cols` (row i is cols[j][sel[i]], or
    cols[j][i] when `sel` is None) into `codes` (at rows pos[i], or start + i when `pos`
    is None), every column; adds to acc (4, d) the raw sums, finite sums, sums of squared
    unrounded codes and non-finite counts per column."""
    if numba is not None:
        p = np.empty(0, np.int64) if pos is None else pos
        s = np.empty(0, np.int64) if sel is None else sel
        _quantise_rows(as_columns(cols), s, codes, p, start, a, b, inv, off, acc)
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
    sq_norms(codes, one, one, out, 0, 2)
    quantise_column(one, codes, 0, None, 0, 1.0, 0.0)
    quantise_column(one, codes, 0, np.arange(2), 0, 1.0, 0.0)
    acc = np.zeros((4, 2))
    quantise_rows([one, one], None, codes, None, 0, 0, 2, one, one, acc)
    quantise_rows([one, one], np.arange(2), codes, np.arange(2), 0, 0, 2, one, one, acc)
