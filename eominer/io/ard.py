"""The analysis-ready raster: ONE COG per product, every band on the 10 m grid.

Sentinel-2: uint16 digital numbers (reflectance x 10000), nodata 0, ESA band order, for
every processing baseline (the >= 04.00 add-offset is applied at ingest: eominer.io.read).
Sentinel-1: float32 backscatter in dB, nodata NaN, bands VV, VH.
ZSTD-compressed, 512 px tiles, overviews; JPEG2000 is decoded once, at ingest.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from eominer.errors import ProductReadError

COG_OPTIONS = {
    # ZSTD level 1 + horizontal predictor: 5x faster than level 9 for ~10% more bytes
    "compress": "ZSTD", "level": 1, "predictor": 2, "blocksize": 512,
    "overview_resampling": "average", "num_threads": "ALL_CPUS", "bigtiff": "IF_SAFER",
}


def write_cog(src_tmp: str | Path, dest: str | Path) -> None:
    """Copy a tiled GeoTIFF to a COG (overviews built by GDAL's COG driver)."""
    import rasterio.shutil

    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
        rasterio.shutil.copy(str(src_tmp), str(dest), driver="COG", **COG_OPTIONS)


def read_ard(
    path: str | Path, window: tuple[int, int, int, int] | None = None,
    bands: list[int] | None = None, *, boundless: bool = False,
) -> np.ndarray:
    """Read (bands, rows, cols) from an ARD COG. `window` is (x_off, y_off, width, height);
    `bands` are 1-based indexes (default all)."""
    import rasterio
    from rasterio.windows import Window

    p = Path(path)
    if not p.exists():
        raise ProductReadError(
            f"analysis-ready file {p} is missing: re-ingest its product (eominer ingest SOURCE)"
        )
    try:
        with rasterio.open(p) as ds:
            win = Window(*window) if window else None
            fill = np.nan if ds.dtypes[0].startswith("float") else 0
            return ds.read(bands or list(range(1, ds.count + 1)), window=win,
                           boundless=boundless, fill_value=fill)
    except rasterio.errors.RasterioIOError as exc:
        raise ProductReadError(
            f"cannot read analysis-ready file {p}: {exc}; it may be corrupt: re-ingest its product"
        ) from exc


def tmp_path_for(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{os.getpid()}.tmp.tif")
