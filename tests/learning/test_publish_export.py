"""Publish (annotations + SQL), exports opened back, and the cascade, on real OSCD data."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.learning.cascade import cascade
from eominer.learning.session import Session

from .conftest import positives


def _trained(store, oscd_db, level=16, rounds=2, model_kind="logistic"):
    truth = oscd_db["truth"][level]
    s = Session.create(store, "new buildings", "ana", "new_construction",
                       [oscd_db["product"]], level, [oscd_db["fs"]], model_kind=model_kind)
    pos = sorted(positives(truth))
    neg = sorted(set(truth) - set(pos))
    for p in pos[:3]:
        s.label(p, 1, "ana")
    for p in neg[::40][:4]:
        s.label(p, -1, "ana")
    for _ in range(rounds):
        r = s.run_round()
        for p in r.query_ids:
            s.label(int(p), 1 if int(p) in positives(truth) else -1, "ana")
    s.run_round()
    return s


def test_publish_then_sql(learn_store, oscd_db):
    s = _trained(learn_store, oscd_db)
    version = s.publish()
    scores = s.current_scores()
    n = learn_store.query("SELECT COUNT(*) FROM annotations WHERE session_id = ?",
                          (s.session_id,))[0][0]
    assert n == s.data.n == 896
    # the question of the issue, in SQL: label, score threshold, acquisition date
    rows = learn_store.query(
        "SELECT a.patch_id, a.score FROM annotations a JOIN patches p ON p.patch_id = a.patch_id "
        "JOIN products pr ON pr.product_id = p.product_id WHERE a.label_name = ? "
        "AND a.score > ? AND pr.acquired > ? ORDER BY a.patch_id",
        ("new_construction", 0.8, dt.datetime(2016, 5, 1)))
    ids, y = s.labels()
    expected = set(s.patch_ids[scores > 0.8].tolist())
    expected = (expected - set(ids[y == -1].tolist())) | set(ids[y == 1].tolist())
    assert {r[0] for r in rows} == expected and len(expected) > 0
    t = learn_store.annotated_patches("new_construction", 0.8, dt.datetime(2017, 5, 1))
    assert t.num_rows == 0  # the session's product was acquired 2016-05-04
    (mv,) = learn_store.query("SELECT DISTINCT model_version FROM annotations")[0]
    assert mv == version and version.startswith(s.session_id[:8])
    assert learn_store.session(s.session_id).status == s.status == "published"


def test_exports_open_back(learn_store, oscd_db, tmp_path):
    import pyogrio
    import pystac
    import rasterio
    from shapely.geometry import shape

    from eominer.learning import export

    s = _trained(learn_store, oscd_db, model_kind="rbf_svm")
    scores = s.current_scores()
    gj = export.export_geojson(s, tmp_path / "r.geojson")
    fc = json.loads(gj.read_text())
    assert len(fc["features"]) == 896
    f0 = fc["features"][0]
    assert shape(f0["geometry"]).is_valid and f0["properties"]["label"] == "new_construction"
    i0 = int(np.flatnonzero(s.patch_ids == f0["properties"]["patch_id"])[0])
    assert f0["properties"]["score"] == pytest.approx(float(scores[i0]), abs=1e-6)
    back = pyogrio.read_info(gj)
    assert back["features"] == 896

    gp = export.export_gpkg(s, tmp_path / "r.gpkg", min_score=0.5)
    info = pyogrio.read_info(gp)
    assert info["features"] == int((scores >= 0.5).sum()) and info["crs"] == "EPSG:4326"
    meta, _, geoms, fields = pyogrio.raw.read(gp, columns=["score", "label"])
    col = dict(zip(meta["fields"].tolist(), fields))
    assert (col["score"] >= 0.5).all() and set(col["label"]) == {"new_construction"}

    cogs = export.export_cogs(s, tmp_path / "cog")
    with rasterio.open(cogs[oscd_db["product"]]) as ds:
        grid = ds.read(1)
        assert ds.profile["driver"] == "GTiff" and ds.tags()["label"] == "new_construction"
        assert grid.shape == (517 // 16, 461 // 16) and ds.overviews(1) is not None
    assert np.allclose(np.sort(grid.ravel()), np.sort(scores), atol=1e-6)

    items = export.export_stac(s, tmp_path / "stac", cogs)
    item = pystac.Item.from_file(str(items[0]))
    item.validate()
    assert item.properties["eominer:label"] == "new_construction"
    assert item.properties["eominer:labels_used"] == len(s.labels()[0])
    assert item.properties["eominer:feature_sets"] == [oscd_db["fs"]]
    assert "scores" in item.assets


def test_cascade_coarse_to_fine(learn_store, oscd_db):
    coarse = _trained(learn_store, oscd_db, level=32, rounds=1)
    with pytest.raises(SessionError, match="cannot cascade from level 32 to 64"):
        cascade(coarse, 64)
    fine = cascade(coarse, 16)
    pos32 = learn_store.positive_annotations(coarse.session_id)
    assert 0 < len(pos32) < 224
    kids = learn_store.patches(oscd_db["product"], 16)
    parent = kids["parent_id"].fill_null(-1).to_numpy()
    expected = kids["patch_id"].to_numpy()[np.isin(parent, pos32)]
    assert np.array_equal(np.sort(fine.patch_ids), np.sort(expected))
    assert fine.level == 16 and fine.params.parent_session == coarse.session_id
    # the fine session learns on its own, and reopens with the same scope
    truth = oscd_db["truth"][16]
    inside = fine.patch_ids.tolist()
    for p in [p for p in inside if truth[p] > 0.05][:2] + \
            [p for p in inside if truth[p] == 0][:3]:
        fine.label(p, 1 if truth[p] > 0.05 else -1, "ana")
    r = fine.run_round()
    assert r.scores.shape == (len(expected),)
    again = Session.open(learn_store, fine.session_id)
    assert np.array_equal(again.patch_ids, fine.patch_ids)


def test_verification_and_stop_advice(learn_store, oscd_db):
    s = _trained(learn_store, oscd_db)
    sample = s.verification_sample(10)
    scores = s.current_scores()
    rows = s.data.rows(sample)
    assert len(sample) > 0 and (scores[rows] >= 0.5).all()
    truth = oscd_db["truth"][16]
    for p in sample:
        s.label(int(p), 1 if truth[int(p)] > 0.05 else -1, "ana", purpose="verify")
    qual = s.quality()
    ok = sum(truth[int(p)] > 0.05 for p in sample)
    assert qual["n_verified"] == len(sample)
    assert qual["precision"] == pytest.approx(ok / len(sample))
    assert qual["precision_low"] <= qual["precision"] <= qual["precision_high"]
    assert isinstance(qual["stop"], bool) and qual["advice"]
    train_ids, _ = s.labels()
    assert not set(sample.tolist()) & set(train_ids.tolist())  # kept out of training
