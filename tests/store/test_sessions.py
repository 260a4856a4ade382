"""eominer.store.sessions (taxonomy, sessions, labels, rounds, scope, annotations) on every
engine of the contract."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from eominer.errors import StoreError
from eominer.store.base import utcnow
from eominer.store.records import (
    Label,
    SessionParams,
)
from tests.store.rows import T0, add_product, as_datetime, ms, round_record, session_record


def taxonomy_rows() -> list[dict]:
    return [
        {"label_name": "water", "parent": None, "level": 1, "title": "Water"},
        {"label_name": "lake", "parent": "water", "level": 2, "title": "Lake",
         "description": "still water", "created_by": "ana"},
        {"label_name": "built", "parent": None, "level": 1, "title": "Built-up",
         "description": None, "created_by": "ana"},
    ]


def test_taxonomy(store):
    assert store.taxonomy() == [] and store.put_taxonomy([]) == 0
    assert store.put_taxonomy(taxonomy_rows()) == 3
    assert [(r["label_name"], r["parent"], r["level"]) for r in store.taxonomy()] == [
        ("built", None, 1), ("water", None, 1), ("lake", "water", 2)]
    lake = store.taxonomy_label("lake")
    assert lake == {"label_name": "lake", "parent": "water", "level": 2, "title": "Lake",
                    "description": "still water", "created_by": "ana"}
    assert store.taxonomy_label("water")["description"] is None
    assert store.taxonomy_label("nope") is None
    store.put_taxonomy([{"label_name": "lake", "parent": "water", "level": 2,
                         "title": "Lakes", "description": None}])
    assert store.taxonomy_label("lake")["title"] == "Lakes"
    assert store.taxonomy_label("lake")["description"] is None
    assert len(store.taxonomy()) == 3


def test_sessions_records_and_updates(store):
    assert store.session_list() == [] and store.session("s1") is None
    store.insert_session(session_record("s2", "bob", T0 + dt.timedelta(minutes=1)))
    store.insert_session(session_record("s1", "ana", T0))
    store.insert_session(session_record("s3", "ana", T0 + dt.timedelta(minutes=2)))
    assert [r.session_id for r in store.session_list()] == ["s1", "s2", "s3"]
    assert [r.session_id for r in store.session_list("ana")] == ["s1", "s3"]
    assert store.session_list("nobody") == []
    # what was written reads back equal, typed: tuples, SessionParams, datetimes
    assert store.session("s1") == session_record("s1", "ana", T0)
    rec = store.session("s1")
    assert rec.params.model_params == {"C": 0.5} and rec.params.batch_size == 20
    assert rec.product_ids == ("P1",) and isinstance(rec.created, dt.datetime)

    store.update_session("s1", status="published", strategy="uncertain",
                         params=SessionParams(batch_size=8))
    rec = store.session("s1")
    assert (rec.status, rec.strategy, rec.model_kind) == ("published", "uncertain", "logistic")
    assert rec.params == SessionParams(batch_size=8)
    assert rec.updated > T0 and rec.created == T0
    assert store.session("s2").status == "open"
    with pytest.raises(TypeError, match="unexpected keyword argument 'owner'"):
        store.update_session("s1", owner="eve")
    with pytest.raises(ValueError, match="status must be one of .* got 'gone'"):
        store.update_session("s1", status="gone")


def test_labels(store):
    store.insert_session(session_record("s1", "ana", T0))
    store.insert_session(session_record("s2", "ana", T0))
    assert store.session_labels("s1").num_rows == 0 and store.last_label("s1", "ana") is None
    t1, t2, t3 = (T0 + dt.timedelta(seconds=s) for s in (10, 20, 30))
    assert store.put_label("s1", 5, "ana", 1, 0, at=t1) == t1
    store.put_label("s1", np.int64(7), "ana", -1, 0, purpose="test", at=t2)
    store.put_label("s1", 5, "bob", -1, 1, at=t3)
    store.put_label("s2", 9, "ana", 1, 0, at=t3)
    labels = store.session_labels("s1")
    assert labels.column_names == ["patch_id", "user_name", "label", "round", "purpose",
                                   "labelled_at"]
    got = [(r["patch_id"], r["user_name"], r["label"], r["round"], r["purpose"])
           for r in labels.to_pylist()]
    assert got == [(5, "ana", 1, 0, "train"), (7, "ana", -1, 0, "test"),
                   (5, "bob", -1, 1, "train")]
    assert [as_datetime(v) for v in labels["labelled_at"].to_pylist()] == [t1, t2, t3]
    assert store.session("s1").updated == t3

    # a user's new label on a patch replaces the old one
    t4 = T0 + dt.timedelta(seconds=40)
    store.put_label("s1", 5, "ana", -1, 2, at=t4)
    assert store.session_labels("s1").num_rows == 3
    assert store.last_label("s1", "ana") == Label(
        session_id="s1", patch_id=5, user_name="ana", label=-1, round=2, purpose="train",
        labelled_at=t4)
    assert store.last_label("s1", "bob").patch_id == 5
    assert store.last_label("s1", "eve") is None

    store.delete_label("s1", 5, "ana")
    store.delete_label("s1", 5, "ana")  # deleting nothing is fine
    assert store.last_label("s1", "ana").patch_id == 7
    assert store.session_labels("s1").num_rows == 2
    assert store.session_labels("s2").num_rows == 1
    when = store.put_label("s1", 11, "ana", 1, 3)
    assert abs((when - utcnow()).total_seconds()) < 60
    # monetdbe binds and returns timestamps in milliseconds (DuckDB: microseconds)
    assert ms(store.last_label("s1", "ana").labelled_at) == ms(when)


def test_rounds(store):
    store.insert_session(session_record("s1", "ana", T0))
    assert store.session_rounds("s1") == []
    t2 = T0 + dt.timedelta(minutes=5)
    store.insert_round(round_record("s1", 2, t2, ranking_change=0.25, precision_estimate=0.75))
    store.insert_round(round_record("s1", 1, T0 + dt.timedelta(minutes=1), fitted=False,
                                    labels=None))
    rounds = store.session_rounds("s1")
    # every field reads back as written, the params unpacked
    assert rounds == [round_record("s1", 1, T0 + dt.timedelta(minutes=1), fitted=False,
                                   labels=None),
                      round_record("s1", 2, t2, ranking_change=0.25, precision_estimate=0.75)]
    assert rounds[0].ranking_change is None and rounds[0].labels is None
    assert rounds[1].queried == (1, 2, 3) and rounds[1].labels == ((1, 1), (2, -1))
    # the params text is stable (model versions fingerprint it)
    assert rounds[1].params_json() == round_record(
        "s1", 2, t2, ranking_change=0.25, precision_estimate=0.75).params_json()
    # the session's `updated` follows the last inserted round
    assert store.session("s1").updated == T0 + dt.timedelta(minutes=1)
    with pytest.raises(Exception, match=r"(?i)constraint|primary|duplicate|unique"):
        store.insert_round(round_record("s1", 2, t2))
    assert len(store.session_rounds("s1")) == 2
    assert store.session_rounds("s9") == []


def test_scope_patches_and_levels(store):
    assert store.patch_levels([]) == []
    empty = store.scope_patches([], 32)
    assert empty.num_rows == 0 and empty.column_names[:3] == ["patch_id", "product_id",
                                                              "parent_id"]
    add_product(store, "P1", T0, 1)
    add_product(store, "P2", T0 + dt.timedelta(days=3), 101, levels=(32, 64, 128))
    assert store.patch_levels(["P1"]) == [32, 64]
    assert store.patch_levels(["P1", "P2"]) == [32, 64, 128]
    assert store.patch_levels(["nope"]) == []
    t = store.scope_patches(["P2", "P1"], 32)
    assert t.column_names == ["patch_id", "product_id", "parent_id", "x_off", "y_off",
                              "size_px", "min_x", "min_y", "max_x", "max_y", "min_lon",
                              "min_lat", "max_lon", "max_lat", "cloud_fraction"]
    assert t["patch_id"].to_pylist() == [1, 2, 3, 4, 101, 102, 103, 104]
    cloud = t["cloud_fraction"].to_numpy(zero_copy_only=False)
    np.testing.assert_allclose(cloud, [np.nan, 0.1, 0.2, 0.3] * 2, rtol=1e-6)  # NULL: NaN
    assert t["product_id"].to_pylist() == ["P1"] * 4 + ["P2"] * 4
    assert t["parent_id"].to_pylist() == [5, 5, 5, 5, 105, 105, 105, 105]
    assert t["x_off"].to_pylist() == [0, 32, 0, 32] * 2
    np.testing.assert_allclose(t["max_y"].to_numpy(), [1.5, 2.5, 3.5, 4.5] * 2)
    top = store.scope_patches(["P1"], 64)
    assert top["patch_id"].to_pylist() == [5, 6, 7, 8]
    assert top["parent_id"].to_pylist() == [None] * 4
    assert store.scope_patches(["P1"], 128).num_rows == 0
    add_product(store, "P3", T0, 51)  # stored after P2, ids below its: sorted on reading
    t = store.scope_patches(["P2", "P3", "P1"], 32, columns=["patch_id", "max_y"])
    assert t["patch_id"].to_pylist() == [1, 2, 3, 4, 51, 52, 53, 54, 101, 102, 103, 104]
    np.testing.assert_allclose(t["max_y"].to_numpy(), [1.5, 2.5, 3.5, 4.5] * 3)
    cells = store.scope_patches(["P1"], 32, columns=["patch_id", "row", "col"])  # on request
    assert cells.column_names == ["patch_id", "row", "col"]
    assert (cells["row"].to_pylist(), cells["col"].to_pylist()) == ([0, 0, 1, 1], [0, 1, 0, 1])


def test_annotations(store):
    add_product(store, "P1", T0, 1)
    add_product(store, "P2", T0 + dt.timedelta(days=10), 101)
    assert store.positive_annotations("s1").tolist() == []
    assert store.annotated_patches("lake").num_rows == 0
    ids = np.array([1, 2, 3, 101, 102], np.int64)
    scores = np.array([0.9, 0.2, 0.6, 0.8, 0.05], np.float32)
    n = store.write_annotations("s1", "lake", ids, scores, scores > 0.5, "m1",
                                ["model", "model", "label", "model", "model"])
    assert n == 5
    store.write_annotations("s2", "water", np.array([1], np.int64), np.array([0.99]),
                            np.array([True]), "m9", ["model"])
    pos = store.positive_annotations("s1")
    assert pos.dtype == np.int64 and pos.tolist() == [1, 3, 101]
    assert store.positive_annotations("s2").tolist() == [1]
    pub = store.published_annotations("s1", "lake")  # an export's polygons read these
    assert pub.column_names == ["patch_id", "score", "positive", "model_version"]
    assert pub["patch_id"].to_pylist() == [1, 2, 3, 101, 102]
    assert pub["positive"].to_pylist() == [True, False, True, True, False]
    assert set(pub["model_version"].to_pylist()) == {"m1"}
    assert store.published_annotations("s1", "water").num_rows == 0

    t = store.annotated_patches("lake", min_score=0.5)
    assert t.column_names == ["patch_id", "score", "session_id", "model_version",
                              "product_id", "level", "acquired"]
    assert t["patch_id"].to_pylist() == [1, 101, 3]
    np.testing.assert_allclose(t["score"].to_numpy(), [0.9, 0.8, 0.6], rtol=1e-6)
    assert t["product_id"].to_pylist() == ["P1", "P2", "P1"]
    assert t["level"].to_pylist() == [32, 32, 32]
    assert [as_datetime(v) for v in t["acquired"].to_pylist()] == [
        T0, T0 + dt.timedelta(days=10), T0]
    assert store.annotated_patches("lake")["patch_id"].to_pylist() == [1, 101, 3, 2, 102]
    later = store.annotated_patches("lake", 0.0, acquired_after=T0 + dt.timedelta(days=1))
    assert later["patch_id"].to_pylist() == [101, 102]
    assert store.annotated_patches("water")["session_id"].to_pylist() == ["s2"]

    # publishing again replaces the session's annotations for that label only
    store.write_annotations("s1", "lake", np.array([2], np.int64), np.array([0.7]),
                            np.array([True]), "m2", ["model"])
    assert store.positive_annotations("s1").tolist() == [2]
    assert store.annotated_patches("lake")["model_version"].to_pylist() == ["m2"]
    assert store.positive_annotations("s2").tolist() == [1]
    assert store.write_annotations("s1", "lake", np.array([], np.int64), np.array([]),
                                   np.array([], bool), "m3", []) == 0
    assert store.annotated_patches("lake").num_rows == 0


def test_put_labels_in_bulk(store, monkeypatch):
    store.insert_session(session_record("s1", "ana", T0))
    t1, t2 = T0 + dt.timedelta(seconds=10), T0 + dt.timedelta(seconds=20)
    store.put_label("s1", 3, "ana", -1, 0, at=t1)
    store.put_label("s1", 3, "bob", -1, 0, at=t1)
    ids = np.arange(1, 2501, dtype=np.int64)  # more than one chunk of bound parameters
    assert store.put_labels("s1", ids, "ana", 1, 2, at=t2) == t2
    got = {(r["patch_id"], r["user_name"]): (r["label"], r["round"], r["purpose"])
           for r in store.session_labels("s1").to_pylist()}
    assert len(got) == 2501 and got[(3, "ana")] == (1, 2, "train")  # ana's -1 replaced
    assert got[(3, "bob")] == (-1, 0, "train") and got[(2500, "ana")] == (1, 2, "train")
    assert store.session("s1").updated == t2
    def broken(*_):
        raise OSError("disk full")

    monkeypatch.setattr(store, "insert_arrow", broken)  # fails after the DELETE
    with pytest.raises(OSError, match="disk full"):
        store.put_labels("s1", [7, 8], "ana", -1, 3)
    assert store.session_labels("s1").num_rows == 2501
    assert {r["round"] for r in store.session_labels("s1").to_pylist()
            if r["patch_id"] in (7, 8)} == {2}


def test_delete_session_takes_its_rows_only(store):
    """Labels, rounds and annotations of the session go in one transaction; another
    session's stay."""
    add_product(store, "P1", T0, 1)
    for sid in ("S1", "S2"):
        store.insert_session(session_record(sid, "ana", T0))
        store.put_label(sid, 1, "ana", 1, 0)
        store.put_label(sid, 2, "ben", -1, 0)
        store.insert_round(round_record(sid, 1, T0))
        store.upsert_annotations(sid, "lake", np.array([1, 2, 3]), np.ones(3), np.ones(3, bool),
                                 "1", "publish")
    assert store.delete_session("S1") == {"labels": 2, "rounds": 1, "annotations": 3,
                                          "sessions": 1}
    assert store.session("S1") is None and store.session("S2") is not None
    for table, n in (("labels", 2), ("rounds", 1), ("annotations", 3)):
        assert store.query(f"SELECT session_id, COUNT(*) FROM {table} GROUP BY session_id") == [
            ("S2", n)]
    assert store.delete_session("S1") == dict.fromkeys(
        ("labels", "rounds", "annotations", "sessions"), 0)
    # a window that still has S1 open saves nothing more in it
    for write in (lambda: store.put_label("S1", 3, "ana", 1, 0),
                  lambda: store.put_labels("S1", [3, 4], "ana", 1, 0),
                  lambda: store.insert_round(round_record("S1", 2, T0))):
        with pytest.raises(StoreError, match="session S1 is not in .*: it was deleted"):
            write()
    assert store.query("SELECT COUNT(*) FROM labels WHERE session_id = 'S1'")[0][0] == 0
    assert store.query("SELECT COUNT(*) FROM rounds WHERE session_id = 'S1'")[0][0] == 0


def test_activity_and_round_counts_of_the_sessions(store):
    """The Sessions tab's table (labels, rounds, last label per session) and the count a
    label click reads instead of every round."""
    t1, t2 = T0, T0 + dt.timedelta(minutes=5)
    store.insert_session(session_record("s1", "ana", t1))
    store.insert_session(session_record("s2", "bob", t1))
    store.put_label("s1", 5, "ana", 1, 0, at=t1)
    store.put_label("s1", 7, "ana", -1, 0, at=t2)
    store.insert_round(round_record("s1", 1, t2))
    store.insert_round(round_record("s1", 2, t2))
    act = store.session_activity()
    assert {k: v[:2] for k, v in act.items()} == {"s1": (2, 2), "s2": (0, 0)}
    assert as_datetime(act["s1"][2]) == t2 and act["s2"][2] is None
    assert (store.round_count("s1"), store.round_count("s2"), store.round_count("x")) == (
        2, 0, 0)
