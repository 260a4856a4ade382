"""eominer.io.ard: the analysis-ready COG that ingest writes, read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from eominer.ingest import ingest_paths
from eominer.io.ard import read_ard


def test_ard_cog_is_the_10m_grid_with_every_band(store, shared_data: Path):
    src = shared_data / "oscd/images/bordeaux/imgs_1"
    (r,) = ingest_paths(store, [src])
    with rasterio.open(r.ard_path) as ds:
        assert ds.count == 13 and (ds.width, ds.height) == (461, 517)
        assert ds.profile["compress"].lower() == "zstd" and ds.profile["tiled"]
        assert ds.overviews(1) or max(ds.width, ds.height) <= 512
        assert ds.descriptions[3] == "B04" and ds.nodata == 0
        assert ds.crs.to_epsg() == 4326
    b04 = next(src.glob("*_B04.tif"))
    with rasterio.open(b04) as ds:
        np.testing.assert_array_equal(read_ard(r.ard_path, bands=[4])[0], ds.read(1))
    # 20 m band resampled onto the 10 m grid: same mean radiometry within 1%
    b11 = next(src.glob("*_B11.tif"))
    with rasterio.open(b11) as ds:
        native = ds.read(1).astype(float).mean()
    assert read_ard(r.ard_path, bands=[12])[0].mean() == pytest.approx(native, rel=0.01)
