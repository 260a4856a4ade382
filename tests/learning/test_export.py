"""Exports of a trained session, opened back, on real OSCD data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.learning.sessions import _trained


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
    # the analyst's answers as they were given: a "no" is not exported as positive
    ids, y = s.round_labels(s.rounds()[-1])
    said = dict(zip(ids.tolist(), y.tolist()))
    props = [f["properties"] for f in fc["features"] if f["properties"]["patch_id"] in said]
    assert len(props) == len(said) and {-1, 1} <= set(said.values())
    for pr in props:
        yes = said[pr["patch_id"]] == 1
        assert (pr["source"], pr["score"], pr["positive"]) == ("label", float(yes), yes), pr
    # a "no" given after the last round, to the best patch not answered yet: exported
    # as said, and left out of the result polygons at any threshold
    from eominer.learning.polygons import session_positives

    free = np.setdiff1d(np.arange(len(scores)), s.data.rows(ids))
    best = int(s.patch_ids[free[np.argmax(scores[free])]])
    assert scores[free].max() >= 0.5
    s.label(best, -1, "ana")
    late = export.export_geojson(s, tmp_path / "late.geojson")
    pr = next(f["properties"] for f in json.loads(late.read_text())["features"]
              if f["properties"]["patch_id"] == best)
    assert (pr["source"], pr["score"], pr["positive"]) == ("label", 0.0, False)
    assert best not in set(session_positives(s, 0.5).patches["patch_id"].to_pylist())
    assert s.result_scores()[s.data.rows([best])[0]] == 0.0 and s.current_scores()[
        s.data.rows([best])[0]] >= 0.5  # the round's ranking is the round's

    gp = export.export_gpkg(s, tmp_path / "r.gpkg", min_score=0.5)
    info = pyogrio.read_info(gp)
    assert info["features"] == int((s.result_scores() >= 0.5).sum()) == int(
        (scores >= 0.5).sum()) - 1 and info["crs"] == "EPSG:4326"  # less the late "no"
    meta, _, geoms, fields = pyogrio.raw.read(gp, columns=["score", "label"])
    col = dict(zip(meta["fields"].tolist(), fields))
    assert (col["score"] >= 0.5).all() and set(col["label"]) == {"new_construction"}

    cogs = export.export_cogs(s, tmp_path / "cog")
    with rasterio.open(cogs[oscd_db["product"]]) as ds:
        grid = ds.read(1)
        assert ds.profile["driver"] == "GTiff" and ds.tags()["label"] == "new_construction"
        assert grid.shape == (517 // 16, 461 // 16) and ds.overviews(1) is not None
    assert np.allclose(np.sort(grid.ravel()), np.sort(s.result_scores()), atol=1e-6)

    items = export.export_stac(s, tmp_path / "stac", cogs)
    item = pystac.Item.from_file(str(items[0]))
    item.validate()
    # the score map and its Item share a stem: <product>-<concept>-<session>
    assert cogs[oscd_db["product"]].stem == items[0].stem == item.id == (
        f"{oscd_db['product']}-new_construction-{s.session_id}")
    assert item.properties["eominer:label"] == "new_construction"
    assert item.properties["eominer:labels_used"] == len(s.labels()[0])
    assert item.properties["eominer:feature_sets"] == [oscd_db["fs"]]
    assert "scores" in item.assets


def test_an_interrupted_export_leaves_the_earlier_one_whole(learn_store, oscd_db, tmp_path,
                                                            monkeypatch):
    """Ctrl-C while a GeoPackage, a score COG or a polygon file is written: the export of
    before is still there, byte for byte, and no hidden file is left (the GeoPackage was
    deleted first, and a COG copied straight to its name)."""
    import pyogrio.raw
    import rasterio.shutil

    from eominer.learning import export
    from eominer.learning.polygon_export import export_polygons

    s = _trained(learn_store, oscd_db, model_kind="rbf_svm")
    out = tmp_path / "exports"
    written = [export.export_gpkg(s, out / "r.gpkg"), *export.export_cogs(s, out).values(),
               *export_polygons(s, out, ["fgb"], stac=False)]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == sorted(p.name for p in written) and len(before) == 3

    def stopped(real):
        def call(*args, **kwargs):
            real(*args, **kwargs)  # the file written whole, then Ctrl-C before the rename
            raise KeyboardInterrupt
        return call

    for module, name, again in (
            (pyogrio.raw, "write", lambda: export.export_gpkg(s, out / "r.gpkg")),
            (rasterio.shutil, "copy", lambda: export.export_cogs(s, out)),
            (pyogrio.raw, "write", lambda: export_polygons(s, out, ["fgb"], stac=False))):
        with monkeypatch.context() as m:
            m.setattr(module, name, stopped(getattr(module, name)))
            with pytest.raises(KeyboardInterrupt):
                again()
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_positive_in_the_downloads_is_what_publishing_writes(learn_store, oscd_db, tmp_path):
    """The `positive` field of the GeoJSON and GeoPackage follows a threshold (default the
    session's publish threshold, the last one published at) as `publish` decides it: at
    0.7 the download and the published annotations agree patch by patch, and differ from
    0.5's (the old exports said positive at 0.5 whatever was published)."""
    import pyogrio.raw

    from eominer.learning import export

    s = _trained(learn_store, oscd_db, model_kind="rbf_svm")
    scores = s.result_scores()
    assert ((scores >= 0.5) & (scores < 0.7)).sum() > 0  # the thresholds differ here
    s.publish(0.7)
    rows = learn_store.query("SELECT patch_id, positive FROM annotations WHERE "
                             "session_id = ? AND model_version = ?",
                             (s.session_id, s.model_version()))
    published = {int(p): bool(v) for p, v in rows}
    assert len(published) == len(scores) == 896

    def positives(path) -> dict[int, bool]:
        return {f["properties"]["patch_id"]: f["properties"]["positive"]
                for f in json.loads(path.read_text())["features"]}

    at_07 = positives(export.export_geojson(s, tmp_path / "a.geojson", threshold=0.7))
    assert at_07 == published
    at_05 = positives(export.export_geojson(s, tmp_path / "b.geojson", threshold=0.5))
    assert at_05 != published and sum(at_05.values()) > sum(at_07.values())
    # publishing at 0.7 made it the session's threshold: the default download agrees
    assert s.params.publish_threshold == 0.7
    assert positives(export.export_geojson(s, tmp_path / "d.geojson")) == published
    meta, _, _, fields = pyogrio.raw.read(
        export.export_gpkg(s, tmp_path / "c.gpkg", threshold=0.7),
        columns=["patch_id", "positive"])
    col = dict(zip(meta["fields"].tolist(), fields))
    assert dict(zip(col["patch_id"].tolist(), col["positive"].astype(bool).tolist())) == (
        published)
