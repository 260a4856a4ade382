"""`wld`: Weber Local Descriptor codes against a direct per-pixel definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eominer.features import build
from eominer.features.wld import wld_codes


def direct_code(p: np.ndarray, y: int, x: int, eps: float) -> int:
    c = float(p[y, x])
    s = sum(float(p[y + dy, x + dx]) - c for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    xi = math.atan(s / (max(c, 0.0) + eps))
    xb = min(int((xi + math.pi / 2) // (math.pi / 6)), 5)
    th = math.atan2(float(p[y + 1, x]) - float(p[y - 1, x]),
                    float(p[y, x + 1]) - float(p[y, x - 1]))
    tb = int((th + math.pi) // (math.pi / 4)) % 8
    return xb * 8 + tb


def test_codes_follow_the_definition(bordeaux):
    img = np.pad(bordeaux["B04"][200:240, 300:340], 1, mode="symmetric")
    codes = wld_codes(img, 6, 8, 1e-3)
    rng = np.random.default_rng(1)
    for y, x in rng.integers(0, 40, (60, 2)):
        assert codes[y, x] == direct_code(img, y + 1, x + 1, 1e-3)


def test_histograms_are_distributions_and_vary(bordeaux, grid_windows):
    d = build("wld", ["B02", "B03", "B04", "B08"])
    assert d.dims == 48 and d.columns[:2] == ("wld_x0_o0", "wld_x0_o1")
    stack = np.pad(bordeaux["B08"][:256, :256], 1, mode="symmetric")[None]
    X = d.compute(stack, grid_windows(256, 256, sizes=(32, 64)))
    np.testing.assert_allclose(X.sum(axis=1), 1.0, rtol=1e-5)
    assert X.std(axis=0).max() > 0.003  # patches differ


def test_nodata_pixels_are_not_counted(bordeaux, grid_windows):
    d = build("wld", ["B08"])
    stack = np.pad(bordeaux["B08"][:64, :64], 1, mode="symmetric")[None].copy()
    stack[0, 1:33, 1:33] = np.nan
    X = d.compute(stack, grid_windows(64, 64, sizes=(32,)))
    assert np.all(X[0] == 0)
    assert X[1].sum() == pytest.approx(1.0)
    assert np.isfinite(X).all()
