"""The change methods as pure functions on real co-registered pixels."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.change.irmad import fit_irmad, irmad_distance
from eominer.change.maps import change_distance, change_map
from eominer.change.normalise import to_probability
from eominer.change.scores import patch_scores
from eominer.change.threshold import binary_map, otsu_threshold
from eominer.errors import ConfigError


@pytest.fixture(scope="module")
def crop(bordeaux_pair):
    """A 160 x 160 px corner of Bordeaux with a hole of 'no data' in it."""
    x1 = bordeaux_pair.x1[:, :160, :160].copy()
    x2 = bordeaux_pair.x2[:, :160, :160].copy()
    valid = bordeaux_pair.valid[:160, :160].copy()
    valid[10:30, 10:30] = False
    return x1, x2, valid


@pytest.mark.parametrize("method", ["cva", "irmad"])
def test_probability_is_in_unit_interval_and_nodata_outside(crop, method) -> None:
    x1, x2, valid = crop
    m = change_map(x1, x2, valid, method)
    p = m.probability
    assert np.isnan(p[~valid]).all()
    assert np.isfinite(p[valid]).all()
    assert p[valid].min() >= 0.0 and p[valid].max() <= 1.0
    assert (m.binary[~valid] == 255).all()
    assert set(np.unique(m.binary[valid])) <= {0, 1}
    assert 0.0 < m.threshold < 1.0
    # the binary map is the probability cut at the threshold
    assert ((p[valid] > m.threshold) == (m.binary[valid] == 1)).all()


def test_identical_dates_give_no_change(crop) -> None:
    x1, _, valid = crop
    d = change_distance("cva", x1, x1.copy(), valid)
    assert float(np.abs(d).max()) == 0.0


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


def test_otsu_splits_two_populations() -> None:
    p = np.concatenate([np.full(900, 0.1), np.full(100, 0.9)]).reshape(10, 100)
    valid = np.ones_like(p, dtype=bool)
    th = otsu_threshold(p, valid)
    assert 0.1 <= th < 0.9
    assert binary_map(p, valid, th).sum() == 100


def test_patch_scores_match_direct_means() -> None:
    rng = np.random.default_rng(1)
    prob = rng.random((64, 96)).astype(np.float32)
    prob[:5, :7] = np.nan
    binary = (prob > 0.7).astype(np.uint8)
    binary[np.isnan(prob)] = 255
    x, y, s = np.array([0, 32, 64]), np.array([0, 32, 0]), np.array([32, 32, 32])
    got = patch_scores(prob, binary, x, y, s)
    for i in range(3):
        win = prob[y[i]:y[i] + 32, x[i]:x[i] + 32]
        v = np.isfinite(win)
        assert got[i, 0] == pytest.approx(win[v].mean(), rel=1e-5)
        assert got[i, 1] == pytest.approx((win[v] > 0.7).mean(), rel=1e-5)
        assert got[i, 2] == pytest.approx(v.mean(), rel=1e-6)


def test_unknown_method_and_mismatched_grids_are_refused(crop) -> None:
    x1, x2, valid = crop
    with pytest.raises(ConfigError, match="unknown change method 'pca'"):
        change_distance("pca", x1, x2, valid)
    with pytest.raises(ConfigError, match="must share one grid"):
        change_distance("cva", x1, x2[:, :100], valid)
