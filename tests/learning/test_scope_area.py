"""A session's scope by area of interest (GeoJSON, GeoPackage in UTM, KML) and by SQL WHERE
over `scope_rows`, on the real OSCD Bordeaux store; each checked against a brute-force
shapely / numpy reference over every patch; reopened sessions keep the scope; bad input
is refused before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon, box

from eominer.errors import AOIError, ReadOnlySQLError, SessionError, UserSQLError
from eominer.learning.session import Session
from tests.cli.process import in_process
from tests.learning.sessions import _create

LEVEL = 16
# a triangle over part of Bordeaux (lon/lat): its bbox holds many more patches than it
TRIANGLE = Polygon([(-0.598, 44.8135), (-0.558, 44.8200), (-0.585, 44.8650)])


def _patches(store, product):
    t = store.query_arrow(
        "SELECT patch_id, min_lon, min_lat, max_lon, max_lat, valid_fraction, cloud_fraction "
        "FROM patches WHERE product_id = ? AND level = ? ORDER BY patch_id", (product, LEVEL))
    return {c: t[c].to_numpy(zero_copy_only=False) for c in t.column_names}


def _inside(p, geom) -> list[int]:
    """Brute force: one shapely box per patch, tested one by one."""
    return [int(i) for i, a, b, c, d in zip(p["patch_id"], p["min_lon"], p["min_lat"],
                                             p["max_lon"], p["max_lat"])
            if box(a, b, c, d).intersects(geom)]


def _geojson(path, geoms, crs=None):
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": g.__geo_interface__} for g in geoms]}
    if crs:
        fc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(fc))
    return path


def _write(path, geoms, driver, crs):
    import pyogrio.raw

    pyogrio.raw.write(str(path), np.asarray(shapely.to_wkb(geoms), dtype=object), [], [],
                      crs=crs, geometry_type=geoms[0].geom_type, driver=driver)
    return path


def _to_utm(geom):
    from pyproj import Transformer

    t = Transformer.from_crs("EPSG:4326", "EPSG:32630", always_xy=True)
    return shapely.transform(shapely.segmentize(geom, 0.0005),
                             lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def test_aoi_files_select_patches_by_their_geometry(learn_store, oscd_db, tmp_path):
    pid = oscd_db["product"]
    p = _patches(learn_store, pid)
    expected = _inside(p, TRIANGLE)
    in_bbox = _inside(p, box(*TRIANGLE.bounds))
    assert (len(p["patch_id"]), len(expected), len(in_bbox)) == (896, 379, 720)

    s = _create(learn_store, oscd_db, aoi=_geojson(tmp_path / "t.geojson", [TRIANGLE]))
    assert s.patch_ids.tolist() == expected  # exactly the boxes the polygon meets
    stored = shapely.from_wkt(s.params.aoi_wkt)
    assert stored.equals_exact(TRIANGLE, 1e-7)
    again = Session.open(learn_store, s.session_id)
    assert again.patch_ids.tolist() == expected and again.params.aoi_wkt == s.params.aoi_wkt

    # the same triangle drawn in UTM 30N in a GeoPackage: reprojected (densified) to lon/lat
    gpkg = _write(tmp_path / "t.gpkg", [_to_utm(TRIANGLE)], "GPKG", "EPSG:32630")
    u = _create(learn_store, oscd_db, aoi=gpkg)
    back = shapely.from_wkt(u.params.aoi_wkt)
    assert back.symmetric_difference(TRIANGLE).area / TRIANGLE.area < 1e-6
    assert u.patch_ids.tolist() == _inside(p, back)
    assert len(set(u.patch_ids.tolist()) ^ set(expected)) <= 2

    # KML (always lon/lat), two polygons in two placemarks: their union
    second = box(-0.596, 44.857, -0.590, 44.862)
    kml = _write(tmp_path / "t.kml", [TRIANGLE, second], "KML", "EPSG:4326")
    k = _create(learn_store, oscd_db, aoi=kml)
    assert k.patch_ids.tolist() == _inside(p, TRIANGLE.union(second))
    assert k.data.n > s.data.n
    # `session show` gives the area's lon/lat box and its polygons
    assert s.settings()["scope"] == {"aoi": {"bounds_lonlat": list(np.round(
        TRIANGLE.bounds, 6)), "polygons": 1}}
    assert k.settings()["scope"]["aoi"]["polygons"] == 2


def _set_clouds(store, product):
    store.execute("UPDATE patches SET cloud_fraction = CAST(patch_id % 10 AS REAL) / 10, "
                  "valid_fraction = CASE WHEN patch_id % 13 = 0 THEN 0.5 ELSE 1 END "
                  "WHERE product_id = ?", (product,))


def test_where_over_scope_rows(learn_store, oscd_db):
    pid, pid2 = oscd_db["product"], oscd_db["product2"]
    _set_clouds(learn_store, pid)
    p = _patches(learn_store, pid)
    ids = p["patch_id"].astype(np.int64)
    clear = ids[(p["cloud_fraction"] < np.float32(0.1)) & (p["valid_fraction"] > 0.9)]
    s = _create(learn_store, oscd_db, where="cloud_fraction < 0.1 AND valid_fraction > 0.9")
    assert s.patch_ids.tolist() == clear.tolist() and len(clear) == 83
    assert s.params.where == "cloud_fraction < 0.1 AND valid_fraction > 0.9"
    assert Session.open(learn_store, s.session_id).patch_ids.tolist() == clear.tolist()

    # product facts: a date range, the tile, the level, the processing level, the orbit
    both = Session.create(
        learn_store, "may 2016", "ana", "new_construction", [pid, pid2], LEVEL, [oscd_db["fs"]],
        where="acquired BETWEEN TIMESTAMP '2016-05-01' AND TIMESTAMP '2016-05-31 23:59:59' "
              "AND tile_id = '30TXQ' AND level = 16 AND processing_level = 'L1C' "
              "AND orbit_direction IS NULL")
    assert both.patch_ids.tolist() == ids.tolist() and both.missing == 0
    with pytest.raises(SessionError, match=r"keeps none of the 1792 patches.*loosen it"):
        Session.create(learn_store, "2018", "ana", "new_construction", [pid, pid2], LEVEL,
                       [oscd_db["fs"]], where="acquired >= DATE '2018-01-01'")

    # "not already labelled yes in session A" (labels), then "not published positive" (annotations)
    a = _create(learn_store, oscd_db)
    yes = ids[:40:4].tolist()
    for i in yes:
        a.label(i, 1, "ana")
    b = _create(learn_store, oscd_db, where=(
        "NOT EXISTS (SELECT 1 FROM labels l WHERE l.patch_id = scope_rows.patch_id "
        f"AND l.session_id = '{a.session_id}' AND l.label = 1)"))
    assert b.patch_ids.tolist() == [i for i in ids.tolist() if i not in yes]
    a.label(int(ids[1]), -1, "ana")
    a.run_round()
    a.publish()
    published = {r[0] for r in learn_store.query(
        "SELECT patch_id FROM annotations WHERE session_id = ? AND positive", (a.session_id,))}
    c = _create(learn_store, oscd_db, where=(
        "NOT EXISTS (SELECT 1 FROM annotations a WHERE a.patch_id = scope_rows.patch_id "
        f"AND a.label_name = 'new_construction' AND a.positive AND a.session_id = '{a.session_id}')"))
    assert c.patch_ids.tolist() == [i for i in ids.tolist() if i not in published]
    assert set(yes) <= published


def _n_sessions(store) -> int:
    return store.query("SELECT COUNT(*) FROM sessions")[0][0]


@pytest.mark.parametrize(("where", "error", "match"), [
    ("1 = 1; DELETE FROM patches", ReadOnlySQLError, "one statement at a time"),
    ("patch_id IN (SELECT patch_id FROM patches) OR EXISTS (UPDATE patches SET level = 1)",
     ReadOnlySQLError, "'UPDATE' is not allowed here"),
    ("EXISTS (SELECT * FROM read_csv('/etc/passwd'))", ReadOnlySQLError,
     r"access local files \(read_csv\)"),
    ("valid_fraction >> AND 0.9", UserSQLError, r"WHERE 'valid_fraction >> AND 0.9' over "
     r"scope_rows.*SQL error: (Parser Error|syntax error)"),  # DuckDB's / MonetDB's words
    ("no_such_column > 1", UserSQLError, "no_such_column"),
    ("(valid_fraction > 0.9", UserSQLError, "unbalanced parentheses"),
])
def test_bad_where_is_refused_and_creates_nothing(learn_store, oscd_db, where, error, match):
    before = _n_sessions(learn_store)
    n = learn_store.query("SELECT COUNT(*) FROM patches")[0][0]
    with pytest.raises(error, match=match):
        _create(learn_store, oscd_db, where=where)
    assert _n_sessions(learn_store) == before
    assert learn_store.query("SELECT COUNT(*), MIN(level) FROM patches")[0] == (n, 16)


def test_bad_aoi_is_refused_and_creates_nothing(learn_store, oscd_db, tmp_path):
    from shapely.geometry import LineString, Point

    before = _n_sessions(learn_store)
    pts = _geojson(tmp_path / "points.geojson", [Point(-0.58, 44.84), Point(-0.57, 44.83),
                                                  LineString([(0, 0), (1, 1)])])
    with pytest.raises(AOIError, match=r"has no polygon \(1 LineString, 2 Point\)"):
        _create(learn_store, oscd_db, aoi=pts)
    # a shapefile in UTM whose .prj is missing: no way to know where it is
    shp = _write(tmp_path / "utm.shp", [_to_utm(TRIANGLE)], "ESRI Shapefile", "EPSG:32630")
    shp.with_suffix(".prj").unlink()
    with pytest.raises(AOIError, match=r"has no CRS \(a shapefile without its .prj\?\).*put "
                                       r"the .prj beside the .shp"):
        _create(learn_store, oscd_db, aoi=shp)
    # far from Bordeaux (Paris): says so, names the patches' extent
    paris = _geojson(tmp_path / "paris.geojson", [box(2.30, 48.80, 2.40, 48.90)])
    with pytest.raises(SessionError, match=r"the area of interest \(paris.geojson, lon 2.3000"
                                           r".*intersects none of the 896 patches at level 16 "
                                           r".*they cover lon -0.6010..-0.5523"):
        _create(learn_store, oscd_db, aoi=paris)
    assert _n_sessions(learn_store) == before


def test_cli_create_with_aoi_and_where(learn_store, oscd_db, tmp_path, capsys):
    pid = oscd_db["product"]
    _set_clouds(learn_store, pid)
    p = _patches(learn_store, pid)
    inside = set(_inside(p, TRIANGLE))
    ids = p["patch_id"].astype(np.int64)
    expected = [int(i) for i, c in zip(ids, p["cloud_fraction"])
                if int(i) in inside and c < np.float32(0.5)]
    db = learn_store.url
    learn_store.close()
    aoi = _geojson(tmp_path / "t.geojson", [TRIANGLE])
    run = in_process(capsys)
    base = ["session", "create", "--db", db, "--name", "tri", "--owner", "ana", "--concept",
            "new_construction", "--product", pid, "--level", str(LEVEL), "--features",
            oscd_db["fs"]]
    r = run([*base, "--aoi", str(aoi), "--where", "cloud_fraction < 0.5"], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    assert (f"note: the area of interest and the WHERE keep {len(expected)} of the 896 patches "
            "at level 16") in r.stderr
    from eominer.store import open_store

    with open_store(db) as store:
        s = Session.open(store, r.stdout.strip())
        assert s.patch_ids.tolist() == expected
        n = _n_sessions(store)
    far = _geojson(tmp_path / "far.geojson", [box(2.30, 48.80, 2.40, 48.90)])
    r = run([*base, "--aoi", str(far)], tmp_path / "ws")
    assert r.returncode == 1 and "intersects none of the 896 patches" in r.stderr
    assert "the area of interest (far.geojson," in r.stderr  # named as the analyst gave it
    r = run([*base, "--where", "DROP TABLE patches"], tmp_path / "ws")
    assert r.returncode == 1 and "'DROP' is not allowed here" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    with open_store(db) as store:
        assert _n_sessions(store) == n


def test_stored_aoi_fits_the_session_params(tmp_path):
    from shapely.geometry import Point

    from eominer.learning.aoi import MAX_WKT_CHARS, as_aoi, stored_aoi

    circle = Point(-0.58, 44.84).buffer(0.02, quad_segs=1000)  # 4000 vertices
    small = stored_aoi(as_aoi(TRIANGLE))
    assert small.note is None and small.wkt == "POLYGON ((-0.598 44.8135, -0.558 44.82, " \
        "-0.585 44.865, -0.598 44.8135))"
    big = stored_aoi(as_aoi(circle))
    assert len(shapely.to_wkt(circle, rounding_precision=7)) > MAX_WKT_CHARS >= len(big.wkt)
    assert big.note.startswith("area of interest simplified from 4001 to ")
    assert big.geometry.symmetric_difference(circle).area / circle.area < 1e-3
    text = tmp_path / "notes.txt"
    text.write_text("not a map")
    with pytest.raises(AOIError, match=r"cannot read the area of interest .*notes.txt"):
        as_aoi(text)
    with pytest.raises(AOIError, match="not in longitude/latitude"):
        as_aoi(box(500000, 4900000, 501000, 4901000))
