"""Per-patch change scores: what the database keeps of a change map.

For every patch of the first product's grid (all levels), over its valid pixels:
the mean change probability, the share of pixels the binary map calls change, and the
share of valid pixels; and, over all its pixels (an invalid one counts as 0), the highest
probability and the mean of its highest 5 %. Patch sums come from summed-area tables, so
their cost is one pass over the map whatever the number of patches and levels; the two
order statistics take one pass per level, a strip of patches at a time.

Why the order statistics: a new building covers a few pixels of a patch, and the patch
mean dilutes it in the patch's unchanged rest. On the 9 OSCD cities (16 px patches,
`selftrain_regression`), the mean of the top 5 % ranks the patches with > 5 % changed
pixels at AP 0.350 with no label, the maximum at 0.342, the mean at 0.311; in sessions
over the pooled cities both columns lift AP@100 from 0.382 to 0.404 (`diverse`) and from
0.283 to 0.368 (`margin`, docs/learning.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

SCORE_COLUMNS: tuple[str, ...] = ("change_prob_mean", "change_share", "change_valid",
                                   "change_prob_max", "change_prob_top5")
TOP_SHARE = 0.05  # change_prob_top5: the mean of a patch's highest 5 % (at least 1 pixel)


def _integral(a: np.ndarray) -> np.ndarray:
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1), dtype=np.float64)
    np.cumsum(np.cumsum(a, axis=0, dtype=np.float64), axis=1, out=s[1:, 1:])
    return s


def _window_sums(s: np.ndarray, x0: np.ndarray, y0: np.ndarray, size: np.ndarray) -> np.ndarray:
    h, w = s.shape[0] - 1, s.shape[1] - 1
    x1 = np.minimum(x0 + size, w)
    y1 = np.minimum(y0 + size, h)
    return s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0]


def patch_scores(
    prob: np.ndarray, binary: np.ndarray, x_off: np.ndarray, y_off: np.ndarray,
    size_px: np.ndarray,
) -> np.ndarray:
    """(n_patches, 5) float32: SCORE_COLUMNS per pixel window (x_off, y_off, size_px).
    A patch with no valid pixel scores 0 (its `change_valid` says why)."""
    valid = np.isfinite(prob) & (binary != 255)
    x0 = np.asarray(x_off, dtype=np.int64)
    y0 = np.asarray(y_off, dtype=np.int64)
    size = np.asarray(size_px, dtype=np.int64)
    n_valid = _window_sums(_integral(valid.astype(np.float32)), x0, y0, size)
    p_sum = _window_sums(_integral(np.where(valid, prob, 0.0)), x0, y0, size)
    c_sum = _window_sums(_integral((binary == 1).astype(np.float32)), x0, y0, size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_valid > 0, p_sum / n_valid, 0.0)
        share = np.where(n_valid > 0, c_sum / n_valid, 0.0)
    area = (size * size).astype(np.float64)
    high, top = order_stats(np.where(valid, prob, 0.0).astype(np.float32), x0, y0, size)
    return np.stack([mean, share, n_valid / area, high, top], axis=1).astype(np.float32)


def window_rows(p: np.ndarray, x0: np.ndarray, y0: np.ndarray, size: np.ndarray,
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The pixels of each window of `p`, as (indexes of the windows, their pixels: one row
    each). Windows of the product grid (whole patches from the top-left corner) come a row
    of patches at a time, so a per-row numpy call covers a strip; any other window (clipped
    at the edge, or off the grid) comes alone, with as many pixels as it has."""
    rows, cols = p.shape
    for s in np.unique(size).tolist():
        of = np.flatnonzero(size == s)
        grid = (x0[of] % s == 0) & (y0[of] % s == 0) & (x0[of] + s <= cols) & \
            (y0[of] + s <= rows)
        n = cols // s
        on = of[grid]
        for y in np.unique(y0[on]).tolist():
            at = on[y0[on] == y]
            strip = p[y:y + s, :n * s].reshape(s, n, s).transpose(1, 0, 2).reshape(n, s * s)
            yield at, strip[x0[at] // s]
        for i in of[~grid].tolist():
            w = p[y0[i]:y0[i] + s, x0[i]:x0[i] + s].reshape(1, -1)
            if w.size:
                yield np.array([i]), w


def order_stats(p: np.ndarray, x0: np.ndarray, y0: np.ndarray,
                size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per window: the highest value of `p` and the mean of its highest TOP_SHARE
    (`window_rows`: one `np.partition` per row of patches)."""
    high = np.zeros(len(x0), np.float32)
    top = np.zeros(len(x0), np.float32)
    for at, px in window_rows(p, x0, y0, size):
        k = max(1, round(TOP_SHARE * int(size[at[0]]) ** 2))
        k = min(k, px.shape[1])
        best = np.partition(px, px.shape[1] - k, axis=1)[:, px.shape[1] - k:]
        high[at] = best.max(axis=1)
        top[at] = best.mean(axis=1, dtype=np.float64)
    return high, top
