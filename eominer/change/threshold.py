"""Automatic threshold of a change-probability map: Otsu's method.

Otsu picks the level that maximises the between-class variance of the two classes it
makes (scikit-image's `threshold_otsu`, 256-bin histogram of the valid probabilities).
It needs no parameter and no label; its known weakness is a very small change class
(a few per mille of the scene), where it tends to set the cut too low.
"""

from __future__ import annotations

import numpy as np

from eominer.change.normalise import sample_index
from eominer.errors import require


def otsu_threshold(prob: np.ndarray, valid: np.ndarray, seed: int = 0) -> float:
    require("skimage", "change", "the change map's automatic threshold")
    from skimage.filters import threshold_otsu

    values = prob.ravel()[sample_index(valid, seed=seed)]
    values = values[np.isfinite(values)]
    if values.size == 0 or float(values.min()) == float(values.max()):
        return 0.5
    return float(threshold_otsu(values, nbins=256))


def binary_map(prob: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 map: 1 change, 0 no change, 255 nodata (outside `valid`)."""
    out = np.where(prob > threshold, 1, 0).astype(np.uint8)
    out[~valid] = 255
    return out
