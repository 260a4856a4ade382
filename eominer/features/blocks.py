"""Reading a block of patch rows (plus a halo) from an ARD COG, in physical units.

S2 ARD holds digital numbers (reflectance x 10000, nodata 0): returned as float32
reflectance with NaN for nodata. S1 ARD holds float32 dB with NaN nodata: returned
as is. The halo comes from the neighbouring rows where the raster has them and is
mirrored at the raster's edges (half-sample symmetric, `numpy.pad(mode="symmetric")`,
which is what `scipy.ndimage`'s and scikit-image's "reflect" mode mean), so filters
computed block by block equal filters computed on the whole band.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eominer.errors import MissingBandError
from eominer.sensors import S2_REFLECTANCE_SCALE


def to_physical(raw: np.ndarray, sensor: str) -> np.ndarray:
    """DN -> reflectance with NaN nodata (S2); dB unchanged (S1)."""
    if sensor == "S2":
        out = raw.astype(np.float32) * np.float32(1.0 / S2_REFLECTANCE_SCALE)
        out[raw == 0] = np.nan
        return out
    return raw.astype(np.float32, copy=False)


def band_indexes(product_bands: Sequence[str], wanted: Sequence[str], product_id: str,
                 ) -> list[int]:
    missing = [b for b in wanted if b not in product_bands]
    if missing:
        raise MissingBandError(
            f"product {product_id} lacks band(s) {', '.join(missing)}: its ARD has "
            f"{', '.join(product_bands)}"
        )
    return [list(product_bands).index(b) + 1 for b in wanted]


def read_block(ard_path: str | Path, sensor: str, indexes: list[int], y0: int, y1: int,
               halo: int, width: int, height: int) -> np.ndarray:
    """(bands, y1 - y0 + 2 halo, width + 2 halo) float32 for raster rows [y0, y1)."""
    from eominer.io.ard import read_ard

    r0, r1 = max(0, y0 - halo), min(height, y1 + halo)
    raw = read_ard(ard_path, window=(0, r0, width, r1 - r0), bands=indexes)
    data = to_physical(raw, sensor)
    if halo == 0:
        return data
    pad = ((0, 0), (halo - (y0 - r0), halo - (r1 - y1)), (halo, halo))
    return np.pad(data, pad, mode="symmetric")
