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
def _dot(codes: np.ndarray, i: int, ws: np.ndarray) -> np.float32:  # pragma: no cover - compiled
    # codes[i] @ ws in float32; the one dot product every kernel below uses, so that the
    # fused kernels' values equal the GEMV's (its fast-math flags stay on its own
    # instructions once inlined into a kernel compiled without them)
    acc = np.float32(0.0)
    for j in range(codes.shape[1]):
        acc += ws[j] * np.float32(codes[i, j])
    return acc


@_jit
def _gemv(codes: np.ndarray, ws: np.ndarray, bias: np.float32, out: np.ndarray, s0: int,
          s1: int) -> None:  # pragma: no cover - compiled
    for i in range(s0, s1):
        out[i] = _dot(codes, i, ws) + bias


@_jit_exact
def _offer(key: np.float32, i: int, kk: np.ndarray, ki: np.ndarray,
           m: int) -> int:  # pragma: no cover - compiled
    # keeps kk[:m] / ki[:m] the smallest keys offered so far, ascending, ties in the
    # order offered (rows come in increasing order: ties by row); returns the new m
    k = kk.shape[0]
    if m == k:
        if not key < kk[k - 1]:
            return m
        p = k - 1
    else:
        p = m
        m += 1
    while p > 0 and kk[p - 1] > key:
        kk[p] = kk[p - 1]
        ki[p] = ki[p - 1]
        p -= 1
    kk[p] = key
    ki[p] = i
    return m


@_jit_exact
def _score_margin(codes: np.ndarray, ws: np.ndarray, bias: np.float32, nslope: np.float32,
                  out: np.ndarray, s0: int, s1: int, excl: np.ndarray, kk: np.ndarray,
                  ki: np.ndarray) -> int:  # pragma: no cover
    # one pass: out[i] = 1 / (1 + exp(clip(nslope * (codes[i] @ ws + bias), -80, 80)))
    # (the float32 steps of `models.sigmoid`), and the k = len(kk) rows of smallest
    # |out[i] - 0.5| (`strategies.margin`), leaving out the sorted rows `excl`; no
    # vector of keys is made. Returns how many of kk / ki are filled.
    k = kk.shape[0]
    m = 0
    e = np.searchsorted(excl, s0)
    ne = excl.shape[0]
    lim = np.float32(80.0)
    one = np.float32(1.0)
    half = np.float32(0.5)
    thr = np.float32(np.inf)  # a key must be below this to enter (the k-th, once full)
    for i in range(s0, s1):
        u = (_dot(codes, i, ws) + bias) * nslope
        if u > lim:
            u = lim
        elif u < -lim:
            u = -lim
        s = one / (one + np.exp(u))
        out[i] = s
        key = s - half
        if key < 0:
            key = -key
        if key < thr and key <= half:
            while e < ne and excl[e] < i:
                e += 1
            if e < ne and excl[e] == i:
                continue
            m = _offer(key, i, kk, ki, m)
            if m == k:
                thr = kk[k - 1]
    return m


@_jit_exact
def _nearest(codes: np.ndarray, ws: np.ndarray, bias: np.float32, qq: np.float32,
             sq: np.ndarray, s0: int, s1: int, kk: np.ndarray,
             ki: np.ndarray) -> int:  # pragma: no cover - compiled
    # the k = len(kk) rows of largest similarity (smallest -similarity) without a vector
    # of them: 2 (codes[i] @ ws + bias) - sq[i] - qq (Euclidean, as `models.similar_to`),
    # or codes[i] @ ws + bias when sq is empty (dot product)
    k = kk.shape[0]
    m = 0
    euclid = sq.shape[0] > 0
    two = np.float32(2.0)
    thr = np.float32(np.inf)  # as in _score_margin
    for i in range(s0, s1):
        v = _dot(codes, i, ws) + bias
        if euclid:
            v = v * two
            v = v - sq[i]
            v = v - qq
        key = -v
        if key < thr and key > -np.inf:
            m = _offer(key, i, kk, ki, m)
            if m == k:
                thr = kk[k - 1]
    return m


@_jit
def _sq_norms(codes: np.ndarray, scale: np.ndarray, offset: np.ndarray, out: np.ndarray,
              s0: int, s1: int) -> None:  # pragma: no cover - compiled
    d = codes.shape[1]
    for i in range(s0, s1):
        acc = np.float32(0.0)
        for j in range(d):
            v = offset[j] + scale[j] * np.float32(codes[i, j])
            acc += v * v
        out[i] = acc


@_jit_exact
def _quantise_column(col: np.ndarray, codes: np.ndarray, j: int, pos: np.ndarray, start: int,
                     inv: np.float32,
                     off: np.float32) -> tuple[float, float, float, int]:  # pragma: no cover
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
def _quantise_rows(cols: numba.typed.List[np.ndarray], sel: np.ndarray, codes: np.ndarray,
                   pos: np.ndarray, start: int, a: int, b: int, inv: np.ndarray, off: np.ndarray,
                   acc: np.ndarray) -> None:  # pragma: no cover
    # rows a..b of a batch (cols: one float32 array per feature; row i of the batch is
    # cols[j][sel[i]], or cols[j][i] when sel is empty) into codes, in tiles of 256
    # rows: each column's codes of a tile are made in a branch-free (vectorised) loop
    # into a small feature-major buffer, then the tile is transposed into its rows of
    # codes (32 KB at 128-D, in cache). acc (4, d): raw sums, finite sums, sums of
    # squared codes, non-finite counts. The column is read in place (no copy) unless
    # rows are selected, and the raw sum is the finite sum except in a tile with a
    # non-finite value (then summed again): 1.6-1.8x faster than copying every column
    # and keeping three float64 sums per value
    d = len(cols)
    run = pos.shape[0] == 0
    every = sel.shape[0] == 0
    tile = np.empty((d, 256), np.int8)
    buf = np.empty(256, np.float32)
    lim = np.float32(LEVELS)
    for t0 in range(a, b, 256):
        t1 = min(b, t0 + 256)
        m = t1 - t0
        for j in range(d):
            col = cols[j]
            if every:
                xs = col[t0:t1]
            else:
                for i in range(m):
                    buf[i] = col[sel[t0 + i]]
                xs = buf[:m]
            oj = off[j]
            ij = inv[j]
            fin = 0.0
            s2 = 0.0
            bad = 0
            for i in range(m):
                x = xs[i]
                t = (x - oj) * ij
                ok = np.isfinite(t)
                t = t if ok else np.float32(0.0)
                fin += x if ok else np.float32(0.0)
                bad += 0 if ok else 1
                s2 += np.float64(t) * t
                t = min(max(t, -lim), lim)
                tile[j, i] = np.int8(np.rint(t))
            raw = fin
            if bad:
                raw = 0.0
                for i in range(m):
                    raw += xs[i]
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
