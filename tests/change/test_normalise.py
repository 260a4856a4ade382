"""change/normalise.py: distance -> probability."""

from __future__ import annotations

import numpy as np
import pytest

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


@pytest.mark.parametrize("share", [1.0, 0.6, 0.003])
def test_sample_index_is_the_seeded_draw_among_the_valid_pixels(monkeypatch, share) -> None:
    """The ranks drawn among the valid pixels, mapped block by block (blocks of a few
    rows here, so ranks cross many block edges), give the same pixels as listing every
    valid pixel and drawing from that list."""
    from eominer.change import normalise

    monkeypatch.setattr(normalise, "SAMPLE_BLOCK", 3 * 97)
    valid = np.random.default_rng(7).random((211, 97)) < share
    valid[50:60] = False  # whole rows without a valid pixel
    listed = np.flatnonzero(valid.ravel())
    for n, seed in ((500, 0), (500, 4), (listed.size - 1, 1)):
        if n >= listed.size:
            continue
        want = np.sort(np.random.default_rng(seed).choice(listed, n, replace=False))
        got = normalise.sample_index(valid, n, seed)
        assert np.array_equal(got, want)
        assert valid.ravel()[got].all() and np.unique(got).size == n
    assert np.array_equal(normalise.sample_index(valid, listed.size, 0), listed)  # all of them
