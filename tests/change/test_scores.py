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
