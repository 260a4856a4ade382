"""'s1stats' (the fusion S1 statistics): equal to numpy percentiles on real
BigEarthNet patches, NaN skipped, identity = name + parameters."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import FeatureError
from eominer.features import build
from eominer.features.windows import tile_patches
from eominer.sensors import S2_L2A_BANDS


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
