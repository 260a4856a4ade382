"""change/scores.py: per-patch scores of a change map."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.change.scores import patch_scores


def test_patch_scores_match_direct_means() -> None:
    rng = np.random.default_rng(1)
    prob = rng.random((64, 96)).astype(np.float32)
    prob[:5, :7] = np.nan
    binary = (prob > 0.7).astype(np.uint8)
    binary[np.isnan(prob)] = 255
    x, y, s = np.array([0, 32, 64]), np.array([0, 32, 0]), np.array([32, 32, 32])
    got = patch_scores(prob, binary, x, y, s)
    for i in range(3):
        win = prob[y[i]:y[i] + 32, x[i]:x[i] + 32]
        v = np.isfinite(win)
        assert got[i, 0] == pytest.approx(win[v].mean(), rel=1e-5)
        assert got[i, 1] == pytest.approx((win[v] > 0.7).mean(), rel=1e-5)
        assert got[i, 2] == pytest.approx(v.mean(), rel=1e-6)
        top = np.sort(np.where(v, win, 0.0).ravel())[::-1]  # a masked pixel counts as 0
        assert got[i, 3] == top[0]
        assert got[i, 4] == pytest.approx(top[:51].mean(), rel=1e-6)  # 5 % of 1024 px


def test_order_stats_of_grid_clipped_and_stray_windows() -> None:
    """The strip-wise path (whole patches of the grid) and the window-by-window one give
    the maximum and the mean of the top 5 % by hand, at two levels."""
    from eominer.change.scores import order_stats

    rng = np.random.default_rng(2)
    p = rng.random((100, 70)).astype(np.float32)
    x, y, s = [], [], []
    for size in (16, 32):
        for yy in range(0, 100 - size + 1, size):
            for xx in range(0, 70 - size + 1, size):
                x.append(xx), y.append(yy), s.append(size)
    x += [64, 5, 0]  # clipped at the right edge; off the grid; 4 x 4 (k = 1 pixel)
    y += [0, 3, 96]
    s += [16, 16, 4]
    x, y, s = np.array(x), np.array(y), np.array(s)
    high, top = order_stats(p, x, y, s)
    for i in range(len(x)):
        w = np.sort(p[y[i]:y[i] + s[i], x[i]:x[i] + s[i]].ravel())[::-1]
        k = max(1, min(round(0.05 * s[i] ** 2), w.size))
        assert high[i] == w[0] and top[i] == pytest.approx(w[:k].mean(), rel=1e-6), i
    assert len(x) == 4 * 6 + 3 * 2 + 3
