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


def test_a_contact_sheet_lays_images_out_row_by_row_with_their_captions():
    from eominer.ui.thumbnails import contact_sheet

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    images = [np.full((20, 30, 4), (*c, 255), np.uint8) for c in colours]
    images[2][:5, :5, 3] = 0  # nodata: grey on the sheet, not white or black
    sheet = contact_sheet(images, ["1. #10", "2. #11", "3. #12"], columns=2, pad=4)
    line = (sheet.shape[0] - 4) // 2 - 20 - 4
    assert sheet.shape[1] == 4 + 2 * (30 + 4) and line > 10
    for k, c in enumerate(colours):
        x, y = 4 + (k % 2) * 34, 4 + (k // 2) * (20 + line + 4)
        assert tuple(sheet[y + 10, x + 10, :3]) == c
    assert tuple(sheet[4 + 20 + line + 4, 4, :3]) == (200, 200, 200)
    caption = sheet[4 + 20:4 + 20 + line, 4:34, :3]
    assert (caption < 128).any() and (caption == 255).mean() > 0.5  # dark text on white
    assert tuple(sheet[4 + 10, 4 + 2 * 34 - 2, :3]) == (255, 255, 255)  # between tiles
    with pytest.raises(ValueError):
        contact_sheet(images, ["one caption short", "x"])
