"""`s2stats`: the per-patch Sentinel-2 statistics of S1/S2 fusion.

Per band: mean and std of reflectance; per index (NDVI, NDWI, NDBI by default, defined as
in `spectral`): mean and std of the per-pixel index. All over the patch's valid pixels:
a pixel is valid when every band is finite and > 0 (0 is the S2 no-data value), so the
bands and indices of one patch are reduced over the same pixels. Computed in float64.
Columns `<band>_mean`, `<band>_std` per band, then `<index>_mean`, `<index>_std`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eominer.errors import FeatureError
from eominer.features.registry import Descriptor, column, require_bands
from eominer.features.spectral import INDICES
from eominer.features.windows import chunks, window_cells

VERSION = 1


def mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over the last axis, NaN skipped (NaN where nothing is left).
    `np.nanmean` would warn on empty rows, and silencing that with `catch_warnings` is
    not thread-safe; `errstate` is."""
    if not np.isnan(x).any():
        return x.mean(-1), x.std(-1)
    valid = ~np.isnan(x)
    n = valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, x, 0.0).sum(-1) / n
        dev = np.where(valid, x - mean[..., None], 0.0)
        return mean, np.sqrt((dev * dev).sum(-1) / n)


def _compute(stack: np.ndarray, windows: np.ndarray, *, bands: list[str],
             indices: list[str]) -> np.ndarray:
    nb = len(bands)
    out = np.zeros((len(windows), 2 * (nb + len(indices))), np.float64)
    pos = {b: i for i, b in enumerate(bands)}
    for idx_all, cells_all in window_cells(stack, windows):
        for part in chunks(len(idx_all), nb, cells_all.shape[2]):
            idx, cells = idx_all[part], cells_all[part]
            with np.errstate(invalid="ignore"):
                valid = np.all((cells > 0) & (cells < np.inf), axis=1)
            x = cells.astype(np.float64)                  # (k, bands, pixels)
            if not valid.all():
                x[~np.broadcast_to(valid[:, None], x.shape)] = np.nan
            m, s = mean_std(x)
            out[idx, 0: 2 * nb: 2], out[idx, 1: 2 * nb: 2] = m, s
            for j, name in enumerate(indices):
                a, b = INDICES[name]
                xa, xb = x[:, pos[a]], x[:, pos[b]]
                with np.errstate(invalid="ignore", divide="ignore"):
                    nd = (xa - xb) / (xa + xb)
                nd[~np.isfinite(nd)] = np.nan
                m, s = mean_std(nd)
                out[idx, 2 * (nb + j)], out[idx, 2 * (nb + j) + 1] = m, s
    return out


def build(product_bands: Sequence[str], indices: Sequence[str] = ("ndvi", "ndwi", "ndbi"),
          ) -> Descriptor:
    bands = list(product_bands)
    unknown = [i for i in indices if i not in INDICES]
    if unknown:
        raise FeatureError(f"s2stats: unknown index {unknown}: expected some of "
                           f"{', '.join(INDICES)}")
    for i in indices:
        require_bands(f"s2stats index {i}", bands, INDICES[i])
    cols = [column(b, s) for b in bands for s in ("mean", "std")]
    cols += [f"{i}_{s}" for i in indices for s in ("mean", "std")]
    params = {"bands": bands, "indices": list(indices)}
    return Descriptor("s2stats", VERSION, "S2", params, tuple(bands), 0, tuple(cols), _compute)
