"""'s2stats' / 's1stats' (the fusion statistics): equal to per-patch numpy on real
BigEarthNet patches, nodata skipped, identity = name + parameters."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import FeatureError
from eominer.features import build
from eominer.features.windows import tile_patches
from eominer.sensors import S2_L2A_BANDS


@pytest.fixture(scope="module")
def patches(shared_data):
    from eominer.evaluation import bigearthnet

    d = bigearthnet.load(shared_data / "bigearthnet")
    return np.stack([p.s2 for p in d.patches[:6]]), np.stack([p.s1 for p in d.patches[:6]])


def test_s2stats_equal_per_patch_numpy_and_skip_nodata(patches) -> None:
    s2, _ = patches
    s2 = s2.copy()
    s2[0, :, :30] = 0.0                       # no data in one patch: 0, as S2 writes it
    s2[1, 3, 5, 5] = np.nan                   # and NaN in one band of one pixel of another
    d = build("s2stats", S2_L2A_BANDS)
    X = d.compute(*tile_patches(s2))
    assert d.dims == 30 and d.columns[:2] == ("b01_mean", "b01_std")
    for i in (0, 1, 2):
        x = s2[i].astype(np.float64)
        ok = np.all(np.isfinite(x) & (x > 0), axis=0)
        b08, b04 = x[7][ok], x[3][ok]
        ndvi = (b08 - b04) / (b08 + b04)
        want = [x[1][ok].mean(), x[1][ok].std(), ndvi.mean(), ndvi.std()]
        got = X[i, [d.columns.index(c) for c in ("b02_mean", "b02_std", "ndvi_mean",
                                                 "ndvi_std")]]
        np.testing.assert_allclose(got, want, rtol=1e-6)
    empty = d.compute(np.zeros((12, 8, 8), np.float32), [[0, 0, 8, 8]])
    assert not empty.any()                    # no valid pixel: zeros, never NaN


def test_s1stats_equal_numpy_percentiles_with_nan(patches) -> None:
    _, s1 = patches
    s1 = s1.copy()
    s1[0, 0, :50] = np.nan
    d = build("s1stats", ["VV", "VH"])
    X = d.compute(*tile_patches(s1))
    assert d.columns == ("vv_mean", "vv_std", "vv_p10", "vv_p90", "vh_mean", "vh_std",
                         "vh_p10", "vh_p90", "vvvh_mean", "vvvh_std")
    for i in (0, 1):
        vv = s1[i, 0].astype(np.float64) / 10
        vv = vv[np.isfinite(vv)]
        want = [vv.mean(), vv.std(), *np.percentile(vv, [10, 90])]
        np.testing.assert_allclose(X[i, :4], want, rtol=1e-6)
    assert d.params == {"percentiles": [10.0, 90.0], "divide_by": 10.0}
    assert build("s1stats", ["VV", "VH"], percentiles=(50,)) != d  # identity differs
    with pytest.raises(FeatureError, match="s1stats needs bands VV, VH"):
        build("s1stats", ["HH", "HV"])
    with pytest.raises(FeatureError, match="divide_by must be > 0"):
        build("s1stats", ["VV", "VH"], divide_by=0)
    with pytest.raises(FeatureError, match="s2stats: unknown index \\['evi'\\]"):
        build("s2stats", S2_L2A_BANDS, indices=("evi",))
