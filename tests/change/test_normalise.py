"""change/normalise.py: distance -> probability."""

from __future__ import annotations

import numpy as np

from eominer.change.normalise import to_probability


def test_to_probability_is_monotonic_with_half_at_three_robust_sigmas() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(10.0, 2.0, size=(100, 100)).astype(np.float32)
    valid = np.ones_like(d, dtype=bool)
    p = to_probability(d, valid)
    order = np.argsort(d.ravel())
    assert np.all(np.diff(p.ravel()[order]) >= 0)
    med = np.median(d)
    mad = np.median(np.abs(d - med)) * 1.4826
    near = np.abs(d - (med + 3 * mad)) < 0.01
    assert np.allclose(p[near], 0.5, atol=0.01)
