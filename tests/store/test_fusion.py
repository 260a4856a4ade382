"""eominer.store.fusion on every engine of the contract."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from eominer.store.fusion import FUSION_PAIR_KIND
from tests.store.rows import T0, add_product, as_datetime


def test_fusion_pairs_and_boxes(store):
    add_product(store, "S2X", T0, 1)
    add_product(store, "S2Y", T0, 101)
    assert store.fusion_pairs() == []
    store.put_fusion_pair("f2", "S2Y", "S1B", 2, 0.5, "/l/f2.tif", {"res": 10})
    store.put_fusion_pair("f1", "S2X", "S1A", 1.5, 0.98, "/l/f1.tif", {"res": 10, "dB": True})
    store.record_pair("change", "S2X", "S2Y")  # another kind: never a fusion pair
    pairs = store.fusion_pairs()
    assert [p["pair_id"] for p in pairs] == ["f1", "f2"]
    assert {k: pairs[0][k] for k in pairs[0] if k != "created"} == {
        "pair_id": "f1", "s2_id": "S2X", "s1_id": "S1A", "days_apart": 1.5,
        "overlap_fraction": 0.98, "layer_path": "/l/f1.tif", "params": {"dB": True, "res": 10}}
    assert isinstance(as_datetime(pairs[0]["created"]), dt.datetime)
    assert pairs[1]["days_apart"] == 2.0
    assert [p["pair_id"] for p in store.fusion_pairs("S2Y")] == ["f2"]
    assert store.fusion_pairs("nope") == []

    store.put_fusion_pair("f1", "S2X", "S1A", 1.5, 0.97, "/l/f1b.tif", {})  # idempotent
    again = store.fusion_pairs("S2X")
    assert len(again) == 1 and (again[0]["overlap_fraction"], again[0]["layer_path"],
                                again[0]["params"]) == (0.97, "/l/f1b.tif", {})
    assert store.pair("f1")["kind"] == FUSION_PAIR_KIND
    store.delete_fusion_pair("f2")
    assert [p["pair_id"] for p in store.fusion_pairs()] == ["f1"]
    other = store.pairs(kind="change")["pair_id"].to_pylist()
    store.delete_fusion_pair(other[0])  # not a fusion pair: left alone
    assert store.pairs(kind="change").num_rows == 1

    boxes = store.patch_boxes("S2X", 32)
    assert boxes.column_names == ["patch_id", "x_off", "y_off", "size_px", "min_x", "min_y",
                                  "max_x", "max_y", "valid_fraction", "cloud_fraction"]
    assert boxes["patch_id"].to_pylist() == [1, 2, 3, 4]
    assert boxes["y_off"].to_pylist() == [0, 0, 32, 32]
    np.testing.assert_allclose(boxes["valid_fraction"].to_numpy(), [1, 0.75, 1, 0.75])
    cloud = boxes["cloud_fraction"].to_pylist()
    assert cloud[0] is None and cloud[1:] == pytest.approx([0.1, 0.2, 0.3])
    assert store.patch_boxes("S2Y", 64)["patch_id"].to_pylist() == [105, 106, 107, 108]
    assert store.patch_boxes("S2X", 128).num_rows == 0
