"""`wld`: the Weber Local Descriptor histogram (Chen et al., "WLD: A Robust Local Image
Descriptor", IEEE TPAMI 32(9), 2010), as DLR's EOminer uses it for optical patches.

Per pixel, over its 3 x 3 neighbourhood:
- differential excitation  xi = arctan( sum_i (x_i - x_c) / x_c ), in (-pi/2, pi/2),
  quantised into `excitations` equal bins;
- orientation  theta = atan2(x_below - x_above, x_right - x_left), in (-pi, pi],
  quantised into `orientations` equal sectors.
The descriptor of a patch is the normalised 2-D histogram (excitation-major) of the
joint code over its pixels. Pixels touching nodata are not counted; a patch without
valid pixels gets all zeros. `eps` keeps x_c away from 0 (reflectance units).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from eominer.features.gabor import LUMINANCE, band_image
from eominer.features.reduce import patch_histograms
from eominer.features.registry import Descriptor, require_bands

VERSION = 1
STRIP = 64  # rows per pass: keeps the temporaries in cache


def quantise(excitation_ratio: np.ndarray, dy: np.ndarray, dx: np.ndarray,
             excitations: int, orientations: int) -> np.ndarray:
    """Joint uint8 code xi_bin * orientations + theta_bin; NaN -> excitations*orientations.

    The excitation bin counts the bin edges below xi; arctan is monotonic, so comparing
    the ratio with tan(edge) gives the same bin without an arctan per pixel."""
    r = excitation_ratio
    code = np.zeros(r.shape, np.uint8)
    for k in range(1, excitations):
        code += r >= np.float32(math.tan(-math.pi / 2 + k * math.pi / excitations))
    code *= np.uint8(orientations)
    th = np.arctan2(dy, dx)
    th += np.float32(math.pi)
    th *= np.float32(orientations / (2 * math.pi))
    tb = th.astype(np.uint8)  # floor: th >= 0
    tb[tb >= orientations] = 0  # theta == pi wraps to the first sector
    code += tb
    nan = np.isnan(r)
    if nan.any():
        code[nan] = excitations * orientations
    return code


def wld_codes(padded: np.ndarray, excitations: int = 6, orientations: int = 8,
              eps: float = 1e-3) -> np.ndarray:
    """(rows, cols) uint8 WLD codes of an image padded by 1 pixel on each side."""
    rows, cols = padded.shape[0] - 2, padded.shape[1] - 2
    codes = np.empty((rows, cols), np.uint8)
    for y in range(0, rows, STRIP):
        p = padded[y: min(y + STRIP, rows) + 2]
        box = p[:-2] + p[1:-1]
        box += p[2:]
        box = box[:, :-2] + box[:, 1:-1] + box[:, 2:]
        c = p[1:-1, 1:-1]
        box -= np.float32(9) * c  # sum of differences to the 8 neighbours
        den = np.maximum(c, np.float32(0))
        den += np.float32(eps)
        with np.errstate(invalid="ignore", divide="ignore"):
            box /= den
            codes[y: y + box.shape[0]] = quantise(
                box, p[2:, 1:-1] - p[:-2, 1:-1], p[1:-1, 2:] - p[1:-1, :-2],
                excitations, orientations)
    return codes


def wld_columns(prefix: str, excitations: int, orientations: int) -> list[str]:
    return [f"{prefix}_x{i}_o{k}" for i in range(excitations) for k in range(orientations)]


def _compute(stack: np.ndarray, windows: np.ndarray, *, band: str, excitations: int,
             orientations: int, eps: float, input_bands: list[str]) -> np.ndarray:
    img = band_image(stack, input_bands, band).astype(np.float32, copy=False)
    codes = wld_codes(img, excitations, orientations, eps)
    return patch_histograms(codes, windows, excitations * orientations)


def build(product_bands: Sequence[str], band: str = "B08", excitations: int = 6,
          orientations: int = 8, eps: float = 1e-3) -> Descriptor:
    inputs = list(LUMINANCE) if band == "luminance" else [band]
    require_bands("wld", product_bands, inputs)
    if excitations * orientations > 255:
        raise ValueError("wld: excitations x orientations must be < 256")
    params = {"band": band, "excitations": int(excitations), "orientations": int(orientations),
              "eps": float(eps), "input_bands": inputs}
    cols = wld_columns("wld", excitations, orientations)
    return Descriptor("wld", VERSION, "S2", params, tuple(inputs), 1, tuple(cols), _compute)
