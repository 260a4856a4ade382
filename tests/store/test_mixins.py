"""The store mixins (jobs, models, sessions, pairs, fusion) on every engine of the contract:
the same calls give the same values on DuckDB and on monetdbe (MonetDB).

Importable in the Python 3.10 monetdbe side environment: only eominer.store, eominer.errors,
numpy and pyarrow.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from eominer.errors import StoreError
from eominer.store.base import utcnow
from eominer.store.fusion import FUSION_PAIR_KIND
from eominer.store.pairs import pair_id
from eominer.store.records import (
    Label,
    PatchWindow,
    Product,
    RoundRecord,
    SessionParams,
    SessionRecord,
)

T0 = dt.datetime(2024, 5, 1, 10, 30, 0)


def add_product(store, product_id: str, acquired: dt.datetime | None, first: int,
                levels=(32, 64), n: int = 4) -> list[int]:
    """A product with `n` patches per level (ids from `first`), through the store API."""
    product = Product(
        product_id=product_id, sensor="S2", platform="S2A", processing_level="L1C",
        tile_id="T30TXQ", acquired=acquired, crs="EPSG:32630",
        footprint_wkt="POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))", source_path=f"/src/{product_id}",
        ard_path=f"/ard/{product_id}.tif", width=128, height=128, bands=("B04", "B08"),
        transform=(10.0, 0.0, 0.0, 0.0, -10.0, 0.0), source_hash="h" + product_id,
    )
    rows = []
    pid = first
    for k, lv in enumerate(levels):
        for i in range(n):
            rows.append({
                "patch_id": pid, "product_id": product_id, "level": lv, "size_px": lv,
                "row": i // 2, "col": i % 2, "x_off": (i % 2) * lv, "y_off": (i // 2) * lv,
                "min_x": float(i), "min_y": float(i) + 0.5, "max_x": float(i) + 1.0,
                "max_y": float(i) + 1.5, "min_lon": -1.0 + i * 0.01, "min_lat": 44.0,
                "max_lon": -0.99 + i * 0.01, "max_lat": 44.01,
                "valid_fraction": 1.0 - 0.25 * (i % 2),
                "cloud_fraction": None if i == 0 else 0.1 * i,
                "parent_id": None if k == len(levels) - 1 else first + (k + 1) * n + i // 4,
            })
            pid += 1
    schema = pa.schema([
        ("patch_id", pa.int64()), ("product_id", pa.string()), ("level", pa.int32()),
        ("size_px", pa.int32()), ("row", pa.int32()), ("col", pa.int32()),
        ("x_off", pa.int32()), ("y_off", pa.int32()), ("min_x", pa.float64()),
        ("min_y", pa.float64()), ("max_x", pa.float64()), ("max_y", pa.float64()),
        ("min_lon", pa.float64()), ("min_lat", pa.float64()), ("max_lon", pa.float64()),
        ("max_lat", pa.float64()), ("valid_fraction", pa.float32()),
        ("cloud_fraction", pa.float32()), ("parent_id", pa.int64()),
    ])
    store.add_product(product, pa.Table.from_pylist(rows, schema=schema))
    return [r["patch_id"] for r in rows]


def as_datetime(value) -> dt.datetime:
    """A timestamp cell as a naive datetime, whatever Arrow unit the engine returned."""
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item()
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    assert isinstance(value, dt.datetime), type(value)
    return value.replace(tzinfo=None)


def ms(value: dt.datetime) -> dt.datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


# ---- jobs -----------------------------------------------------------------------------
def task(i: int, product: str = "P1") -> dict:
    return {"task_id": f"fsA|{product}|{i}", "product_id": product, "feature_set_id": "fsA",
            "block": i, "n_items": 100 + i}


def test_jobs_schedule_run_resume(store):
    tasks = [task(i) for i in range(3)]
    assert store.task_statuses([]) == {}
    assert store.schedule_tasks("job1", "extract", tasks) == [t["task_id"] for t in tasks]
    assert store.task_statuses([t["task_id"] for t in tasks] + ["nope"]) == {
        t["task_id"]: "pending" for t in tasks}
    assert store.job_summary("job1") == {"pending": 3}

    store.start_task(tasks[0]["task_id"], 1)
    store.start_task(tasks[1]["task_id"], 2)
    assert store.job_summary("job1") == {"pending": 1, "running": 2}
    with store.transaction():
        store.finish_task(tasks[0]["task_id"], "worker-a")
    store.fail_task(tasks[1]["task_id"], "boom " + "x" * 20_000)

    rows = {r["task_id"]: r for r in store.tasks("job1").to_pylist()}
    assert list(rows) == sorted(t["task_id"] for t in tasks)
    done, failed, pending = (rows[t["task_id"]] for t in tasks)
    assert (done["status"], done["worker"], done["error"], done["attempts"]) == (
        "done", "worker-a", None, 1)
    assert as_datetime(done["finished"]) >= as_datetime(done["started"])
    assert (failed["status"], failed["attempts"], failed["worker"]) == ("failed", 2, None)
    assert failed["error"].startswith("boom x") and len(failed["error"]) == 9000
    assert (pending["status"], pending["started"], pending["finished"], pending["error"]) == (
        "pending", None, None, None)
    assert (pending["kind"], pending["product_id"], pending["feature_set_id"],
            pending["block"], pending["n_items"]) == ("extract", "P1", "fsA", 2, 102)
    assert store.job_summary("job1") == {"done": 1, "failed": 1, "pending": 1}
    assert store.job_summary("other") == {}

    # a second run: done tasks are skipped, the others move to it with attempts reset
    more = tasks + [task(3)]
    todo = store.schedule_tasks("job2", "extract", more)
    assert todo == [t["task_id"] for t in more[1:]]
    assert store.job_summary("job2") == {"pending": 3}
    assert store.job_summary("job1") == {"done": 1}
    again = {r["task_id"]: r for r in store.tasks("job2").to_pylist()}
    assert again[tasks[1]["task_id"]]["error"] is None
    assert again[tasks[1]["task_id"]]["attempts"] == 0
    assert store.tasks().num_rows == 4
    assert store.tasks().column_names == [
        "task_id", "job_id", "kind", "product_id", "feature_set_id", "block", "n_items",
        "status", "attempts", "error", "worker", "started", "finished"]
    assert store.tasks("nope").num_rows == 0


def test_jobs_many_tasks_chunked(store):
    tasks = [task(i) for i in range(1203)]
    assert len(store.schedule_tasks("big", "extract", tasks)) == 1203
    statuses = store.task_statuses([t["task_id"] for t in tasks])
    assert len(statuses) == 1203 and set(statuses.values()) == {"pending"}


def test_jobs_marked_in_batches(store):
    """A driver's batch of marks: one statement each way; a task retried within the
    batch keeps its latest attempt; marks never create rows for unknown tasks."""
    tasks = [task(i) for i in range(600)]
    ids = [t["task_id"] for t in tasks]
    store.schedule_tasks("b", "extract", tasks)
    store.start_tasks([(i, 1) for i in ids[:500]] + [(ids[7], 2), ("fsA|nope|0", 1)])
    with store.transaction():
        store.finish_tasks([(i, f"host:{n % 2}") for n, i in enumerate(ids[:400])])
    assert store.job_summary("b") == {"done": 400, "running": 100, "pending": 100}
    assert store.tasks().num_rows == 600
    rows = {r["task_id"]: r for r in store.tasks("b").to_pylist()}
    assert rows[ids[7]]["attempts"] == 2 and rows[ids[8]]["attempts"] == 1
    assert (rows[ids[3]]["worker"], rows[ids[3]]["error"]) == ("host:1", None)
    assert rows[ids[450]]["worker"] is None and rows[ids[450]]["started"] is not None
    assert rows[ids[550]]["started"] is None
    store.start_tasks([])  # nothing to mark: no statement, no error


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


# ---- sessions ---------------------------------------------------------------------------
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


def session_record(sid: str, owner: str, created: dt.datetime, **extra) -> SessionRecord:
    values = {
        "session_id": sid, "name": f"find {sid}", "owner": owner, "concept": "lake",
        "level": 32, "product_ids": ("P1",), "feature_set_ids": ("fsA",),
        "feature_signature": "sig1", "model_kind": "logistic", "strategy": "diverse",
        "params": SessionParams(seed=3, model_params={"C": 0.5}), "status": "open",
        "created": created, "updated": created,
    }
    values.update(extra)
    return SessionRecord(**values)


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


def test_session_records_check_themselves():
    with pytest.raises(ValueError, match=r"unknown session parameter\(s\) \['batch'\]"):
        SessionParams.from_dict({"batch": 5})
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        SessionParams(batch_size=0)
    with pytest.raises(ValueError, match="status must be one of"):
        session_record("s1", "ana", T0, status="paused")
    p = SessionParams.from_dict({"batch_size": 5, "parent_session": "s0"})
    assert p.to_dict() == {"batch_size": 5, "seed": 0, "spatial_weight": 0.0,
                           "model_params": {}, "publish_threshold": 0.5,
                           "parent_session": "s0"}
    assert "parent_session" not in SessionParams().to_dict()


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


def round_record(sid: str, number: int, created: dt.datetime, **extra) -> RoundRecord:
    values = {
        "session_id": sid, "round": number, "model_kind": "logistic", "strategy": "diverse",
        "n_labels": 4 * number, "n_positive": number, "n_negative": 3 * number,
        "seconds": 0.125 * number, "created": created, "queried": (1, 2, 3),
        "fitted": True, "seed": 7, "n": 8, "model_params": {"C": 1.0},
        "quality": {"flip_rate": None, "advice": "label more"}, "notes": ("a note",),
        "labels": ((1, 1), (2, -1)),
    }
    values.update(extra)
    return RoundRecord(**values)


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


def test_products_read_back_typed(store):
    assert store.product_list() == [] and store.product("P1") is None
    add_product(store, "P2", T0 + dt.timedelta(days=3), 101)
    add_product(store, "P1", T0, 1, levels=(32, 64, 128))
    got = store.product("P1")
    assert got.bands == ("B04", "B08") and got.transform == (10.0, 0.0, 0.0, 0.0, -10.0, 0.0)
    assert (got.acquired, got.width, got.n_patches, got.source_hash) == (T0, 128, 12, "hP1")
    assert got.bounds == (0.0, -1280.0, 1280.0, 0.0) and got.band_index("B08") == 2
    assert isinstance(got.ingested, dt.datetime)
    assert [p.product_id for p in store.product_list()] == ["P1", "P2"]
    assert store.product_list()[1].n_patches == 8
    assert store.product("P9") is None
    with pytest.raises(KeyError, match="band B02 missing in product P1: expected one of B04"):
        got.band_index("B02")
    with pytest.raises(ValueError, match="transform must have 6 numbers"):
        Product.create(product_id="X", sensor="S2", crs="c", footprint_wkt="w",
                       source_path="s", ard_path="a", width=1, height=1, bands=["B02"],
                       transform=[1.0, 0.0])


def test_patch_windows(store):
    add_product(store, "P1", T0, 1)
    assert store.patch_windows([]) == []
    assert store.patch_windows([4, 1]) == [PatchWindow(4, "P1", 32, 32, 32),
                                           PatchWindow(1, "P1", 0, 0, 32)]
    assert store.patch_windows([6])[0].square == (64, 0, 64)
    with pytest.raises(StoreError, match=r"patch\(es\) \[99\] are not in"):
        store.patch_windows([1, 99])
    with pytest.raises(ValueError, match="expected offsets >= 0 and a positive size"):
        PatchWindow(1, "P1", -1, 0, 32)


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
                              "min_lat", "max_lon", "max_lat"]
    assert t["patch_id"].to_pylist() == [1, 2, 3, 4, 101, 102, 103, 104]
    assert t["product_id"].to_pylist() == ["P1"] * 4 + ["P2"] * 4
    assert t["parent_id"].to_pylist() == [5, 5, 5, 5, 105, 105, 105, 105]
    assert t["x_off"].to_pylist() == [0, 32, 0, 32] * 2
    np.testing.assert_allclose(t["max_y"].to_numpy(), [1.5, 2.5, 3.5, 4.5] * 2)
    top = store.scope_patches(["P1"], 64)
    assert top["patch_id"].to_pylist() == [5, 6, 7, 8]
    assert top["parent_id"].to_pylist() == [None] * 4
    assert store.scope_patches(["P1"], 128).num_rows == 0


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


# ---- pairs --------------------------------------------------------------------------------
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


# ---- fusion -------------------------------------------------------------------------------
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
