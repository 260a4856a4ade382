"""When is an optical patch too cloudy to use? Then fusion falls back on Sentinel-1.

A pixel is invalid when any band is no data (0) or when it looks like cloud: bright in
the blue (B02 > 0.2) AND in the short-wave infrared (B11 > 0.2). The SWIR test keeps
snow (bright in the visible, dark in SWIR) and bright soil (dark blue) valid. It is a
simple threshold, not a cloud detector like Sen2Cor's SCL or s2cloudless: where the
patches table has a `cloud_fraction` (from a real mask), that takes precedence.
A patch is cloudy when fewer than `min_valid` (default 0.5) of its pixels are valid.
"""

from __future__ import annotations

import numpy as np

from eominer.fusion.bands import S2_FUSION_BANDS

CLOUD_BLUE = 0.2
CLOUD_SWIR = 0.2
MIN_VALID = 0.5


def valid_mask(s2: np.ndarray) -> np.ndarray:
    """(12, rows, cols) reflectance -> (rows, cols) bool: usable optical pixels."""
    blue = s2[S2_FUSION_BANDS.index("B02")]
    swir = s2[S2_FUSION_BANDS.index("B11")]
    nodata = np.any(~np.isfinite(s2) | (s2 <= 0), axis=0)
    cloud = (blue > CLOUD_BLUE) & (swir > CLOUD_SWIR)
    return ~(nodata | cloud)


def valid_fraction(s2: np.ndarray) -> float:
    return float(valid_mask(s2).mean())


def usable(valid: float, cloud_fraction: float | None = None, min_valid: float = MIN_VALID,
           ) -> bool:
    """Whether the optical patch can be trusted; a recorded cloud fraction takes precedence."""
    if cloud_fraction is not None and np.isfinite(cloud_fraction):
        valid = min(valid, 1.0 - float(cloud_fraction))
    return bool(valid >= min_valid)


def cloud_over(s2: np.ndarray, fraction: float = 1.0, seed: int = 0) -> np.ndarray:
    """A copy of `s2` with a bright, white cloud over `fraction` of the rows (for tests and
    the cloudy-optical evaluation): reflectance 0.5 in the visible/NIR, 0.35 in SWIR."""
    out = s2.copy()
    rows = int(round(fraction * s2.shape[1]))
    start = np.random.default_rng(seed).integers(0, s2.shape[1] - rows + 1)
    out[:, start:start + rows, :] = 0.5
    for b in ("B11", "B12"):
        out[S2_FUSION_BANDS.index(b), start:start + rows, :] = 0.35
    return out
