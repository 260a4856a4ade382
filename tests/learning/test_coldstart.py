"""eominer.learning.coldstart on real OSCD features."""

from __future__ import annotations

import numpy as np

from eominer.learning.coldstart import diverse_sample, find_similar


def test_cold_start(bordeaux):
    data, y, rows = bordeaux
    d = diverse_sample(data.X, 12, exclude=rows, seed=1)
    assert len(set(d.tolist())) == 12 and not set(d.tolist()) & set(rows.tolist())
    assert np.array_equal(d, diverse_sample(data.X, 12, exclude=rows, seed=1))
    f = find_similar(data.X, int(rows[0]), 5, data.sq_norms, exclude=rows[1:3])
    assert int(rows[0]) not in f and len(f) == 5
