"""fusion/sar.py: dB / linear power detection and resampling."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin

from eominer.errors import ProductReadError
from eominer.fusion import sar


def test_db_and_linear_are_told_apart(ben):
    import rasterio

    path = next((ben / "s1-tiny").glob("*/*_VV.tif"))
    with rasterio.open(path) as ds:
        db = ds.read(1)
    assert sar.detect_scale(db) == "db"
    lin = sar.to_linear(db)
    assert sar.detect_scale(lin) == "linear"
    np.testing.assert_allclose(sar.to_db(lin), db, atol=1e-4)
    np.testing.assert_allclose(sar.as_db(lin), db, atol=1e-4)
    with pytest.raises(ProductReadError, match="looks like linear power"):
        sar.require_db(lin, "S1 patch x")
    with pytest.raises(ProductReadError, match="neither dB nor linear"):
        sar.detect_scale(np.full(10, 500.0))


def test_resampling_averages_linear_power_not_db():
    # columns alternate -10 / -20 dB; half a pixel to the right, each output pixel is the
    # 50/50 mix: 10*log10((0.1 + 0.01) / 2) = -12.6 dB, not the dB mean -15
    src = np.tile(np.array([-10.0, -20.0], np.float32), (8, 4))[None]
    crs = CRS.from_epsg(32633)
    out = sar.resample_to_grid(src, from_origin(0, 80, 10, 10), crs,
                               from_origin(5, 80, 10, 10), crs, (8, 7))
    inner = out[0, 2:-2, 1:-1]
    np.testing.assert_allclose(inner, 10 * np.log10(0.055), atol=0.05)
    same = sar.resample_to_grid(src, from_origin(0, 80, 10, 10), crs,
                                from_origin(0, 80, 10, 10), crs, (8, 8))
    np.testing.assert_allclose(same, src, atol=1e-4)
