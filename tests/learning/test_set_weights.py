"""Per-set standardisation of a session over several feature sets (scope.set_weights)."""

from __future__ import annotations

import numpy as np

from eominer.learning.engine import SessionData
from eominer.learning.scope import set_weights, weigh_feature_sets


def test_each_set_adds_the_same_share_of_the_variance():
    names = [f"a__c{i}" for i in range(4)] + [f"b__c{i}" for i in range(12)]
    w = set_weights(names)
    assert w is not None and w.shape == (16,)
    np.testing.assert_allclose(w[:4], np.sqrt(16 / (2 * 4)))
    np.testing.assert_allclose(w[4:], np.sqrt(16 / (2 * 12)))
    assert set_weights([f"a__c{i}" for i in range(5)]) is None  # one set: unchanged

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 16)).astype(np.float32) * np.arange(1, 17, dtype=np.float32)
    data = SessionData(np.arange(500), X.copy(), names)
    weigh_feature_sets(data)
    var = data.X.var(axis=0, dtype=np.float64)
    assert abs(var[:4].sum() - 8.0) < 1e-3 and abs(var[4:].sum() - 8.0) < 1e-3
    # mean/std still map raw features into the session's space (query by example)
    np.testing.assert_allclose((X[:3] - data.mean) / data.std, data.X[:3], atol=1e-4)
