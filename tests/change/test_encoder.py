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


def test_pooled_encoder_maps_back_onto_the_full_grid(bordeaux_pair) -> None:
    """pool 2 (selftrain_encoder's 20 m guide): 2 x 2 means in, a bilinear map out on the
    10 m grid, 0 on masked pixels, and the transplanted block still stands out."""
    from dataclasses import replace

    from eominer.change.encoder import pooled, upsampled

    ramp = np.add.outer(np.arange(9.0) * 9, np.arange(11.0))[None].astype(np.float32)
    valid = np.ones((9, 11), dtype=bool)
    valid[0, 0] = False
    means, ok = pooled(ramp, valid, 2)
    assert means.shape == (1, 4, 5) and not ok[0, 0] and ok.sum() == 19
    assert means[0, 1, 2] == ramp[0, 2:4, 4:6].mean()
    up = upsampled(means[0], valid, 2)
    assert up.shape == valid.shape and up[0, 0] == 0.0
    np.testing.assert_allclose(up[1:7, 1:9], ramp[0, 1:7, 1:9])  # a ramp is exact inside

    x1 = bordeaux_pair.x1[:, :128, :127].copy()  # odd width: the last column is repeated
    x2 = bordeaux_pair.x2[:, :128, :127].copy()
    valid = bordeaux_pair.valid[:128, :127].copy()
    x2[:, 40:72, 60:92] = bordeaux_pair.x2[:, 300:332, 300:332]
    valid[0:4, 0:4] = False
    d = encoder_distance(x1, x2, valid, replace(SMALL, pool=2))
    assert d.shape == valid.shape and (d[~valid] == 0).all()
    block = np.zeros_like(valid)
    block[44:68, 64:88] = True
    assert float(np.median(d[block])) > float(np.percentile(d[valid & ~block], 95))
