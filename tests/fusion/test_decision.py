"""fusion/decision.py: feature- and decision-level fusion, the S1 fallback."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.fusion import cloud
from eominer.fusion.decision import DecisionFusion, FeatureFusion, product_rule
from eominer.fusion.features import (
    s2_descriptors,
)
from eominer.fusion.models import MultiLabelLogistic


def test_product_rule():
    p = product_rule(np.array([0.9, 0.5]), np.array([0.9, 0.2]))
    np.testing.assert_allclose(p, [0.81 / (0.81 + 0.01), 0.2])


@pytest.mark.parametrize("model", [
    lambda n: FeatureFusion(n), lambda n: DecisionFusion(n, "product"),
    lambda n: DecisionFusion(n, "stack"), lambda n: DecisionFusion(n, "mean"),
])
def test_cloudy_optical_falls_back_on_s1(data, model):
    d, X2, X1, Y = data
    X = np.hstack([X2, X1])
    est = model(X2.shape[1]).fit(X[:20], Y[:20])
    s1_only = MultiLabelLogistic().fit(X1[:20], Y[:20]).predict_proba(X1[20:])
    # cloud over the optical part: its descriptors are garbage (or NaN for no data)
    cloudy = np.stack([s2_descriptors(cloud.cloud_over(p.s2)) for p in d.patches[20:]])
    ok = np.array([cloud.usable(cloud.valid_fraction(cloud.cloud_over(p.s2)))
                   for p in d.patches[20:]])
    assert not ok.any()
    got = est.predict_proba(np.hstack([cloudy, X1[20:]]), s2_usable=ok)
    np.testing.assert_allclose(got, s1_only, atol=1e-12)
    clear = est.predict_proba(X[20:])
    assert not np.allclose(clear, s1_only)  # with clear optics, S2 does contribute
    nan_s2 = np.hstack([np.full_like(cloudy, np.nan), X1[20:]])
    np.testing.assert_allclose(est.predict_proba(nan_s2, s2_usable=ok), s1_only, atol=1e-12)
