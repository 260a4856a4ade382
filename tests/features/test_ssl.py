"""The self-supervised (VICReg) encoder: its EO augmentations on known arrays, its loss,
and a short training on real Sentinel-2 patches (bordeaux, OSCD) that must learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eominer.errors import FeatureError
from eominer.features.ssl import (
    augment,
    band_dropout,
    brightness,
    crop_resize,
    flip_rotate,
    vicreg_loss,
)


def _batch(n: int = 3, size: int = 4, bands: int = 2) -> np.ndarray:
    return np.arange(n * size * size * bands, dtype=np.float32).reshape(n, size, size, bands)


def test_rotation_and_flip_move_known_pixels():
    x = _batch()
    out = flip_rotate(x, np.array([1, 0, 2]), np.array([False, True, False]))
    # 90 degrees counter-clockwise: the top-right pixel goes to the top-left
    assert out[0, 0, 0, 0] == x[0, 0, 3, 0] and out[0, 3, 0, 1] == x[0, 0, 0, 1]
    np.testing.assert_array_equal(out[0], np.rot90(x[0]))
    np.testing.assert_array_equal(out[1], x[1][:, ::-1])  # mirrored left-right
    np.testing.assert_array_equal(out[2], x[2][::-1, ::-1])  # 180 degrees
    four = x
    for _ in range(4):
        four = flip_rotate(four, np.ones(3, int), np.zeros(3, bool))
    np.testing.assert_array_equal(four, x)


def test_crop_resizes_back_by_nearest_neighbour():
    x = _batch(2, 4, 1)
    out = crop_resize(x, np.array([0, 2]), np.array([0, 1]), np.array([4, 2]))
    np.testing.assert_array_equal(out[0], x[0])  # the whole patch: unchanged
    # the 2 x 2 crop at (2, 1), each pixel a 2 x 2 block
    np.testing.assert_array_equal(out[1, :, :, 0], np.repeat(np.repeat(
        x[1, 2:4, 1:3, 0], 2, axis=0), 2, axis=1))
    with pytest.raises(FeatureError, match="outside a 4 x 4 patch"):
        crop_resize(x, np.array([0, 3]), np.array([0, 0]), np.array([4, 2]))


def test_band_dropout_blanks_exactly_one_band_and_brightness_scales():
    x = _batch(3, 4, 4)
    out = band_dropout(x, np.array([2, -1, 0]))
    blank = np.isnan(out).all(axis=(1, 2))  # (patch, band) fully nodata
    np.testing.assert_array_equal(blank, [[0, 0, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
    assert not np.isnan(out[~blank.any(axis=1)]).any()
    keep = ~np.isnan(out)
    np.testing.assert_array_equal(out[keep], x[keep])
    np.testing.assert_allclose(brightness(x, np.array([1.0, 0.5, 2.0]))[1], x[1] * 0.5)


def test_augment_is_seeded_and_keeps_values_of_the_patch():
    x = _batch(8, 32, 4) + 1
    a = augment(x, np.random.default_rng(3))
    b = augment(x, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and not np.array_equal(a, augment(x, np.random.default_rng(4)))
    # no dropout, no brightness: a view holds only pixels of its own patch
    c = augment(x, np.random.default_rng(5), p_dropout=0, max_brightness=0)
    for i in range(len(x)):
        assert set(np.unique(c[i])) <= set(np.unique(x[i]))


def test_vicreg_loss_terms():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(64, 8)).astype(np.float32)
    total, inv, var, cov = (float(v) for v in vicreg_loss(z, z))
    assert inv == 0.0 and var < 0.1  # unit-std dimensions: little variance penalty
    const = np.ones((64, 8), np.float32)
    _, inv_c, var_c, cov_c = (float(v) for v in vicreg_loss(const, const))
    assert var_c == pytest.approx(0.99, abs=1e-3) and cov_c == 0.0  # collapse is penalised
    _, inv_d, _, _ = (float(v) for v in vicreg_loss(z, -z))
    assert inv_d > 1.0


def real_patches(shared_data: Path, n: int = 320) -> np.ndarray:
    """(n, 32, 32, 4) reflectance patches of B02, B03, B04, B08 from bordeaux imgs_1."""
    import rasterio

    folder = shared_data / "oscd/images/bordeaux/imgs_1"
    bands = []
    for b in ("B02", "B03", "B04", "B08"):
        (path,) = folder.glob(f"*_{b}.tif")
        with rasterio.open(path) as ds:
            bands.append(ds.read(1).astype(np.float32) / 10000)
    img = np.stack(bands, axis=-1)
    offsets = [(y, x) for y in range(0, img.shape[0] - 31, 16)
               for x in range(0, img.shape[1] - 31, 16)]  # half-overlapping windows
    pick = np.random.default_rng(0).choice(len(offsets), min(n, len(offsets)), replace=False)
    return np.stack([img[y:y + 32, x:x + 32] for y, x in (offsets[i] for i in np.sort(pick))])


def test_short_training_learns_rotation_invariant_codes(shared_data: Path):
    from eominer.features.encoder import set_single_thread, standardise
    from eominer.features.ssl import fit_vicreg

    set_single_thread()
    x = real_patches(shared_data)
    assert len(x) >= 256
    mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))
    enc, losses = fit_vicreg(x, mean, std, epochs=4, batch_size=64, seed=0)
    assert losses[-1] < 0.95 * losses[0], losses

    z = np.asarray(enc(standardise(x, mean, std), training=False))
    zr = np.asarray(enc(standardise(np.rot90(x, 1, axes=(1, 2)), mean, std), training=False))
    other = np.roll(z, 7, axis=0)  # another patch of the archive
    d_rot = np.linalg.norm(z - zr, axis=1)
    d_other = np.linalg.norm(z - other, axis=1)
    assert np.median(d_rot / d_other) < 0.5
    assert (d_rot < d_other).mean() > 0.9


def test_a_small_archive_trains_on_one_batch_and_fewer_than_one_batch_is_refused(
        shared_data: Path):
    """24 real patches (the BigEarthNet mock's count): one whole batch per epoch, the
    loss recorded each epoch; 15 patches cannot make VICReg's batch statistics."""
    from eominer.features.encoder import set_single_thread
    from eominer.features.ssl import fit_ssl, fit_vicreg

    set_single_thread()
    x = real_patches(shared_data, 24)
    notes: list[str] = []
    enc, params, metrics = fit_ssl(x, epochs=3, dim=16, seed=0, log=notes.append)
    assert notes[0] == ("VICReg training on 24 patches, 3 epoch(s) of 1 step(s) of 24; so "
                        "few patches make one step per epoch: raise --epochs for more")
    losses = metrics["loss_history"]
    assert len(losses) == 3 and all(np.isfinite(losses)) and metrics["patches"] == 24
    assert np.asarray(enc(x[:2], training=False)).shape == (2, 16)
    mean, std = np.asarray(params["mean"]), np.asarray(params["std"])
    with pytest.raises(FeatureError, match="needs at least 16 patches, got 15"):
        fit_vicreg(x[:15], mean, std, epochs=1)
