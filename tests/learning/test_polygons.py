"""Result polygons: areas equal patch count x patch area, adjacent patches merge into one
polygon (holes kept, corners do not join); on a trained OSCD session every format is read
back (pyogrio; GeoParquet with pyarrow where pyogrio's GDAL has no Parquet driver) with its
features, areas and CRS; a STAC Item describes the export; a threshold that leaves
nothing writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import shapely
from pyproj import CRS, Geod
from shapely.geometry import box

from eominer.errors import ExportError
from eominer.learning.polygon_export import export_polygons
from eominer.learning.polygons import Positives, dissolve, published_positives
from eominer.store.records import Product
from tests.cli.process import in_process
from tests.learning.sessions import _trained

SIZE = 32  # px of 10 m: a patch is 320 m x 320 m = 10.24 ha in UTM


def _utm_product() -> Product:
    return Product.create(product_id="UTM", sensor="S2", crs="EPSG:32630",
                          footprint_wkt="POLYGON((0 0,1 0,1 1,0 1,0 0))", source_path="/s",
                          ard_path="/a.tif", width=640, height=640, bands=["B04", "B08"],
                          transform=[10.0, 0.0, 500000.0, 0.0, -10.0, 4_900_000.0])


def _positives(cells: list[tuple[int, int]], scores: list[float]) -> Positives:
    t = pa.table({
        "patch_id": pa.array(np.arange(1, len(cells) + 1), pa.int64()),
        "product_id": pa.array(["UTM"] * len(cells)),
        "x_off": pa.array([c * SIZE for _, c in cells], pa.int32()),
        "y_off": pa.array([r * SIZE for r, _ in cells], pa.int32()),
        "size_px": pa.array([SIZE] * len(cells), pa.int32()),
    })
    return Positives(t, np.asarray(scores), "ranking", "v1", 0.5)


def test_isolated_adjacent_corner_and_ring_patches_in_utm():
    ring = [(10 + dr, 10 + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
    cells = [(0, 0), (5, 5),            # isolated
             (2, 2), (3, 3),            # touch at a corner only: two polygons
             (7, 1), (7, 2), (8, 2),    # an L of three edge-adjacent patches: one polygon
             *ring]                     # eight around an empty cell: one polygon with a hole
    scores = [0.9, 0.8, 0.7, 0.6, 0.9, 0.7, 0.5] + [0.75] * 8
    polys = dissolve(_positives(cells, scores), {"UTM": _utm_product()})
    by_count = sorted((p.patch_count, round(p.area_ha, 9), round(p.mean_score, 9),
                       len(p.geometry.interiors)) for p in polys)
    assert by_count == [(1, 10.24, 0.6, 0), (1, 10.24, 0.7, 0), (1, 10.24, 0.8, 0),
                        (1, 10.24, 0.9, 0), (3, 30.72, 0.7, 0), (8, 81.92, 0.75, 1)]
    for p in polys:
        assert p.geometry.geom_type == "Polygon" and p.geometry.is_valid
        assert p.geometry.area / 1e4 == pytest.approx(p.area_ha, rel=1e-12)  # planar m²
        assert p.area_ha == p.patch_count * 10.24
    first = next(p for p in polys if p.patch_ids == (1,))
    assert first.geometry.bounds == (500000.0, 4_899_680.0, 500320.0, 4_900_000.0)


def _patch_area_ha(store, ids) -> np.ndarray:
    """Geodesic area of each patch's own lon/lat box (OSCD rasters are EPSG:4326)."""
    rows = {r[0]: r[1:] for r in store.query(
        "SELECT patch_id, min_lon, min_lat, max_lon, max_lat FROM patches WHERE patch_id IN "
        f"({', '.join(str(int(i)) for i in ids)})")}
    geod = Geod(ellps="WGS84")
    return np.asarray([abs(geod.geometry_area_perimeter(
        shapely.segmentize(box(*rows[int(i)]), 1.0))[0]) / 1e4 for i in ids])


def _read_back(path):
    """(crs, fields, geometries) of a written file."""
    import pyogrio

    if path.suffix == ".parquet" and "Parquet" not in pyogrio.list_drivers():
        import pyarrow.parquet as pq

        t = pq.read_table(path)
        geo = json.loads(t.schema.metadata[b"geo"])
        col = geo["columns"][geo["primary_column"]]
        assert geo["version"] == "1.1.0" and col["encoding"] == "WKB"
        crs = CRS.from_json_dict(col["crs"])
        crs = "EPSG:4326" if crs.equals(CRS("OGC:CRS84")) else crs.to_string()
        return crs, {c: t[c].to_numpy(zero_copy_only=False) for c in t.column_names
                     if c != "geometry"}, shapely.from_wkb(t["geometry"].to_pylist())
    meta, _, wkb, values = pyogrio.raw.read(path)
    return meta["crs"], dict(zip(meta["fields"].tolist(), values)), shapely.from_wkb(wkb)


def test_session_polygons_in_every_format(learn_store, oscd_db, tmp_path):
    import pystac

    s = _trained(learn_store, oscd_db)
    scores = s.current_scores()
    positive = s.patch_ids[scores >= 0.5]
    paths = export_polygons(s, tmp_path / "out")
    assert [p.suffix for p in paths] == [".geojson", ".gpkg", ".parquet", ".fgb", ".json"]

    from eominer.learning.polygons import session_positives

    polys = dissolve(session_positives(s, 0.5), {oscd_db["product"]:
                                                 learn_store.product(oscd_db["product"])})
    assert sum(p.patch_count for p in polys) == len(positive) == 210
    assert len(polys) == 42 and max(p.patch_count for p in polys) == 139
    isolated = [p for p in polys if p.patch_count == 1]
    merged = [p for p in polys if p.patch_count > 1]
    assert len(isolated) == 30 and len(merged) == 12
    for p in polys:  # a polygon's area is the sum of its patches' areas
        assert p.area_ha == pytest.approx(_patch_area_ha(learn_store, p.patch_ids).sum(),
                                          rel=1e-9)
        at = np.searchsorted(s.patch_ids, p.patch_ids)
        assert p.mean_score == pytest.approx(float(scores[at].astype(np.float64).mean()))
    area = _patch_area_ha(learn_store, isolated[0].patch_ids)[0]
    assert area == pytest.approx(2.6592, abs=1e-4)  # one 16 px patch of Bordeaux, ha

    order = np.argsort([p.area_ha for p in polys])
    for path in paths[:4]:
        crs, fields, geoms = _read_back(path)
        assert crs == "EPSG:4326" and len(geoms) == len(polys) == 42, path
        assert fields["patch_count"].sum() == 210
        assert set(fields["label"]) == {"new_construction"}
        assert set(fields["model_version"]) == {s.model_version()}
        got = np.asarray(fields["area_ha"], np.float64)
        assert np.allclose(np.sort(got), np.asarray([p.area_ha for p in polys])[order],
                           rtol=1e-12), path
        geodesic = np.asarray([abs(Geod(ellps="WGS84").geometry_area_perimeter(g)[0]) / 1e4
                               for g in geoms])
        assert np.allclose(geodesic, got, rtol=1e-7), path  # the geometry has that area
        assert all(g.geom_type == "Polygon" and g.is_valid for g in geoms)

    item = pystac.Item.from_file(str(paths[4]))
    item.validate()
    p = item.properties
    assert (p["eominer:session_id"], p["eominer:label"], p["eominer:threshold"],
            p["eominer:source"], p["eominer:polygons"], p["eominer:patches"]) == (
        s.session_id, "new_construction", 0.5, "ranking", 42, 210)
    assert p["eominer:model_version"] == s.model_version()
    assert p["eominer:feature_sets"] == [oscd_db["fs"]] and p["eominer:model_kind"] == "logistic"
    assert p["eominer:area_ha"] == pytest.approx(sum(x.area_ha for x in polys))
    assert p["start_datetime"].startswith("2016-05-04") and "created" in p
    assert sorted(item.assets) == ["fgb", "geojson", "gpkg", "parquet"]
    assert all((tmp_path / "out" / a.href).exists() for a in item.assets.values())


def test_published_polygons_and_nothing_to_export(learn_store, oscd_db, tmp_path):
    s = _trained(learn_store, oscd_db, model_kind="qbe_mean")  # its scores stay below 1
    scores = s.current_scores()
    ids, y = s.labels()
    answered = np.zeros(len(scores), bool)
    answered[s.data.rows(ids)] = True
    # the ranking holds the answers (1 and 0) and the model's scores below 1 elsewhere
    assert set(scores[answered].tolist()) == {0.0, 1.0}
    assert float(scores[~answered].max()) == pytest.approx(0.9999973, abs=1e-7)
    with pytest.raises(ExportError, match=r"no patch of session \w+ scores >= .*lower "
                                          "--threshold; nothing was written"):
        export_polygons(s, tmp_path / "none", threshold=1.0 + 1e-6)  # above everything
    assert not (tmp_path / "none").exists()
    with pytest.raises(ExportError, match="has published no 'new_construction' annotation"):
        export_polygons(s, tmp_path / "none", published=True)
    assert not (tmp_path / "none").exists()
    s.publish()
    pos = published_positives(learn_store, s.session_id, "new_construction")
    n = learn_store.query("SELECT COUNT(*) FROM annotations WHERE session_id = ? AND positive",
                          (s.session_id,))[0][0]
    assert pos.patches.num_rows == n and pos.source == "published"
    paths = export_polygons(s, tmp_path / "pub", ["gpkg"], published=True)
    _, fields, _ = _read_back(paths[0])
    assert fields["patch_count"].sum() == n and set(fields["source"]) == {"published"}


def test_cli_export_polygons(learn_store, oscd_db, tmp_path, capsys):
    s = _trained(learn_store, oscd_db, model_kind="qbe_mean")  # its scores stay below 1
    n_yes = int((s.labels()[1] == 1).sum())
    db, sid = learn_store.url, s.session_id
    learn_store.close()
    run = in_process(capsys)
    out = tmp_path / "poly"
    r = run(["session", "export", sid, "--db", db, "--to", str(out), "--polygons",
             "--threshold", "0.7", "--format", "fgb", "--format", "stac"], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    assert sorted(p.suffix for p in out.iterdir()) == [".fgb", ".json"]
    crs, fields, geoms = _read_back(next(out.glob("*.fgb")))
    assert crs == "EPSG:4326" and (fields["mean_score"] >= 0.7).all() and len(geoms) > 0
    # at 1.0 only the analyst's "yes" answers: the model alone never scores 1
    r = run(["session", "export", sid, "--db", db, "--to", str(tmp_path / "yes"),
             "--polygons", "--threshold", "1.0", "--format", "fgb"], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    _, fields, _ = _read_back(next((tmp_path / "yes").glob("*.fgb")))
    assert fields["patch_count"].sum() == n_yes and (fields["mean_score"] == 1.0).all()
    r = run(["session", "export", sid, "--db", db, "--to", str(tmp_path / "empty"),
             "--polygons", "--threshold", "1.5"], tmp_path / "ws")
    assert r.returncode == 2 and "1.5" in r.stderr
    assert not (tmp_path / "empty").exists()
    r = run(["session", "export", sid, "--db", db, "--format", "fgb"], tmp_path / "ws")
    assert r.returncode == 2 and "add --polygons" in r.stderr


def test_app_downloads_polygons_with_their_stac_item(learn_store, oscd_db, tmp_path):
    """The Publish tab's polygon downloads (the callbacks the browser's buttons call):
    a zip of the format's file and the STAC Item, equal to the API's export."""
    import zipfile

    from eominer.ui.publish import POLYGON_FORMATS, PublishView
    from eominer.ui.state import AppState

    s = _trained(learn_store, oscd_db)
    state = AppState(learn_store, user="ana")
    state.open_session(s.session_id)
    view = PublishView(state=state)
    assert list(POLYGON_FORMATS.values()) == ["geojson", "gpkg", "parquet", "fgb"]
    for key, button in zip(POLYGON_FORMATS.values(), view._polygon_downloads, strict=True):
        assert button.filename == f"new_construction-{s.session_id}-polygons-{key}.zip"
        buf = button.callback()
        assert buf is not None, state.message
        folder = tmp_path / key
        with zipfile.ZipFile(buf) as z:
            names = sorted(z.namelist())
            z.extractall(folder)
        data = next(folder / n for n in names if not n.endswith(".stac.json"))
        assert data.suffix == {"geojson": ".geojson", "gpkg": ".gpkg", "parquet": ".parquet",
                               "fgb": ".fgb"}[key] and len(names) == 2
        _, fields, geoms = _read_back(data)
        assert len(geoms) == 42 and fields["patch_count"].sum() == 210  # as the API's export
        item = json.loads(next(folder.glob("*.stac.json")).read_text())
        assert item["properties"]["eominer:polygons"] == 42 and list(item["assets"]) == [key]
        assert "42 polygons of 210 patches scoring >= 0.50" in state.message
    below_one = _trained(learn_store, oscd_db, model_kind="qbe_mean")  # scores < 1
    state.open_session(below_one.session_id)
    view.threshold = 1.0  # the model never scores that high: the "yes" answers alone
    n_yes = int((below_one.labels()[1] == 1).sum())
    assert view._polygon_downloads[0].callback() is not None, state.message
    assert f"of {n_yes} patches scoring >= 1.00" in state.message
