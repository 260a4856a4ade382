"""'s2stats' (the fusion S2 statistics): equal to per-patch numpy on real
BigEarthNet patches, nodata skipped."""

from __future__ import annotations

import numpy as np

from eominer.features import build
from eominer.features.windows import tile_patches
from eominer.sensors import S2_L2A_BANDS


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
