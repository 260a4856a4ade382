"""What the encoders see: any square patch size brought to 32 x 32 on real Bordeaux
reflectance (no TensorFlow needed)."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import FeatureError
from eominer.features.encoder import _area_resample, area_weights, patch_tensor
from eominer.features.encoder_train import training_level


@pytest.fixture(scope="module")
def stack(bordeaux) -> np.ndarray:
    s = np.stack([bordeaux[b] for b in ("B02", "B03", "B04", "B08")])[:, :256, :256].copy()
    s[:, 40:53, 70:90] = np.nan  # a nodata hole across cell edges
    return s


@pytest.mark.parametrize("size", [8, 16, 64, 128])
def test_area_resampling_equals_the_block_paths_where_both_apply(stack, size):
    win = np.array([[37, 61, size, size]])
    exact = patch_tensor(stack, win)[0]
    area = np.moveaxis(_area_resample(stack[:, 37:37 + size, 61:61 + size]), 0, -1)
    assert np.array_equal(np.isnan(exact), np.isnan(area))
    np.testing.assert_allclose(area, exact, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_a_120_px_patch_is_resampled_by_area(stack):
    clean = patch_tensor(stack, np.array([[100, 100, 120, 120]]))[0]
    assert clean.shape == (32, 32, 4) and np.isfinite(clean).all()
    # area resampling keeps the patch mean (every input pixel carries the same weight)
    np.testing.assert_allclose(clean.mean(axis=(0, 1)),
                               stack[:, 100:220, 100:220].mean(axis=(1, 2)), rtol=1e-5)
    # cell (0, 1) covers rows [0, 3.75) and columns [3.75, 7.5): by hand
    p = stack[0, 100:220, 100:220].astype(np.float64)
    wy = np.array([1, 1, 1, 0.75])
    wx = np.array([0.25, 1, 1, 1, 0.5])
    want = (wy[:, None] * wx[None, :] * p[0:4, 3:8]).sum() / (wy.sum() * wx.sum())
    assert clean[0, 1, 0] == pytest.approx(want, rel=1e-5)

    holed = patch_tensor(stack, np.array([[0, 0, 120, 120]]))[0]
    # rows 40-52 x columns 70-89 are nodata: cells wholly inside are NaN, cells that
    # also cover valid pixels average those only
    inside = np.isnan(holed[..., 0])
    assert inside[11, 19] and inside[12, 22]            # rows 41.25-45, cols 71.25-86.25
    assert np.isfinite(holed[10, 18, 0])                # rows 37.5-41.25: part valid
    # cell (10, 18): rows [37.5, 41.25) x columns [67.5, 71.25); the hole's corner
    # (rows >= 40, columns >= 70) drops out of both sums
    edge = np.array([0.5, 1, 1, 1, 0.25])
    p = stack[0, 37:42, 67:72].astype(np.float64)
    w = np.outer(edge, edge) * np.isfinite(p)
    assert holed[10, 18, 0] == pytest.approx((w * np.nan_to_num(p)).sum() / w.sum(), rel=1e-5)


def test_area_weights_partition_each_input_pixel():
    for size in (12, 20, 120):
        w = area_weights(size)
        np.testing.assert_allclose(w.sum(axis=1), 1.0)
        np.testing.assert_allclose(w.sum(axis=0), 32 / size)  # each pixel shared in full


def test_non_square_patches_are_refused(stack):
    with pytest.raises(FeatureError, match="square"):
        patch_tensor(stack, np.array([[0, 0, 32, 16]]))


def test_training_level_is_the_level_nearest_to_32_px():
    assert training_level(np.array([16, 32, 64])) == 32
    assert training_level(np.array([16, 64])) == 64      # equally near: the larger
    assert training_level(np.array([120])) == 120        # BigEarthNet's patches
    assert training_level(np.array([4, 20])) == 20
    assert training_level(np.array([], int)) == 0
