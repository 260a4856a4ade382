"""MOSAIKS random convolutional features on real Bordeaux bands."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import FeatureError
from eominer.features import build
from eominer.features.mosaiks import mosaiks_features, sample_bank, standardise

BANDS = ("B02", "B03", "B04", "B08")


@pytest.fixture(scope="module")
def image(bordeaux) -> np.ndarray:
    return np.stack([bordeaux[b] for b in BANDS])  # (4, 517, 461) reflectance


@pytest.fixture(scope="module")
def bank(image):
    return sample_bank([image], n_filters=8, k=3, seed=3)


def reference(img: np.ndarray, windows: np.ndarray, bank, bias: float) -> np.ndarray:
    """Direct slow reference: scipy correlate per filter and band, ReLU, loop per window."""
    from scipy.signal import correlate

    h = bank.k // 2
    z, valid = standardise(img, bank.mean, bank.std)
    zp = np.pad(z, ((0, 0), (h, h), (h, h)), mode="symmetric").astype(np.float64)
    out = np.zeros((len(windows), 2 * len(bank.filters)))
    for i, f in enumerate(bank.filters.astype(np.float64)):
        c = sum(correlate(zp[b], f[b], mode="valid") for b in range(len(f)))
        for sign, col in ((1, i), (-1, i + len(bank.filters))):
            r = np.maximum(sign * c - bias, 0)
            for j, (y, x, hh, ww) in enumerate(windows):
                v = valid[y:y + hh, x:x + ww]
                out[j, col] = r[y:y + hh, x:x + ww][v].mean() if v.any() else 0.0
    return out


@pytest.mark.parametrize("bias", [0.5, 0.0])  # 0: the default, ReLU(-c) from ReLU(c) - c
def test_values_equal_the_direct_convolution(image, bank, grid_windows, bias):
    crop = image[:, 100:196, 50:178].copy()  # 96 x 128 px
    crop[1, 10:14, 20:30] = np.nan  # a nodata hole: left out of the patch means
    windows = np.concatenate([grid_windows(96, 128, (16, 32)),
                              [[5, 7, 13, 21]]]).astype(np.int64)  # and one off the grid
    padded = np.pad(crop, ((0, 0), (1, 1), (1, 1)), mode="symmetric")
    got = mosaiks_features(padded, windows, bank, bias=bias)
    want = reference(crop, windows, bank, bias)
    assert got.shape == (len(windows), 16)
    assert np.abs(got - want).max() < 1e-4
    assert (got > 0).mean() > 0.3  # the ReLUs are not all off


def test_blockwise_equals_whole_band(image, bank, grid_windows):

    img = image[:, :256, :192]
    d = build("mosaiks", list(BANDS), n_filters=8, k=3, seed=3, bands=BANDS, bank=bank)
    whole_pad = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="symmetric")
    windows = grid_windows(256, 192, (32, 64))
    whole = d.compute(whole_pad, windows)
    parts = np.zeros_like(whole)
    for y0 in range(0, 256, 64):  # blocks of 64 rows with a 1-row halo from the neighbours
        r0, r1 = max(0, y0 - 1), min(256, y0 + 65)
        blk = img[:, r0:r1]
        blk = np.pad(blk, ((0, 0), (1 - (y0 - r0), 1 - (r1 - y0 - 64)), (1, 1)),
                     mode="symmetric")
        sel = (windows[:, 0] >= y0) & (windows[:, 0] < y0 + 64)
        parts[sel] = d.compute(blk, windows[sel] - [y0, 0, 0, 0])
    np.testing.assert_allclose(parts, whole, atol=1e-5)


def test_bank_is_deterministic_by_seed(image):
    a = sample_bank([image], n_filters=8, k=3, seed=1)
    b = sample_bank([image], n_filters=8, k=3, seed=1)
    c = sample_bank([image], n_filters=8, k=3, seed=2)
    np.testing.assert_array_equal(a.filters, b.filters)
    assert a.digest() == b.digest() != c.digest()
    norms = np.linalg.norm(a.filters.reshape(8, -1), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    plain = sample_bank([image], n_filters=8, k=3, seed=1, whiten=False)
    assert not np.allclose(plain.filters, a.filters)


def test_params_are_the_identity(bank):
    d = build("mosaiks", list(BANDS) + ["B11"], n_filters=8, k=3, seed=3, bands=BANDS,
              bank=bank)
    assert d.params == {"n_filters": 8, "k": 3, "seed": 3, "bands": list(BANDS),
                        "whiten": True, "bias": 0.0, "bank_id": f"bank-{bank.digest()}"}
    assert d.dims == 16 and d.halo == 1 and d.bands == BANDS
    assert d.columns[0] == "rcf_000_pos" and d.columns[8] == "rcf_000_neg"
    with pytest.raises(FeatureError, match=r"needs a filter bank"):
        build("mosaiks", list(BANDS), bands=BANDS)
    with pytest.raises(FeatureError, match=r"expected \(16, 4, 3, 3\)"):
        build("mosaiks", list(BANDS), n_filters=16, bands=BANDS, bank=bank)
    # the default: the 10 m bands, then the 20 m ones
    with pytest.raises(FeatureError, match=r"needs bands B02, B03, B04, B08, B05, B06, B07, "
                                           r"B8A, B11, B12; .* \(missing B05, B06"):
        build("mosaiks", list(BANDS) + ["B11"], bank=bank)
    with pytest.raises(FeatureError, match="k must be odd"):
        sample_bank([np.zeros((4, 8, 8), np.float32)], n_filters=2, k=2)
