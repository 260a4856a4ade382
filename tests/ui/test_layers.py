"""eominer.ui.layers without a browser: the overlay's bytes and the views of a product record."""

from __future__ import annotations

import numpy as np
import pytest


def small_grid():
    from eominer.ui.layers import PatchGrid

    # a 2 x 3 grid; cells 0, 2, 4 and 5 hold session rows 3, 0, 1, 2 (cell 1, 3: none)
    return PatchGrid("P", 10, 2, 3, (0.0, 0.0, 30.0, 20.0),
                     session_rows=np.array([3, 0, 1, 2]), flat=np.array([0, 2, 4, 5]),
                     patch_ids=np.array([13, -1, 10, -1, 11, 12]))


def test_levels_are_one_byte_per_patch_and_zero_where_no_score():
    g = small_grid()
    scores = np.array([0.0, 0.5, 1.0, 0.25], np.float32)
    lv = g.levels(scores)
    assert lv.dtype == np.uint8 and lv.shape == (2, 3)
    # cell 0 <- row 3 (0.25), cell 2 <- row 0 (0.0), cell 4 <- row 1, cell 5 <- row 2
    assert lv.tolist() == [[65, 0, 1], [0, 128, 255]]
    assert not g.levels(None).any()


def test_levels_clip_out_of_range_and_nan_scores():
    g = small_grid()
    lv = g.levels(np.array([-3.0, np.nan, 7.0, 0.5], np.float32))
    assert lv.ravel()[[2, 4, 5, 0]].tolist() == [1, 1, 255, 128]


def small_product(tmp_path, bands=("B02", "B03", "B04"), sensor="S2"):
    """A 30 x 20 px product on disk (10 m pixels, upper-left at (0, 200))."""
    import rasterio
    from rasterio.transform import from_origin

    from eominer.store import Product

    data = np.arange(len(bands) * 20 * 30, dtype=np.uint16).reshape(len(bands), 20, 30) + 1
    path = tmp_path / "ard.tif"
    with rasterio.open(path, "w", driver="GTiff", width=30, height=20, count=len(bands),
                       dtype="uint16", transform=from_origin(0, 200, 10, 10)) as ds:
        ds.write(data)
    product = Product(product_id="P", sensor=sensor, crs="EPSG:32633", footprint_wkt="",
                      source_path="/src/P", ard_path=str(path), width=30, height=20,
                      bands=bands, transform=(10.0, 0.0, 0.0, 0.0, -10.0, 200.0))
    return product, data


def test_views_of_a_product_record(tmp_path):
    from eominer.errors import ProductReadError
    from eominer.ui.layers import colour_bands, product_bounds, read_view

    product, data = small_product(tmp_path)
    assert product_bounds(product) == (0.0, 0.0, 300.0, 200.0)
    assert colour_bands(product, False) == [3, 2, 1]
    with pytest.raises(ProductReadError, match=r"P lacks band\(s\) B08 for the false-colour"):
        colour_bands(product, True)
    view, bounds = read_view(product, [3, 1], (100.0, 200.0), (50.0, 150.0))
    assert np.array_equal(view, data[[2, 0], 5:15, 10:20])
    assert bounds == (100.0, 50.0, 200.0, 150.0)
    (tmp_path / "s1").mkdir()
    sar, _ = small_product(tmp_path / "s1", bands=("VV", "VH"), sensor="S1")
    assert colour_bands(sar, True) == [1, 2, 1]
