"""`spectral`: per-band statistics and standard normalised-difference indices.

Per band: mean, std and the 10/50/90th percentiles of reflectance. Per index, the
mean of the per-pixel index (pixels where it is undefined are skipped). Indices,
from Sentinel-2 bands (an index is left out when a band it needs is absent):

- ndvi  = (B08 - B04) / (B08 + B04)   vegetation (Rouse et al. 1974)
- ndwi  = (B03 - B08) / (B03 + B08)   open water (McFeeters 1996)
- ndbi  = (B11 - B08) / (B11 + B08)   built-up (Zha et al. 2003)
- mndwi = (B03 - B11) / (B03 + B11)   water vs built-up (Xu 2006)
- nbr   = (B08 - B12) / (B08 + B12)   burn ratio (Key & Benson 2006)
- ndre  = (B8A - B05) / (B8A + B05)   red-edge chlorophyll (Gitelson & Merzlyak 1994)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eominer.features.reduce import patch_mean_std, patch_percentiles
from eominer.features.registry import Descriptor, column

VERSION = 1
INDICES: dict[str, tuple[str, str]] = {
    "ndvi": ("B08", "B04"), "ndwi": ("B03", "B08"), "ndbi": ("B11", "B08"),
    "mndwi": ("B03", "B11"), "nbr": ("B08", "B12"), "ndre": ("B8A", "B05"),
}
STATS = ("mean", "std")


def normalised_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (a - b) / (a + b)
    out[~np.isfinite(out)] = np.nan
    return out


def _compute(stack: np.ndarray, windows: np.ndarray, *, bands: list[str],
             percentiles: list[float], indices: list[str]) -> np.ndarray:
    parts: list[np.ndarray] = []
    for i in range(len(bands)):
        mean, std, _ = patch_mean_std(stack[i], windows)
        parts += [mean[:, None], std[:, None], patch_percentiles(stack[i], windows,
                                                                 tuple(percentiles))]
    pos = {b: i for i, b in enumerate(bands)}
    for name in indices:
        a, b = INDICES[name]
        idx = normalised_difference(stack[pos[a]], stack[pos[b]])
        parts.append(patch_mean_std(idx, windows)[0][:, None])
    return np.concatenate(parts, axis=1)


def build(product_bands: Sequence[str], percentiles: Sequence[float] = (10, 50, 90),
          ) -> Descriptor:
    bands = list(product_bands)
    indices = [n for n, (a, b) in INDICES.items() if a in bands and b in bands]
    cols = [column(b, s) for b in bands
            for s in (*STATS, *(f"p{int(q)}" for q in percentiles))]
    cols += [f"{n}_mean" for n in indices]
    params = {"bands": bands, "percentiles": [float(q) for q in percentiles],
              "indices": indices}
    return Descriptor("spectral", VERSION, "S2", params, tuple(bands), 0, tuple(cols), _compute)
