"""change/threshold.py: Otsu threshold and binary map."""

from __future__ import annotations

import numpy as np

from eominer.change.threshold import binary_map, otsu_threshold


def test_otsu_splits_two_populations() -> None:
    p = np.concatenate([np.full(900, 0.1), np.full(100, 0.9)]).reshape(10, 100)
    valid = np.ones_like(p, dtype=bool)
    th = otsu_threshold(p, valid)
    assert 0.1 <= th < 0.9
    assert binary_map(p, valid, th).sum() == 100
