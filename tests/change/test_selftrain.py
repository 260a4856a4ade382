"""change/selftrain.py and the relative radiometric normalisation, on real OSCD pairs."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from eominer.change.maps import change_map
from eominer.change.normalise import radiometric_normalisation
from eominer.change.selftrain import (
    POST_SIGMA,
    context_features,
    masked_smooth,
    selftrain_probability,
)
from eominer.evaluation.change_metrics import confusion, from_confusion
from eominer.evaluation.oscd import load_city


def _f1(binary: np.ndarray, truth: np.ndarray) -> float:
    return from_confusion(*confusion(binary == 1, truth), auprc=0.0).f1


@pytest.fixture(scope="module")
def nantes_crop(oscd):
    """Nantes' top-left 300 x 300 px (776 changed pixels), both dates and its labels."""
    pair, truth = load_city(oscd, "nantes")
    win = np.s_[:300, :300]
    return (pair.x1[:, :300, :300].copy(), pair.x2[:, :300, :300].copy(),
            pair.valid[win].copy(), truth[win].copy())


def test_selftrain_beats_cva_and_irmad_on_a_real_city_crop(nantes_crop) -> None:
    x1, x2, valid, truth = nantes_crop
    assert truth.sum() == 776
    f1 = {m: _f1(change_map(x1, x2, valid, m).binary, truth)
          for m in ("selftrain", "cva", "irmad")}
    # measured: selftrain 0.457, cva 0.191, irmad 0.178
    assert f1["selftrain"] > 0.40
    assert f1["selftrain"] > f1["cva"] + 0.15 and f1["selftrain"] > f1["irmad"] + 0.15


def test_fast_decision_equals_the_explicit_feature_model(nantes_crop) -> None:
    """The whole-scene decision is computed without materialising the features (one
    filter per scale of a weighted sum); it must equal features @ w + b."""
    x1, x2, valid, _ = nantes_crop
    x1, x2, valid = x1[:, :120, :120], x2[:, :120, :120], valid[:120, :120].copy()
    valid[5:15, 5:15] = False  # a masked hole: excluded from every statistic
    p, fitted = selftrain_probability(x1, x2, valid, seed=0)
    from eominer.change.normalise import band_stats

    stats = (band_stats(x1, valid), band_stats(x2, valid))
    w, b = fitted.weights()
    z = context_features(x1, x2, valid, stats).astype(np.float64) @ w + b
    direct = masked_smooth((1 / (1 + np.exp(-z))).reshape(valid.shape).astype(np.float32),
                           valid, POST_SIGMA)
    assert np.isnan(p[~valid]).all() and np.isfinite(p[valid]).all()
    np.testing.assert_allclose(p[valid], direct[valid], atol=1e-4)
    assert fitted.n_change >= 100 and fitted.n_no_change >= 1000


def test_normalisation_recovers_a_known_gain_and_offset_on_a_real_band(bordeaux_pair) -> None:
    """Date 2 = date 1 with band B04 (index 2) rescaled by a known gain and offset, and
    a real change planted (a 60 x 60 block of date 1 copied from elsewhere)."""
    x1 = bordeaux_pair.x1
    valid = bordeaux_pair.valid
    x2 = x1.copy()
    x2[:, 100:160, 100:160] = x1[:, 300:360, 300:360]
    x2[2] = x2[2] * 1.3 + 0.02
    fit = radiometric_normalisation(x1, x2, valid, seed=0)
    # x1 ~ gain * x2 + offset, so B04: gain 1 / 1.3, offset -0.02 / 1.3; others 1, 0
    assert fit.gain[2] == pytest.approx(1 / 1.3, abs=1e-3)
    assert fit.offset[2] == pytest.approx(-0.02 / 1.3, abs=1e-4)
    others = np.r_[0:2, 3:x1.shape[0]]
    np.testing.assert_allclose(fit.gain[others], 1.0, atol=1e-3)
    np.testing.assert_allclose(fit.offset[others], 0.0, atol=1e-4)
    restored = fit.apply(x2)
    inside = np.zeros(valid.shape, dtype=bool)
    inside[100:160, 100:160] = True
    assert np.abs(restored[2][valid & ~inside] - x1[2][valid & ~inside]).max() < 1e-3
    assert fit.n_invariant > 1000


def test_thresholds_and_the_method_take_no_labels() -> None:
    from eominer.change.threshold import kittler_illingworth, otsu_threshold

    for fn in (otsu_threshold, kittler_illingworth, selftrain_probability,
               radiometric_normalisation, change_map):
        names = set(inspect.signature(fn).parameters)
        assert not names & {"truth", "labels", "label", "y", "reference"}, fn.__name__
    assert list(inspect.signature(otsu_threshold).parameters) == ["prob", "valid", "seed"]


def test_a_flat_pair_is_refused_with_a_way_out() -> None:
    from eominer.errors import ConfigError

    x = np.ones((10, 40, 40), dtype=np.float32)
    valid = np.zeros((40, 40), dtype=bool)
    valid[:3, :3] = True  # 9 valid pixels: no confident pseudo-labels
    with pytest.raises(ConfigError, match="use method cva"):
        selftrain_probability(x, x.copy(), valid)


def test_row_blocks_on_threads_equal_the_whole_scene(nantes_crop, monkeypatch) -> None:
    """selftrain runs by row blocks with a halo on a thread pool; 7 blocks of 48 rows on
    2 threads (a masked hole across a block edge) give the one-block result."""
    import eominer.change.rowblocks as rowblocks

    x1, x2, valid, _ = nantes_crop
    valid = valid.copy()
    valid[40:60, 100:180] = False
    guide = np.abs(x1[3] - x2[3]).astype(np.float32)
    whole = {g is None: selftrain_probability(x1, x2, valid, seed=0, guide=g)[0]
             for g in (None, guide)}
    monkeypatch.setattr(rowblocks, "BLOCK_ROWS", 48)
    for g in (None, guide):
        p, _ = selftrain_probability(x1, x2, valid, seed=0, guide=g, threads=2)
        assert np.array_equal(np.isnan(p), ~valid)
        np.testing.assert_allclose(p[valid], whole[g is None][valid], atol=1e-6)
        assert p[valid].std() > 0.05  # a real map, not a constant


def test_map_row_blocks_reaches_across_block_edges() -> None:
    from scipy.ndimage import gaussian_filter

    from eominer.change.rowblocks import map_row_blocks

    x = np.random.default_rng(0).random((301, 50)).astype(np.float32)
    whole = gaussian_filter(x, 4.0, truncate=4.0)
    for threads in (1, 3):
        got = map_row_blocks(lambda a0, a1: gaussian_filter(x[a0:a1], 4.0, truncate=4.0),
                             x.shape, halo=16, threads=threads, block_rows=37)
        np.testing.assert_array_equal(got, whole)
    short = map_row_blocks(lambda a0, a1: gaussian_filter(x[a0:a1], 4.0, truncate=4.0),
                           x.shape, halo=2, block_rows=37)
    assert np.abs(short - whole).max() > 1e-3  # a halo shorter than the reach shows
