"""'bandstats' (the learning harness's statistics)."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import FeatureError
from eominer.features import build
from eominer.features.windows import grid_windows


def test_bandstats_values_columns_and_nodata() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(100, 3000, (4, 32, 32)).astype(np.float32)
    d = build("bandstats", ["B03", "B04", "B08", "B11"], indices=("ndvi",))
    assert d.columns == ("b03_mean", "b04_mean", "b08_mean", "b11_mean", "b03_std",
                         "b04_std", "b08_std", "b11_std", "ndvi_mean", "ndvi_std")
    w = grid_windows((32, 32), 16)
    X = d.compute(a, w)
    p = a[:, 16:32, 0:16].reshape(4, -1)
    np.testing.assert_allclose(X[2, :4], p.mean(1), rtol=1e-6)
    np.testing.assert_allclose(X[2, 4:8], p.std(1), rtol=1e-5)
    ndvi = (p[2] - p[1]) / (p[2] + p[1])
    np.testing.assert_allclose(X[2, 8:], [ndvi.mean(), ndvi.std()], rtol=1e-5)
    a[:, :16, :16] = np.nan                              # a window of nodata: zeros
    a[0, 20, 20] = np.nan                                # one pixel: skipped
    X = d.compute(a, w)
    assert not X[0].any()
    np.testing.assert_allclose(X[3, 1], np.nanmean(a[1, 16:, 16:]), rtol=1e-6)
    with pytest.raises(FeatureError, match="bandstats: unknown statistic or index \\['p50'\\]"):
        build("bandstats", ["B04"], indices=(), stats=("p50",))
    with pytest.raises(FeatureError, match="needs bands B08, B04"):
        build("bandstats", ["B04"], indices=("ndvi",))
