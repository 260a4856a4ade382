from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import FeatureError, GridMismatchError, ModelNotTrainedError
from eominer.evaluation import bigearthnet
from eominer.fusion import cloud
from eominer.fusion.decision import DecisionFusion, FeatureFusion, product_rule
from eominer.fusion.features import (
    S1_FEATURE_NAMES,
    S2_FEATURE_NAMES,
    dataset_descriptors,
    fuse,
    patch_descriptors,
    s2_descriptors,
)
from eominer.fusion.labels import Vocabulary
from eominer.fusion.models import MultiLabelLogistic


@pytest.fixture(scope="module")
def data(ben):
    d = bigearthnet.load(ben)
    X2, X1 = dataset_descriptors(d.patches)
    Y = Vocabulary.present(d.labels).encode(d.labels)
    return d, X2, X1, Y


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


def test_model_errors(data):
    _, X2, X1, Y = data
    with pytest.raises(ModelNotTrainedError, match="not fitted"):
        FeatureFusion(30).predict_proba(np.hstack([X2, X1]))
    with pytest.raises(FeatureError, match="unknown decision-fusion rule 'vote'"):
        DecisionFusion(30, "vote").fit(np.hstack([X2, X1]), Y)
    with pytest.raises(FeatureError, match="NaN/inf"):
        MultiLabelLogistic().fit(np.full((3, 2), np.nan), np.zeros((3, 1)))
    m = MultiLabelLogistic().fit(X2, Y)
    with pytest.raises(FeatureError, match="fitted on 30 features, got 10"):
        m.predict_proba(X1)
