"""Per-patch reductions against plain numpy, with and without nodata."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.features.reduce import patch_histograms, patch_mean_std, patch_percentiles


@pytest.fixture
def image(bordeaux) -> np.ndarray:
    img = bordeaux["B08"][:256, :320].copy()
    img[40:50, 70:200] = np.nan  # a nodata stripe across several patches
    img[64:128, 0:64] = np.nan   # one whole level-64 patch (and its four level-32 ones)
    return img


def expected(img, windows, fn):
    out = []
    for y, x, h, w in windows:
        v = img[y:y + h, x:x + w]
        v = v[~np.isnan(v)]
        out.append(fn(v) if v.size else 0.0)
    return np.array(out)


def test_mean_std_match_numpy_per_window(image, grid_windows):
    w = grid_windows(*image.shape, sizes=(32, 64, 128))
    mean, std, cnt = patch_mean_std(image, w)
    np.testing.assert_allclose(mean, expected(image, w, np.mean), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(std, expected(image, w, np.std), rtol=1e-3, atol=2e-5)
    np.testing.assert_array_equal(cnt, expected(image, w, np.size))


def test_all_nodata_patch_gets_zero_not_nan(image, grid_windows):
    w = grid_windows(*image.shape, sizes=(32, 64))
    mean, std, cnt = patch_mean_std(image, w)
    hit = (w[:, 0] == 64) & (w[:, 1] == 0) & (w[:, 2] == 64)
    assert cnt[hit] == 0 and mean[hit] == 0 and std[hit] == 0
    assert np.isfinite(mean).all() and np.isfinite(std).all()


def test_unaligned_windows_take_the_general_path(image):
    w = np.array([[3, 5, 20, 20], [100, 131, 40, 40]])
    mean, std, _ = patch_mean_std(image, w)
    np.testing.assert_allclose(mean, expected(image, w, np.mean), rtol=1e-5)
    np.testing.assert_allclose(std, expected(image, w, np.std), rtol=1e-4)


@pytest.mark.parametrize("qs", [(10, 50, 90), (0, 33.3, 100)])
def test_percentiles_match_numpy(image, grid_windows, qs):
    """Strips with nodata (sorted) and without (partitioned) give numpy's values,
    down to the end ranks."""
    w = grid_windows(*image.shape, sizes=(32, 64, 128))
    got = patch_percentiles(image, w, qs)
    want = np.stack([expected(image, w, lambda v, q=q: np.percentile(v, q))
                     for q in qs], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_histograms_count_codes_and_skip_invalid(grid_windows):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 12, (128, 96)).astype(np.uint8)
    codes[:10, :10] = 12  # invalid
    w = grid_windows(128, 96, sizes=(32, 64))
    h = patch_histograms(codes, w, 12)
    for i, (y, x, s, _) in enumerate(w):
        v = codes[y:y + s, x:x + s].ravel()
        v = v[v < 12]
        np.testing.assert_allclose(h[i], np.bincount(v, minlength=12) / v.size, rtol=1e-6)
    np.testing.assert_allclose(h.sum(axis=1), 1.0, rtol=1e-6)
