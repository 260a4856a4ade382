"""`bandstats`: per-band mean and std over every pixel of the patch, and the mean and std
of normalised-difference indices (the features of the learning-curve harness).

Unlike `spectral`, the statistics are plain float32 reductions over the window's pixels
in whatever linear unit the stack holds (digital numbers or reflectance: both give the
same indices), and an index is 0 where its denominator is not positive, so a patch of
dark water still counts every pixel. NaN marks nodata and is skipped.

Columns: `<band>_mean` for every band, then `<band>_std` for every band (when `stats`
holds them), then `<index>_mean`, `<index>_std` per index. Indices as in `spectral`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eominer.errors import FeatureError
from eominer.features.registry import Descriptor, column, require_bands
from eominer.features.spectral import INDICES
from eominer.features.windows import window_cells

VERSION = 1
STATS = ("mean", "std")


def _reduce(cells: np.ndarray, stats: Sequence[str]) -> list[np.ndarray]:
    """[(k, bands) per stat] of (k, bands, pixels) float32."""
    if not np.isnan(cells).any():
        return [cells.mean(2) if s == "mean" else cells.std(2) for s in stats]
    # all-nodata windows stay NaN (made 0 by Descriptor). Reducing only the others keeps
    # numpy from warning on empty slices; `catch_warnings` would hide that, but it is not
    # thread-safe.
    some = ~np.isnan(cells).all(2)
    out = []
    for s in stats:
        r = np.full(cells.shape[:2], np.nan, cells.dtype)
        r[some] = np.nanmean(cells[some], 1) if s == "mean" else np.nanstd(cells[some], 1)
        out.append(r)
    return out


def index_image(stack: np.ndarray, bands: Sequence[str], index: str) -> np.ndarray:
    """(x - y) / (x + y) of the index's bands, float32, 0 where x + y <= 0."""
    x, y = INDICES[index]
    bx = stack[list(bands).index(x)].astype(np.float32)
    by = stack[list(bands).index(y)].astype(np.float32)
    den = bx + by
    return np.divide(bx - by, den, out=np.zeros_like(den), where=den > 0)


def _compute(stack: np.ndarray, windows: np.ndarray, *, bands: list[str],
             indices: list[str], stats: list[str]) -> np.ndarray:
    nb, ni = len(bands), len(indices)
    out = np.zeros((len(windows), nb * len(stats) + 2 * ni), np.float32)
    a = stack.astype(np.float32, copy=False)
    for idx, cells in window_cells(a, windows):
        out[idx, : nb * len(stats)] = np.concatenate(_reduce(cells, stats), axis=1)
    nodata = np.isnan(a).any(axis=0) if indices else None
    for j, name in enumerate(indices):
        img = index_image(a, bands, name)[None]
        if nodata.any():
            img[:, nodata] = np.nan
        for idx, cells in window_cells(img, windows):
            m, s = _reduce(cells, STATS)
            col = nb * len(stats) + 2 * j
            out[idx, col], out[idx, col + 1] = m[:, 0], s[:, 0]
    return out


def build(product_bands: Sequence[str], indices: Sequence[str] = ("ndvi", "ndwi", "ndbi"),
          stats: Sequence[str] = STATS) -> Descriptor:
    bands = list(product_bands)
    bad = [s for s in stats if s not in STATS] + [i for i in indices if i not in INDICES]
    if bad or not stats:
        raise FeatureError(
            f"bandstats: unknown statistic or index {bad or '(no statistic)'}: statistics are "
            f"{', '.join(STATS)}, indices {', '.join(INDICES)}"
        )
    for i in indices:
        require_bands(f"bandstats index {i}", bands, INDICES[i])
    cols = [column(b, s) for s in stats for b in bands]
    cols += [f"{i}_{s}" for i in indices for s in STATS]
    params = {"bands": bands, "indices": list(indices), "stats": list(stats)}
    return Descriptor("bandstats", VERSION, "S2", params, tuple(bands), 0, tuple(cols),
                      _compute)
