"""`sar` on real Sentinel-1 (BigEarthNet) VV/VH patches."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import FeatureError
from eominer.features import build


def test_statistics_in_db_and_ratio(s1_patch, grid_windows):
    d = build("sar", ["VV", "VH"])
    stack = np.pad(s1_patch, ((0, 0), (3, 3), (3, 3)), mode="symmetric")
    w = grid_windows(120, 120, sizes=(32, 64))
    X = d.compute(stack, w)
    col = {c: i for i, c in enumerate(d.columns)}
    y, x, s, _ = w[4]
    vv, vh = s1_patch[0, y:y + s, x:x + s], s1_patch[1, y:y + s, x:x + s]
    assert X[4, col["vv_mean"]] == pytest.approx(vv.mean(), rel=1e-5)
    assert X[4, col["vh_p50"]] == pytest.approx(np.median(vh), rel=1e-5)
    assert X[4, col["vv_vh_ratio_mean"]] == pytest.approx((vv - vh).mean(), rel=1e-4)
    assert X[:, col["vv_mean"]].max() < 5 and X[:, col["vv_mean"]].min() > -40  # dB range
    hist = X[:, col["sarwld_x0_o0"]:]
    assert hist.shape[1] == 48
    np.testing.assert_allclose(hist.sum(axis=1), 1.0, rtol=1e-5)


def test_nan_nodata_gives_finite_features(s1_patch, grid_windows):
    s = np.pad(s1_patch, ((0, 0), (3, 3), (3, 3)), mode="symmetric").copy()
    s[:, 3:35, 3:35] = np.nan
    X = build("sar", ["VV", "VH"]).compute(s, grid_windows(120, 120, sizes=(32,)))
    assert np.isfinite(X).all() and np.all(X[0] == 0)


def test_needs_vv_and_vh():
    with pytest.raises(FeatureError, match="needs bands VV, VH"):
        build("sar", ["VV"])
