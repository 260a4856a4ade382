"""Per-patch change scores: what the database keeps of a change map.

For every patch of the first product's grid (all levels), over its valid pixels:
the mean change probability, the share of pixels the binary map calls change, and the
share of valid pixels. Patch sums come from summed-area tables, so the cost is one pass
over the map whatever the number of patches and levels.
"""

from __future__ import annotations

import numpy as np

SCORE_COLUMNS: tuple[str, ...] = ("change_prob_mean", "change_share", "change_valid")


def _integral(a: np.ndarray) -> np.ndarray:
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1), dtype=np.float64)
    np.cumsum(np.cumsum(a, axis=0, dtype=np.float64), axis=1, out=s[1:, 1:])
    return s


def _window_sums(s: np.ndarray, x0, y0, size) -> np.ndarray:
    h, w = s.shape[0] - 1, s.shape[1] - 1
    x1 = np.minimum(x0 + size, w)
    y1 = np.minimum(y0 + size, h)
    return s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0]


def patch_scores(
    prob: np.ndarray, binary: np.ndarray, x_off: np.ndarray, y_off: np.ndarray,
    size_px: np.ndarray,
) -> np.ndarray:
    """(n_patches, 3) float32: SCORE_COLUMNS per pixel window (x_off, y_off, size_px).
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
    return np.stack([mean, share, n_valid / area], axis=1).astype(np.float32)
