"""Method `selftrain_encoder`: selftrain seeded and guided by the encoder's distance, on a
real OSCD pair (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.change.maps import change_map
from eominer.change.normalise import band_stats
from eominer.change.selftrain import (
    POST_SIGMA,
    context_features,
    feature_names,
    masked_smooth,
    selftrain_probability,
)
from eominer.errors import ConfigError
from eominer.evaluation.change_metrics import confusion, from_confusion
from eominer.evaluation.oscd import load_city


def _f1(binary: np.ndarray, truth: np.ndarray) -> float:
    return from_confusion(*confusion(binary == 1, truth), auprc=0.0).f1


@pytest.fixture(scope="module")
def bordeaux_crop(oscd):
    """Bordeaux's top-right 300 x 300 px (1338 changed pixels): small, scattered changes,
    where the CVA seed of `selftrain` misses and the encoder's does not."""
    pair, truth = load_city(oscd, "bordeaux")
    win = np.s_[:300, -300:]
    return (pair.x1[:, :300, -300:].copy(), pair.x2[:, :300, -300:].copy(),
            pair.valid[win].copy(), truth[win].copy())


def test_selftrain_encoder_beats_cva_irmad_and_selftrain_on_a_real_crop(bordeaux_crop) -> None:
    x1, x2, valid, truth = bordeaux_crop
    assert truth.sum() == 1338
    f1 = {m: _f1(change_map(x1, x2, valid, m).binary, truth)
          for m in ("selftrain_encoder", "selftrain", "cva", "irmad")}
    # measured: selftrain_encoder 0.275 (20 m guide; 0.284 with the 10 m one), selftrain
    # 0.077, cva 0.074, irmad 0.031 (the encoder's training is not bit-reproducible
    # under load: margins are wide)
    assert f1["selftrain_encoder"] > 0.20
    assert f1["selftrain_encoder"] > max(f1["cva"], f1["irmad"], f1["selftrain"]) + 0.10


def test_guided_decision_equals_the_explicit_feature_model(bordeaux_crop) -> None:
    """With a guide map the whole-scene decision (one filter per scale) must still equal
    features @ w + b, the guide's four features included."""
    x1, x2, valid, _ = bordeaux_crop
    x1, x2, valid = x1[:, :120, :120], x2[:, :120, :120], valid[:120, :120].copy()
    valid[5:15, 5:15] = False
    guide = np.linalg.norm(x1 - x2, axis=0).astype(np.float32)  # any per-pixel map
    guide[~valid] = 1e3  # masked values must not enter
    p, fitted = selftrain_probability(x1, x2, valid, seed=0, guide=guide)
    stats = (band_stats(x1, valid), band_stats(x2, valid))
    w, b = fitted.weights()
    assert w.size == len(feature_names(x1.shape[0], guide=True)) == 68
    z = context_features(x1, x2, valid, stats, guide).astype(np.float64) @ w + b
    direct = masked_smooth((1 / (1 + np.exp(-z))).reshape(valid.shape).astype(np.float32),
                           valid, POST_SIGMA)
    assert np.isnan(p[~valid]).all() and np.isfinite(p[valid]).all()
    np.testing.assert_allclose(p[valid], direct[valid], atol=1e-4)
    # the guide, not CVA, chose the pseudo-labels: a different model than without it
    p0, _ = selftrain_probability(x1, x2, valid, seed=0)
    assert np.abs(p0[valid] - p[valid]).max() > 0.05
    with pytest.raises(ConfigError, match="guide map"):
        selftrain_probability(x1, x2, valid, guide=guide[:100])
