"""eominer.store.features: MERGE upsert and numpy read-back, on every engine of the contract."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import FeatureError
from tests.store.rows import patch_rows


def test_features_upsert_with_merge_is_idempotent(store):
    fs = store.register_feature_set("spectral", 1, {"bands": ["B04"]}, ["b04_mean", "b04_std"])
    assert store.register_feature_set("spectral", 1, {"bands": ["B04"]}, ["b04_mean", "b04_std"]) == fs
    ids = np.arange(1, 50_001, dtype=np.int64)
    vals = np.stack([ids * 0.5, ids * 0.25], axis=1).astype(np.float32)
    store.write_features(fs, ids, vals)
    # re-writing an overlapping block replaces rows: no duplicates
    store.write_features(fs, ids[-10:], np.zeros((10, 2), np.float32))
    assert store.count_features(fs) == 50_000
    rows = store.query(f"SELECT b04_mean FROM {fs.table_name} WHERE patch_id = ?", (50_000,))
    assert rows == [(0.0,)]
    rows = store.query(f"SELECT b04_mean FROM {fs.table_name} WHERE patch_id = ?", (7,))
    assert rows[0][0] == pytest.approx(3.5)
    other = store.register_feature_set("spectral", 1, {"bands": ["B08"]}, ["b08_mean"])
    assert other.feature_set_id != fs.feature_set_id  # changed parameters, new identity
    with pytest.raises(FeatureError, match="expected"):
        store.write_features(fs, ids[:3], np.zeros((3, 5), np.float32))


def test_read_features_to_numpy(store):
    store.insert_arrow("patches", patch_rows(1000))
    fs = store.register_feature_set("spectral", 1, {}, ["a", "b", "c"])
    ids = np.arange(1, 1001, dtype=np.int64)
    vals = np.random.default_rng(1).random((1000, 3)).astype(np.float32)
    store.write_features(fs, ids, vals)
    got_ids, X, names = store.read_features([fs.feature_set_id], ["P1"], 32)
    assert X.dtype == np.float32 and X.shape == (1000, 3)
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_allclose(X, vals)
    assert names[0].endswith("__a")


def test_feature_coverage_names_the_sets_of_each_product(store):
    """The app preselects the feature sets that cover the chosen products, not the newest
    set (a change set covers only the first date of its pair)."""
    store.insert_arrow("patches", patch_rows(100, first=1, product="P1"))
    store.insert_arrow("patches", patch_rows(50, first=101, product="P2"))
    both = store.register_feature_set("spectral", 1, {}, ["a"])
    store.write_features(both, np.arange(1, 151), np.zeros((150, 1), np.float32))
    change = store.register_feature_set("change_cva", 1, {"first": "P1"}, ["score"])
    store.write_features(change, np.arange(1, 41), np.ones((40, 1), np.float32))
    cov = store.feature_coverage(["P1", "P2"], 32)
    assert cov == {both.feature_set_id: {"P1": 100, "P2": 50},
                   change.feature_set_id: {"P1": 40}}
    assert store.covering_feature_sets(["P2"], 32) == [both.feature_set_id]
    assert store.covering_feature_sets(["P1"], 32) == [both.feature_set_id,
                                                       change.feature_set_id]
    assert store.covering_feature_sets(["P1", "P2"], 32) == [both.feature_set_id]
    assert store.covering_feature_sets(["P1"], 64) == []
    assert store.covering_feature_sets([], 32) == []
