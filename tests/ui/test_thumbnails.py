"""eominer.ui.thumbnails without a browser: windows read from a real GeoTIFF."""

from __future__ import annotations

import numpy as np
import pytest


def test_read_windows_pads_outside_the_raster_with_nodata(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from eominer.ui.thumbnails import read_windows

    data = np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30) + 1
    path = tmp_path / "ard.tif"
    with rasterio.open(path, "w", driver="GTiff", width=30, height=20, count=3,
                       dtype="uint16", transform=from_origin(0, 200, 10, 10)) as ds:
        ds.write(data)
    inside, corner = read_windows(str(path), [3, 1], [(5, 4, 8), (26, -2, 6)])
    assert np.array_equal(inside, data[[2, 0], 4:12, 5:13])
    assert corner.shape == (2, 6, 6)
    assert np.array_equal(corner[:, 2:, :4], data[[2, 0], 0:4, 26:30])
    assert not corner[:, :2, :].any() and not corner[:, :, 4:].any()


def test_read_windows_names_a_missing_file(tmp_path):
    from eominer.errors import ProductReadError
    from eominer.ui.thumbnails import read_windows

    with pytest.raises(ProductReadError, match=r"gone\.tif is missing: re-ingest"):
        read_windows(str(tmp_path / "gone.tif"), [1], [(0, 0, 4)])
