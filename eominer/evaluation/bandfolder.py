"""Per-band Sentinel-2 folders (one GeoTIFF or JP2 per band, any S2 naming), read onto
the 10 m grid."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from eominer.errors import SessionError
from eominer.sensors import S2_BAND_ORDER


def band_files(folder: Path) -> dict[str, Path]:
    """Band name -> file of a per-band folder."""
    out = {}
    for p in Path(folder).iterdir():
        m = re.search(r"_(B\d\d|B8A)\.(tif|jp2)$", p.name, re.IGNORECASE)
        if m:
            out[m.group(1).upper()] = p
    return out


def read_bands(folder: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """All 13 S2 bands of a per-band folder, resampled (bilinear) onto the 10 m grid
    of B02 (or onto `shape`): (13, rows, cols) float32 digital numbers."""
    import rasterio
    from rasterio.enums import Resampling

    files = band_files(folder)
    missing = [b for b in S2_BAND_ORDER if b not in files]
    if missing:
        raise SessionError(f"bands {missing} missing in {folder}: expected all 13 S2 bands")
    if shape is None:
        with rasterio.open(files["B02"]) as ds:
            shape = (ds.height, ds.width)
    out = np.empty((len(S2_BAND_ORDER), *shape), np.float32)
    for i, b in enumerate(S2_BAND_ORDER):
        with rasterio.open(files[b]) as ds:
            out[i] = ds.read(1, out_shape=shape, resampling=Resampling.bilinear)
    return out
