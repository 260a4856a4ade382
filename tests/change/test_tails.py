"""change/tails.py: per-patch tails and spreads of a pair's pixel differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eominer.change.align import CHANGE_BANDS
from eominer.change.tails import COLUMNS, pair_tails, window_std, window_tails


def test_window_tails_equal_numpy_quantiles_on_grid_clipped_and_stray_windows() -> None:
    rng = np.random.default_rng(3)
    d = rng.normal(size=(100, 70)).astype(np.float32)
    x, y, s = [], [], []
    for size in (16, 32):
        for yy in range(0, 100 - size + 1, size):
            for xx in range(0, 70 - size + 1, size):
                x.append(xx), y.append(yy), s.append(size)
    x += [64, 5, 0]  # clipped at the right edge (6 x 16 px); off the grid; 4 x 4
    y += [0, 3, 96]
    s += [16, 16, 4]
    x, y, s = np.array(x), np.array(y), np.array(s)
    got = window_tails(d, x, y, s)
    for i in range(len(x)):
        w = d[y[i]:y[i] + s[i], x[i]:x[i] + s[i]].ravel()
        np.testing.assert_allclose(got[i, :2], np.quantile(w, [0.1, 0.9]), rtol=1e-5,
                                   atol=1e-6, err_msg=str(i))
        assert got[i, 2] == pytest.approx(np.abs(w).mean(), rel=1e-5)
        assert got[i, 3] == pytest.approx(w.std(), rel=1e-5)
    assert got[-3, 0] < got[-3, 1] and len(x) == 4 * 6 + 3 * 2 + 3
    np.testing.assert_array_equal(window_std(d, x, y, s), got[:, 3])


def test_pair_tails_of_a_real_pair_by_hand_and_where_buildings_appeared(oscd: Path) -> None:
    """Bercy (Paris), 16 px patches: the columns of a patch with a masked corner equal
    the hand computation (a masked pixel counts as 0); the patches with > 5 % new
    construction (OSCD's labels) have higher NDBI tails and wider spreads of the SWIR
    difference than the others."""
    from eominer.evaluation.oscd import load_city

    pair, truth = load_city(oscd, "bercy")
    valid = pair.valid.copy()
    valid[32:40, 48:56] = False  # a cloud over a quarter of patch (row 2, col 3)
    h, w = truth.shape
    ys, xs = np.mgrid[0:h // 16 * 16:16, 0:w // 16 * 16:16]
    x0, y0 = xs.ravel(), ys.ravel()
    got = pair_tails(pair.x1, pair.x2, valid, CHANGE_BANDS, x0, y0, np.full(len(x0), 16))
    assert got.shape == (len(x0), len(COLUMNS)) == (528, 18)

    def index(x: np.ndarray, a: str, b: str) -> np.ndarray:
        p, q = x[CHANGE_BANDS.index(a)], x[CHANGE_BANDS.index(b)]
        return (p - q) / (p + q)

    i = int(np.flatnonzero((x0 == 48) & (y0 == 32))[0])
    for j, (a, b) in enumerate((("B08", "B04"), ("B11", "B08"))):
        d = (index(pair.x2, a, b) - index(pair.x1, a, b))[32:48, 48:64]
        d = np.where(valid[32:48, 48:64], d, 0.0).ravel()
        assert (d == 0).sum() >= 64
        np.testing.assert_allclose(got[i, 4 * j:4 * j + 2], np.quantile(d, [0.1, 0.9]),
                                   rtol=1e-4, atol=1e-6)
        assert got[i, 4 * j + 2] == pytest.approx(np.abs(d).mean(), rel=1e-4)
        assert got[i, 4 * j + 3] == pytest.approx(d.std(), rel=1e-4)
    for band in ("B04", "B11"):  # the spread of a band's difference, masked pixels as 0
        k = CHANGE_BANDS.index(band)
        d = np.where(valid, pair.x2[k] - pair.x1[k], 0.0)[32:48, 48:64]
        assert got[i, COLUMNS.index(f"std_{band.lower()}")] == pytest.approx(d.std(), rel=1e-4)
    built = np.array([truth[y:y + 16, x:x + 16].mean() > 0.05 for x, y in zip(x0, y0,
                                                                           strict=True)])
    assert built.sum() == 15
    q90_ndbi = got[:, COLUMNS.index("q90_ndbi")]
    assert q90_ndbi[built].mean() > q90_ndbi[~built].mean() + 0.02
    std_b11 = got[:, COLUMNS.index("std_b11")]
    assert np.median(std_b11[built]) > 1.3 * np.median(std_b11[~built])
