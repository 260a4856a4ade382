"""Change vector analysis (CVA): the length of the difference of the two dates' band
vectors, on per-date standardised bands (see `normalise.standardise`)."""

from __future__ import annotations

import numpy as np

from eominer.change.normalise import band_stats


def cva_distance(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, seed: int = 0) -> np.ndarray:
    """(rows, cols) float32 magnitude of the change vector; 0 outside `valid`.
    Band by band, so memory stays at a few single-band arrays on a full tile."""
    m1, s1 = band_stats(x1, valid, seed)
    m2, s2 = band_stats(x2, valid, seed)
    d = np.zeros(valid.shape, dtype=np.float32)
    for i in range(x1.shape[0]):
        a = (x1[i].astype(np.float32) - m1[i]) * (np.float32(1.0) / s1[i])
        b = (x2[i].astype(np.float32) - m2[i]) * (np.float32(1.0) / s2[i])
        a -= b
        a *= a
        d += a
    np.sqrt(d, out=d)
    d[~valid] = 0.0
    return d
