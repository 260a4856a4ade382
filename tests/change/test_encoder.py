"""The learned method: trained on the pair itself, it must find a real transplanted change."""

from __future__ import annotations

import numpy as np

from eominer.change.encoder import EncoderConfig, encoder_distance
from eominer.change.normalise import to_probability

SMALL = EncoderConfig(crops=96, epochs=3, crop=32, hidden=16, features=8)


def test_encoder_finds_a_transplanted_block(bordeaux_pair) -> None:
    x1 = bordeaux_pair.x1[:, :128, :128].copy()
    x2 = bordeaux_pair.x2[:, :128, :128].copy()
    valid = bordeaux_pair.valid[:128, :128].copy()
    # a change made of real pixels: date 2 gets a 16 x 16 block from elsewhere in the city
    x2[:, 40:56, 60:76] = bordeaux_pair.x2[:, 300:316, 300:316]
    block = np.zeros_like(valid)
    block[42:54, 62:74] = True  # inside the block, away from its smoothed edge
    d = encoder_distance(x1, x2, valid, SMALL)
    assert d.shape == valid.shape and d.dtype == np.float32
    outside = d[valid & ~np.pad(block, 0)]
    assert float(np.median(d[block])) > float(np.percentile(outside, 95))
    p = to_probability(d, valid)
    assert np.nanmin(p) >= 0.0 and np.nanmax(p) <= 1.0
    assert float(np.median(p[block])) > 0.5


def test_encoder_is_seeded(bordeaux_pair) -> None:
    x1 = bordeaux_pair.x1[:, :64, :64]
    x2 = bordeaux_pair.x2[:, :64, :64]
    valid = bordeaux_pair.valid[:64, :64]
    cfg = EncoderConfig(crops=32, epochs=1, crop=32, hidden=8, features=4)
    a = encoder_distance(x1, x2, valid, cfg)
    b = encoder_distance(x1, x2, valid, cfg)
    assert np.allclose(a, b, atol=1e-5)
