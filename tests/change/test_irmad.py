"""change/irmad.py: iteratively reweighted MAD on real co-registered pixels."""

from __future__ import annotations

import numpy as np

from eominer.change.irmad import fit_irmad, irmad_distance


def test_irmad_is_invariant_to_a_linear_radiometric_change(crop) -> None:
    """A gain and offset per band of date 2 (illumination, atmosphere) is no change."""
    x1, x2, valid = crop
    gains = np.linspace(0.7, 1.4, x2.shape[0], dtype=np.float32)[:, None, None]
    offsets = np.linspace(-0.02, 0.03, x2.shape[0], dtype=np.float32)[:, None, None]
    d0 = irmad_distance(x1, x2, valid)
    d1 = irmad_distance(x1, x2 * gains + offsets, valid)
    assert np.allclose(d0[valid], d1[valid], rtol=1e-3, atol=1e-3)


def test_irmad_canonical_correlations_are_sorted_and_bounded(crop) -> None:
    x1, x2, valid = crop
    X = x1.reshape(x1.shape[0], -1)[:, valid.ravel()].T
    Y = x2.reshape(x2.shape[0], -1)[:, valid.ravel()].T
    t = fit_irmad(X, Y)
    assert np.all(np.diff(t.rho) >= -1e-9)
    assert t.rho.min() >= 0.0 and t.rho.max() < 1.0
    assert t.iterations >= 2
