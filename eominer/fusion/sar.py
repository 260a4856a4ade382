"""Sentinel-1 backscatter scale (dB vs. linear power) and resampling onto a Sentinel-2 grid.

Fusion works in dB (BigEarthNet and eominer's S1 ARD store sigma0 in dB). A product in
linear power has values in [0, ~1] (rarely above 10 even on strong reflectors); in dB the
bulk lies in about [-50, 10] and is mostly negative. `detect_scale` decides from the
median and the share of negative values; `require_db` refuses linear input with a fix.
Resampling is bilinear on LINEAR power (averaging dB would average logarithms, which
biases dark areas), converted back to dB afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from eominer.errors import GridMismatchError, ProductReadError

if TYPE_CHECKING:
    from rasterio.crs import CRS
    from rasterio.transform import Affine

Scale = Literal["db", "linear"]
_EPS = 1e-6  # linear floor before log10: -60 dB, below any S1 noise floor


def detect_scale(values: np.ndarray) -> Scale:
    """'db' or 'linear' from the finite, non-zero values of an S1 array."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v != 0)]
    if v.size == 0:
        raise ProductReadError("S1 array has no finite non-zero values: cannot tell dB from linear")
    negative = float(np.mean(v < 0))
    med = float(np.median(v))
    if negative > 0.5 and -60.0 <= med <= 10.0:
        return "db"
    if negative == 0.0 and med <= 10.0:
        return "linear"
    raise ProductReadError(
        f"S1 values are neither dB nor linear power: median {med:.3g}, {negative:.0%} negative "
        "(dB is mostly negative within [-50, 10]; linear power is >= 0 and mostly <= 1)"
    )


def to_db(linear: np.ndarray) -> np.ndarray:
    return (10.0 * np.log10(np.maximum(np.asarray(linear, np.float64), _EPS))).astype(np.float32)


def to_linear(db: np.ndarray) -> np.ndarray:
    return np.power(10.0, np.asarray(db, np.float64) / 10.0).astype(np.float32)


def require_db(values: np.ndarray, what: str = "S1 input") -> np.ndarray:
    """Return `values` as float32 dB; linear power is refused with the conversion to apply."""
    if detect_scale(values) == "linear":
        raise ProductReadError(
            f"{what} looks like linear power (all values >= 0, median "
            f"{float(np.nanmedian(values)):.3g}), but fusion expects backscatter in dB: convert "
            "with 10*log10(x) (eominer.fusion.sar.to_db) or pass scale='linear' to convert"
        )
    return np.asarray(values, dtype=np.float32)


def as_db(values: np.ndarray, scale: Scale | Literal["auto"] = "auto") -> np.ndarray:
    """dB from dB or linear input; 'auto' detects the scale (see `detect_scale`)."""
    kind = detect_scale(values) if scale == "auto" else scale
    return to_db(values) if kind == "linear" else np.asarray(values, dtype=np.float32)


def resample_to_grid(
    s1_db: np.ndarray, src_transform: Affine, src_crs: CRS, dst_transform: Affine, dst_crs: CRS,
    dst_shape: tuple[int, int],
) -> np.ndarray:
    """(bands, rows, cols) dB on the S1 grid -> (bands, *dst_shape) dB on the S2 grid.

    Bilinear on linear power, NaN where the S1 product does not cover the S2 grid.
    """
    from rasterio.warp import Resampling, reproject

    if s1_db.ndim != 3:
        raise GridMismatchError(f"S1 array must be (bands, rows, cols), got shape {s1_db.shape}")
    lin = to_linear(np.where(np.isfinite(s1_db), s1_db, np.nan))
    out = np.full((s1_db.shape[0], *dst_shape), np.nan, dtype=np.float32)
    for b in range(s1_db.shape[0]):
        reproject(
            lin[b], out[b], src_transform=src_transform, src_crs=src_crs, src_nodata=np.nan,
            dst_transform=dst_transform, dst_crs=dst_crs, dst_nodata=np.nan,
            resampling=Resampling.bilinear,
        )
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(out), to_db(np.nan_to_num(out, nan=1.0)), np.nan).astype(
            np.float32)
