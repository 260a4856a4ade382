"""Change vector analysis (CVA): the length of the difference of the two dates' band
vectors, on per-date standardised bands (see `normalise.standardise`)."""

from __future__ import annotations

import numpy as np

from eominer.change.normalise import standardise


def cva_distance(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, seed: int = 0) -> np.ndarray:
    """(rows, cols) float32 magnitude of the change vector; 0 outside `valid`."""
    z1 = standardise(x1, valid, seed)
    z2 = standardise(x2, valid, seed)
    d = np.zeros(valid.shape, dtype=np.float32)
    for i in range(z1.shape[0]):  # band by band: no (bands, rows, cols) temporary
        diff = z1[i] - z2[i]
        d += diff * diff
    np.sqrt(d, out=d)
    d[~valid] = 0.0
    return d
