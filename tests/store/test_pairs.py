"""eominer.store.pairs on every engine of the contract."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from eominer.errors import StoreError
from eominer.store.pairs import pair_id
from tests.store.rows import T0, add_product, as_datetime


def test_pairs(store):
    add_product(store, "A", T0, 1)
    add_product(store, "B", T0 + dt.timedelta(days=5), 101)
    add_product(store, "C", T0 + dt.timedelta(days=9), 201)
    assert pair_id("change", "A", "B") == pair_id("change", "A", "B")
    assert pair_id("change", "A", "B") != pair_id("change", "A", "B", "cva")
    assert pair_id("change", "A", "B").startswith("change_")
    with pytest.raises(StoreError, match="nope is not in"):
        store.record_pair("change", "A", "nope")
    assert store.pairs().num_rows == 0 and store.pair("x") is None

    ab = store.record_pair("change", "A", "B", days_apart=5.0, overlap_fraction=0.9,
                           layer_path="/layers/ab.tif", params={"threshold": 0.5})
    bc = store.record_pair("change", "B", "C")  # all optional columns NULL
    ac = store.record_pair("other", "A", "C", method="m", params={"k": [1, 2]})
    assert len({ab, bc, ac}) == 3 and ab == pair_id("change", "A", "B")
    row = store.pair(ab)
    assert {k: row[k] for k in ("pair_id", "kind", "first_id", "second_id", "days_apart",
                                "overlap_fraction", "layer_path", "params")} == {
        "pair_id": ab, "kind": "change", "first_id": "A", "second_id": "B", "days_apart": 5.0,
        "overlap_fraction": 0.9, "layer_path": "/layers/ab.tif", "params": {"threshold": 0.5}}
    assert isinstance(as_datetime(row["created"]), dt.datetime)
    row = store.pair(bc)
    assert (row["days_apart"], row["overlap_fraction"], row["layer_path"], row["params"]) == (
        None, None, None, {})

    # re-recording the same pair replaces its row
    store.record_pair("change", "A", "B", days_apart=5.0, layer_path="/layers/ab2.tif")
    assert store.pair(ab)["layer_path"] == "/layers/ab2.tif"
    assert store.pair(ab)["params"] == {} and store.pair(ab)["overlap_fraction"] is None
    assert store.pairs().num_rows == 3
    assert sorted(store.pairs(kind="change")["pair_id"].to_pylist()) == sorted([ab, bc])
    assert sorted(store.pairs(product_id="B")["pair_id"].to_pylist()) == sorted([ab, bc])
    assert store.pairs(kind="other", product_id="C")["pair_id"].to_pylist() == [ac]
    assert store.pairs(kind="other", product_id="B").num_rows == 0
    newest = store.pairs()
    created = [as_datetime(v) for v in newest["created"].to_pylist()]
    assert created == sorted(created, reverse=True)
    by_id = dict(zip(newest["pair_id"].to_pylist(), created))
    assert by_id[ab] >= max(by_id[bc], by_id[ac])  # re-recorded last

    store.delete_pair(bc)
    store.delete_pair("nope")
    assert sorted(store.pairs()["pair_id"].to_pylist()) == sorted([ab, ac])


def test_changed_patches(store):
    add_product(store, "A", T0, 1)
    add_product(store, "B", T0 + dt.timedelta(days=5), 101)
    with pytest.raises(StoreError, match="run `eominer change` first"):
        store.changed_patches("nope", 32)
    bare = store.record_pair("change", "A", "B")
    with pytest.raises(StoreError, match="no per-patch change scores"):
        store.changed_patches(bare, 32)
    fs = store.register_feature_set("change", 1, {"pair": "AB"},
                                    ["change_prob_mean", "change_share", "change_valid"])
    ids = np.array([1, 2, 3, 4, 5, 101], np.int64)
    vals = np.array([[0.9, 0.75, 1.0], [0.1, 0.0, 1.0], [0.5, 0.4, 0.3], [0.6, 0.875, 0.9],
                     [0.7, 0.6, 1.0], [0.9, 0.9, 1.0]], np.float32)
    store.write_features(fs, ids, vals)
    pid = store.record_pair("change", "A", "B", params={"feature_set_id": fs.feature_set_id})
    assert pid == bare
    t = store.changed_patches(pid, 32)
    assert t.column_names == ["patch_id", "level", "x_off", "y_off", "size_px", "min_lon",
                              "min_lat", "max_lon", "max_lat", "change_prob_mean",
                              "change_share", "change_valid"]
    assert t["patch_id"].to_pylist() == [4, 1]  # share > 0, valid >= 0.5, most changed first
    np.testing.assert_allclose(t["change_share"].to_numpy(), [0.875, 0.75], rtol=1e-6)
    np.testing.assert_allclose(t["change_prob_mean"].to_numpy(), [0.6, 0.9], rtol=1e-6)
    assert t["x_off"].to_pylist() == [32, 0] and t["level"].to_pylist() == [32, 32]
    assert store.changed_patches(pid, 32, min_share=0.0, min_valid=0.0)[
        "patch_id"].to_pylist() == [4, 1, 3]
    assert store.changed_patches(pid, 32, min_share=0.9).num_rows == 0
    assert store.changed_patches(pid, 64)["patch_id"].to_pylist() == [5]
    # a pair with index tails (change/tails.py) brings them along, on every patch it has
    tails = store.register_feature_set("diff_tails", 1, {"pair": "AB"},
                                       ["q10_ndbi", "q90_ndbi"])
    store.write_features(tails, np.array([1, 4], np.int64),
                         np.array([[-0.1, 0.2], [-0.05, 0.4]], np.float32))
    store.record_pair("change", "A", "B", params={
        "feature_set_id": fs.feature_set_id, "tails_feature_set_id": tails.feature_set_id})
    t = store.changed_patches(pid, 32, min_share=0.0, min_valid=0.0)
    assert t.column_names[-3:] == ["change_valid", "q10_ndbi", "q90_ndbi"]
    assert t["patch_id"].to_pylist() == [4, 1, 3]
    np.testing.assert_allclose(t["q90_ndbi"].to_numpy(zero_copy_only=False)[:2], [0.4, 0.2],
                               rtol=1e-6)
    assert t["q10_ndbi"][2].as_py() is None  # patch 3 has no tails row
