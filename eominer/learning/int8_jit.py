"""The compiled loops of `int8_kernels` (numba). A module of its own so that importing
`int8_kernels` does not import numba (~2 s): only a process that holds an int8 matrix
pays for it, on first use."""

from __future__ import annotations

import numba
import numpy as np

from eominer.learning.int8_kernels import LEVELS

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
