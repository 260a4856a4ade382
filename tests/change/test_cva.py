"""change/cva.py: change vector analysis on real co-registered pixels."""

from __future__ import annotations

import numpy as np

from eominer.change.maps import change_distance


def test_identical_dates_give_no_change(crop) -> None:
    x1, _, valid = crop
    d = change_distance("cva", x1, x1.copy(), valid)
    assert float(np.abs(d).max()) == 0.0
