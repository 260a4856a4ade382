"""Per-patch tails and spreads of a pair's pixel differences: the `diff_tails` feature set.

For every patch of the first product's grid (all levels) and each index of `INDICES`
(NDVI and NDBI of top-of-atmosphere reflectance), the 10th and 90th percentile of the
pixel differences (date 2 - date 1), their mean magnitude and their standard deviation;
and the standard deviation of the difference of each band of `SPREAD_BANDS`. A pixel
that is not valid in both dates (nodata, cloud) counts as no difference (0), as in
`change.scores`.

Why: a new building turns a few pixels of a patch from vegetation or soil into roof, and
it does so in one direction (NDVI down, NDBI up). The patch means of both dates dilute
those pixels, and the change map's magnitude drops the direction; the tails keep both.
In OSCD sessions over the 9 pooled cities (16 px patches, spatial context 0.3), the set
added to pair_spectral, pair_gabor and the change map's columns lifts AP@200 by
0.02-0.04 (`diverse` 0.427 -> 0.466 in `make eval`'s run) and leaves AP@100 within the
seeds' spread (0.400 -> 0.409); one city's session gains nothing (docs/learning.md,
"The pair's index tails").
Version 2 adds the spreads: a patch where a few pixels changed and the rest did not has
a wide spread of differences, which neither date's own spread nor the mean difference
shows. With them, out of fold, the pooled OSCD sets rank new construction at 0.548
against 0.502 with version 1, and `diverse` sessions reach AP@100 / 200 0.422 / 0.472
against 0.409 / 0.466 (docs/learning.md, "Version 2 of `diff_tails`").
"""

from __future__ import annotations

import numpy as np

from eominer.change.align import CHANGE_BANDS
from eominer.change.scores import window_rows

FEATURE_SET = "diff_tails"
VERSION = 2  # 2: the standard deviations (version 1: the index tails only)
# (name, a, b): the index (a - b) / (a + b)
INDICES: tuple[tuple[str, str, str], ...] = (("ndvi", "B08", "B04"), ("ndbi", "B11", "B08"))
QUANTILES = (0.1, 0.9)
STATS = ("q10", "q90", "absmean", "std")
SPREAD_BANDS = CHANGE_BANDS
COLUMNS: tuple[str, ...] = (
    tuple(f"{s}_{name}" for name, _, _ in INDICES for s in STATS)
    + tuple(f"std_{band.lower()}" for band in SPREAD_BANDS)
)


def normalised_difference(x: np.ndarray, bands: tuple[str, ...], a: str, b: str,
                          ) -> np.ndarray:
    """(a - b) / (a + b) of a (bands, rows, cols) array; 0 where a + b is 0."""
    p = x[bands.index(a)].astype(np.float32)
    q = x[bands.index(b)].astype(np.float32)
    s = p + q
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (p - q) / s
    out[s == 0] = 0.0
    return out


def window_tails(d: np.ndarray, x0: np.ndarray, y0: np.ndarray, size: np.ndarray,
                 ) -> np.ndarray:
    """(n_windows, 4) float32: per window of `d`, its QUANTILES (numpy's linear rule, as
    `np.quantile`), its mean magnitude and its standard deviation; one `np.partition`
    per row of patches."""
    out = np.zeros((len(x0), len(STATS)), np.float32)
    for at, px in window_rows(d, np.asarray(x0, np.int64), np.asarray(y0, np.int64),
                              np.asarray(size, np.int64)):
        n = px.shape[1]
        pos = [q * (n - 1) for q in QUANTILES]
        kth = sorted({int(np.floor(v)) for v in pos} | {int(np.ceil(v)) for v in pos})
        part = np.partition(px, kth, axis=1)
        for j, v in enumerate(pos):
            lo, hi = int(np.floor(v)), int(np.ceil(v))
            out[at, j] = part[:, lo] + (v - lo) * (part[:, hi] - part[:, lo])
        out[at, len(QUANTILES)] = np.abs(px).mean(axis=1, dtype=np.float64)
        out[at, len(QUANTILES) + 1] = px.std(axis=1, dtype=np.float64)
    return out


def window_std(d: np.ndarray, x0: np.ndarray, y0: np.ndarray, size: np.ndarray,
               ) -> np.ndarray:
    """(n_windows,) float32: the standard deviation of `d` over each window."""
    out = np.zeros(len(x0), np.float32)
    for at, px in window_rows(d, np.asarray(x0, np.int64), np.asarray(y0, np.int64),
                              np.asarray(size, np.int64)):
        out[at] = px.std(axis=1, dtype=np.float64)
    return out


def pair_tails(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, bands: tuple[str, ...],
               x0: np.ndarray, y0: np.ndarray, size: np.ndarray) -> np.ndarray:
    """(n_windows, len(COLUMNS)) float32 for two co-registered reflectance arrays."""
    parts = []
    for _, a, b in INDICES:  # one difference layer at a time: a full tile holds one
        d = normalised_difference(x2, bands, a, b)
        d -= normalised_difference(x1, bands, a, b)
        d[~valid] = 0.0
        parts.append(window_tails(d, x0, y0, size))
    for band in SPREAD_BANDS:
        i = bands.index(band)
        d = x2[i].astype(np.float32)
        d -= x1[i]
        d[~valid] = 0.0
        parts.append(window_std(d, x0, y0, size)[:, None])
    return np.concatenate(parts, axis=1)
