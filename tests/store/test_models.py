"""eominer.store.models on every engine of the contract."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.store.rows import T0, as_datetime


def test_models(store):
    assert store.models() == [] and store.latest_model("encoder") is None
    store.add_model("encoder-v1", "encoder", "/m/e1.keras", {"dim": 64, "when": T0},
                    {"loss": 0.5}, ["P1", "P2"])
    store.add_model("fusion-v1", "fusion", "/m/f1.keras", {}, {}, [])
    store.add_model("encoder-v2", "encoder", "/m/e2.keras", {"dim": 128}, {"loss": 0.25},
                    ["P1"])
    enc = store.models("encoder")
    assert [m["model_id"] for m in enc] == ["encoder-v1", "encoder-v2"]
    assert enc[0]["params"] == {"dim": 64, "when": str(T0)}
    assert enc[0]["metrics"] == {"loss": 0.5} and enc[0]["trained_on"] == ["P1", "P2"]
    assert isinstance(as_datetime(enc[0]["created"]), dt.datetime)
    assert len(store.models()) == 3
    assert store.latest_model("encoder")["model_id"] == "encoder-v2"
    assert store.model("fusion-v1")["path"] == "/m/f1.keras"
    assert store.model("fusion-v1")["trained_on"] == []
    assert store.model("nope") is None
    with pytest.raises(Exception, match=r"(?i)constraint|primary|duplicate|unique"):
        store.add_model("fusion-v1", "fusion", "/x", {}, {}, [])
    assert len(store.models()) == 3


def test_feature_blocks_and_applied_annotations(store):
    """What `eominer apply` reads and writes, on every engine: a block of features of one
    product and level, joined over two feature sets; annotations upserted twice leave one
    row per patch; publishing keeps the applied rows of other patches."""
    import numpy as np

    from tests.store.rows import add_product

    a = add_product(store, "P1", T0, first=1, levels=(32, 64), n=4)
    b = add_product(store, "P2", T0, first=100, levels=(32, 64), n=4)
    f1 = store.register_feature_set("one", 1, {}, ["x0", "x1"])
    f2 = store.register_feature_set("two", 1, {}, ["y0"])
    ids = np.asarray(a + b, np.int64)
    X = np.arange(len(ids) * 2, dtype=np.float32).reshape(-1, 2)
    store.write_features(f1, ids, X)
    store.write_features(f2, ids[1:], X[1:, :1] * 10)  # a[0] has no `two` features
    tables = [(f1.table_name, f1.columns), (f2.table_name, f2.columns)]
    t = store.feature_block(tables, "P1", 32, a[0], a[3])
    got = sorted(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), t.column(3).to_pylist()))
    assert got == [(i, float(X[k, 0]), float(X[k, 0]) * 10) for k, i in enumerate(a[:4])][1:]
    assert t.column_names == ["patch_id", "t0__x0", "t0__x1", "t1__y0"]
    assert store.feature_block(tables, "P1", 32, a[1], a[1]).num_rows == 1
    assert store.featured_patch_ids(f2.table_name, "P1", 32).tolist() == a[1:4]
    assert store.featured_patch_ids(f1.table_name, "P2", 64).tolist() == b[4:]

    store.write_annotations("S1", "water", np.asarray(a[:4]), np.full(4, 0.9), np.ones(4, bool),
                            "v1", ["model"] * 4)
    scores = np.asarray([0.1, 0.7, 0.2, 0.8], np.float32)
    for _ in range(2):  # a re-run replaces, never duplicates
        store.upsert_annotations("S1", "water", np.asarray(a[2:4] + b[:2]), scores,
                                 scores >= 0.5, "v2", "apply")
    rows = store.query("SELECT patch_id, score, positive, model_version, source FROM annotations"
                       " ORDER BY patch_id")
    assert [(r[0], round(float(r[1]), 6), bool(r[2]), r[3], r[4]) for r in rows] == [
        (a[0], 0.9, True, "v1", "model"), (a[1], 0.9, True, "v1", "model"),
        (a[2], 0.1, False, "v2", "apply"), (a[3], 0.7, True, "v2", "apply"),
        (b[0], 0.2, False, "v2", "apply"), (b[1], 0.8, True, "v2", "apply")]
    # what `eominer apply` and the app report: rows, positives, products
    assert store.model_annotation_counts("v2", "apply") == (4, 2, 2)
    assert store.model_annotation_counts("v1", "model") == (2, 2, 1)
    assert store.model_annotation_counts("v9", "apply") == (0, 0, 0)
    # publishing the session again: its own patches replaced, the applied others kept
    store.write_annotations("S1", "water", np.asarray(a[:4]), np.full(4, 0.4),
                            np.zeros(4, bool), "v3", ["model"] * 4)
    rows = store.query("SELECT patch_id, model_version, source FROM annotations "
                       "ORDER BY patch_id")
    assert [tuple(r) for r in rows] == [(i, "v3", "model") for i in a[:4]] + [
        (b[0], "v2", "apply"), (b[1], "v2", "apply")]
