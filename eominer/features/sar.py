"""`sar`: Sentinel-1 GRD patch descriptor.

- VV and VH backscatter statistics in dB: mean, std, 10/50/90th percentiles;
- the VV/VH ratio in dB (VV_dB - VH_dB): mean and std;
- a SAR-adapted WLD on VV: speckle makes pixel differences meaningless, so the
  Weber excitation and orientation use ratios of local means of linear intensity
  (3 x 3 means, neighbours 2 px away so the windows do not overlap), as in
  ratio-based SAR edge detectors (Touzi et al. 1988):
    xi    = arctan( sum_i m_i / m_c - 8 ),
    theta = atan2( log(m_below / m_above), log(m_right / m_left) ).
Histogram bins and nodata handling as in `wld`. The ARD holds dB with NaN nodata.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eominer.features.reduce import patch_histograms, patch_mean_std, patch_percentiles
from eominer.features.registry import Descriptor, column, require_bands
from eominer.features.wld import quantise, wld_columns

VERSION = 1
OFFSETS = [(-2, -2), (-2, 0), (-2, 2), (0, -2), (0, 2), (2, -2), (2, 0), (2, 2)]


def local_means(linear: np.ndarray) -> np.ndarray:
    """3 x 3 box mean (valid part: 2 px smaller each way)."""
    vert = linear[:-2] + linear[1:-1] + linear[2:]
    return (vert[:, :-2] + vert[:, 1:-1] + vert[:, 2:]) / np.float32(9)


def sar_wld_codes(db_padded: np.ndarray, excitations: int = 6, orientations: int = 8,
                  ) -> np.ndarray:
    """Codes of an image in dB padded by 3 px on each side."""
    lin = np.power(np.float32(10), db_padded / np.float32(10), dtype=np.float32)
    m = local_means(lin)  # padded by 2 now
    rows, cols = m.shape[0] - 4, m.shape[1] - 4

    def at(dy: int, dx: int) -> np.ndarray:
        return m[2 + dy: 2 + dy + rows, 2 + dx: 2 + dx + cols]

    centre = at(0, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = sum(at(dy, dx) for dy, dx in OFFSETS) / centre - np.float32(8)
        dy = np.log(at(2, 0) / at(-2, 0))
        dx = np.log(at(0, 2) / at(0, -2))
        ratio[~np.isfinite(ratio) | ~np.isfinite(dy) | ~np.isfinite(dx)] = np.nan
        return quantise(ratio, dy, dx, excitations, orientations)


def _compute(stack: np.ndarray, windows: np.ndarray, *, percentiles: list[float],
             excitations: int, orientations: int) -> np.ndarray:
    h = 3
    inner = stack[:, h:-h, h:-h]
    parts = []
    for i in range(2):
        mean, std, _ = patch_mean_std(inner[i], windows)
        parts += [mean[:, None], std[:, None],
                  patch_percentiles(inner[i], windows, tuple(percentiles))]
    ratio = inner[0] - inner[1]
    mean, std, _ = patch_mean_std(ratio, windows)
    parts += [mean[:, None], std[:, None]]
    codes = sar_wld_codes(stack[0], excitations, orientations)
    parts.append(patch_histograms(codes, windows, excitations * orientations))
    return np.concatenate(parts, axis=1)


def build(product_bands: Sequence[str], percentiles: Sequence[float] = (10, 50, 90),
          excitations: int = 6, orientations: int = 8) -> Descriptor:
    require_bands("sar", product_bands, ["VV", "VH"])
    qs = [float(q) for q in percentiles]
    cols = [column(b, s) for b in ("VV", "VH")
            for s in ("mean", "std", *(f"p{int(q)}" for q in qs))]
    cols += ["vv_vh_ratio_mean", "vv_vh_ratio_std"]
    cols += wld_columns("sarwld", excitations, orientations)
    params = {"percentiles": qs, "excitations": int(excitations),
              "orientations": int(orientations)}
    return Descriptor("sar", VERSION, "S1", params, ("VV", "VH"), 3, tuple(cols), _compute)
