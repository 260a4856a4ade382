"""`s1stats`: the per-patch Sentinel-1 statistics of S1/S2 fusion.

Backscatter in dB divided by `divide_by` (default 10: dB/10, i.e. log10 power, so S1
values are of the order of one like S2 reflectance). Per polarisation (VV, VH): mean, std and the
`percentiles` (default 10th and 90th, numpy's linear interpolation); then the mean and std
of the per-pixel VV - VH difference. NaN marks nodata and is skipped. Computed in float64.
Columns `vv_mean, vv_std, vv_p10, vv_p90, vh_..., vvvh_mean, vvvh_std`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eominer.errors import FeatureError
from eominer.features.registry import Descriptor, column, require_bands
from eominer.features.s2stats import mean_std
from eominer.features.windows import chunks, window_cells

VERSION = 1


def nan_percentiles(x: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """(..., len(qs)) percentiles over the last axis, NaN skipped, equal to
    `np.percentile` of the valid values (linear method); NaN where none is valid."""
    if not np.isnan(x).any():
        return np.moveaxis(np.percentile(x, list(qs), axis=-1), 0, -1)
    srt = np.sort(x, axis=-1)                             # NaN last
    nv = (~np.isnan(srt)).sum(-1)
    q = np.true_divide(np.asarray(qs, np.float64), 100)
    pos = q * np.maximum(nv - 1, 0)[..., None]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(nv - 1, 0)[..., None])
    a = np.take_along_axis(srt, lo, -1)
    b = np.take_along_axis(srt, hi, -1)
    t = pos - lo
    diff = b - a
    out = a + diff * t                                    # numpy's _lerp, both halves
    out = np.where(t >= 0.5, b - diff * (1 - t), out)
    out[nv == 0] = np.nan
    return out


def _compute(stack: np.ndarray, windows: np.ndarray, *, percentiles: list[float],
             divide_by: float) -> np.ndarray:
    nq = len(percentiles)
    per = 2 + nq
    out = np.zeros((len(windows), 2 * per + 2), np.float64)
    for idx_all, cells_all in window_cells(stack, windows):
        for part in chunks(len(idx_all), 2, cells_all.shape[2]):
            idx = idx_all[part]
            x = cells_all[part].astype(np.float64) / divide_by
            if not np.isfinite(x).all():
                x = np.where(np.isfinite(x), x, np.nan)
            m, s = mean_std(x)
            p = nan_percentiles(x, percentiles)           # (k, 2, nq)
            for b in range(2):
                out[idx, b * per], out[idx, b * per + 1] = m[:, b], s[:, b]
                out[idx, b * per + 2: (b + 1) * per] = p[:, b]
            m, s = mean_std(x[:, 0] - x[:, 1])
            out[idx, 2 * per], out[idx, 2 * per + 1] = m, s
    return out


def build(product_bands: Sequence[str], percentiles: Sequence[float] = (10, 90),
          divide_by: float = 10.0) -> Descriptor:
    require_bands("s1stats", product_bands, ["VV", "VH"])
    if not divide_by > 0:
        raise FeatureError(f"s1stats: divide_by must be > 0 (10 gives dB/10), got {divide_by}")
    qs = [float(q) for q in percentiles]
    cols = [column(b, s) for b in ("VV", "VH")
            for s in ("mean", "std", *(f"p{int(q)}" for q in qs))]
    cols += ["vvvh_mean", "vvvh_std"]
    params = {"percentiles": qs, "divide_by": float(divide_by)}
    return Descriptor("s1stats", VERSION, "S1", params, ("VV", "VH"), 0, tuple(cols), _compute)
