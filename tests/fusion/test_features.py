"""fusion/features.py: per-patch S2/S1 descriptors and their weighted fusion."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import FeatureError, GridMismatchError
from eominer.fusion.features import (
    S1_FEATURE_NAMES,
    S2_FEATURE_NAMES,
    fuse,
    patch_descriptors,
)


def test_descriptors_have_physical_values(data):
    d, X2, X1, _ = data
    assert X2.shape == (27, len(S2_FEATURE_NAMES)) and X1.shape == (27, len(S1_FEATURE_NAMES))
    ndvi = X2[:, S2_FEATURE_NAMES.index("s2_ndvi_mean")]
    forest = [i for i, p in enumerate(d) if {"Broad-leaved forest", "Mixed forest"} <= set(
        p.labels)]
    assert ndvi[forest].mean() > 0.5  # June forest in Austria is green
    vv = X1[:, S1_FEATURE_NAMES.index("s1_vv_mean")] * 10  # dB
    vh = X1[:, S1_FEATURE_NAMES.index("s1_vh_mean")] * 10
    assert np.all(vv > vh)  # co-polarised backscatter above cross-polarised
    p = d.patches[0]
    b02 = X2[0, S2_FEATURE_NAMES.index("s2_b02_mean")]
    assert b02 == pytest.approx(float(p.s2[1].mean()), rel=1e-5)
    with pytest.raises(GridMismatchError, match="120x120 px but S1 patch is 60x60"):
        patch_descriptors(p.s2, p.s1[:, :60, :60])


def test_fusion_weights_balance_the_blocks():
    a, b = np.ones((2, 30), np.float32), np.ones((2, 10), np.float32)
    f = fuse(a, b)
    assert np.linalg.norm(f[0, :30]) == pytest.approx(np.linalg.norm(f[0, 30:]))
    f = fuse(a, b, (1.0, 2.0))
    assert np.linalg.norm(f[0, 30:]) == pytest.approx(2 * np.linalg.norm(f[0, :30]))
    with pytest.raises(FeatureError, match="cannot fuse 2 S2 rows with 3 S1 rows"):
        fuse(a, np.ones((3, 10)))
    with pytest.raises(FeatureError, match="weights must be >= 0"):
        fuse(a, b, (0.0, 0.0))
