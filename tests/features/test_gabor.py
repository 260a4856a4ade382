"""`gabor`: FFT responses equal scikit-image's `gabor` (reflect mode) on real patches."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.filters import gabor
from skimage.filters import gabor_kernel as sk_kernel

from eominer.features import build
from eominer.features.gabor import bank, gabor_features, gabor_kernel, gabor_responses, halo_for


@pytest.mark.parametrize("frequency", [0.05, 0.1, 0.2, 0.4])
@pytest.mark.parametrize("k", range(6))
def test_kernel_equals_skimage(frequency, k):
    theta = k * math.pi / 6
    np.testing.assert_allclose(gabor_kernel(frequency, theta), sk_kernel(frequency, theta),
                               atol=1e-12)


def test_responses_match_skimage_within_1e5_on_real_patches(bordeaux):
    band = bordeaux["B08"][96:224, 160:320]  # 4 x 5 real level-32 patches
    freqs, n_or = (0.05, 0.2, 0.4), 3
    kernels = bank(freqs, n_or)
    h = halo_for(kernels)
    padded = np.pad(band, h, mode="symmetric")  # what ARD blocks get at raster edges
    ours = list(gabor_responses(padded, h, kernels))
    worst = 0.0
    for resp, (f, k) in zip(ours, [(f, k) for f in freqs for k in range(n_or)], strict=True):
        re, im = gabor(band, f, theta=k * math.pi / n_or, mode="reflect")
        worst = max(worst, np.abs(resp.real - re).max(), np.abs(resp.imag - im).max())
    assert worst < 1e-5
    # per-patch statistics of the magnitude, as the descriptor reports them
    re, im = gabor(band, 0.2, theta=math.pi / 3, mode="reflect")
    mag = np.hypot(re, im)
    w = np.array([[32, 64, 32, 32], [64, 96, 32, 32], [0, 0, 64, 64]])
    feats = gabor_features(padded, h, kernels, w)
    col = 2 * (1 * n_or + 1)
    for i, (y, x, s, _) in enumerate(w):
        assert feats[i, col] == pytest.approx(mag[y:y + s, x:x + s].mean(), abs=1e-5)
        assert feats[i, col + 1] == pytest.approx(mag[y:y + s, x:x + s].std(), abs=1e-5)


@pytest.mark.parametrize("edge", [128, 256])
def test_tiling_does_not_change_the_features(bordeaux, grid_windows, edge):
    """One tile, or tiles of `edge` px whose last row and column are cut short and so
    take FFTs of their own, smaller size (384 = 256 + 128, 448 = 256 + 192)."""
    from eominer.features.gabor import _TiledFFT

    band = bordeaux["B08"][:384, :448]
    kernels = bank((0.1, 0.4), 2)
    h = halo_for(kernels)
    padded = np.pad(band, h, mode="symmetric")
    w = grid_windows(384, 448, sizes=(32, 64, 128))
    one = gabor_features(padded, h, kernels, w, tile=4096)
    many = gabor_features(padded, h, kernels, w, tile=edge + 2 * h)
    np.testing.assert_allclose(one, many, atol=1e-6)
    # FFT shapes with 256-px tiles (halo 17): the 128-row edge gets its own, smaller one;
    # the 192-column edge rounds up to the 128-px grid, so it keeps the full width
    conv = _TiledFFT(padded, h, kernels, align=128, tile=256 + 2 * h)
    assert [conv.shape(th, tw) for _, _, th, tw in conv.tiles()] == [
        (294, 294), (294, 294), (162, 294), (162, 294)]  # next_fast_len(290, 162)


def test_descriptor_columns_and_nodata(bordeaux, grid_windows):
    d = build("gabor", ["B02", "B03", "B04", "B08"], frequencies=(0.1, 0.3), orientations=4)
    assert d.dims == 2 * 4 * 2 and d.columns[0] == "gabor_f0_o0_mean"
    stack = np.pad(bordeaux["B08"][:128, :128], d.halo, mode="symmetric")[None].copy()
    stack[0, d.halo:d.halo + 32, d.halo:d.halo + 32] = np.nan
    X = d.compute(stack, grid_windows(128, 128, sizes=(32,)))
    assert np.isfinite(X).all()
    assert np.all(X[0] == 0) and np.all(X[1:, 0] > 0)


def test_changed_parameters_change_identity():
    a = build("gabor", ["B08"])
    b = build("gabor", ["B08"], frequencies=(0.1, 0.2))
    assert a.params != b.params and a.columns != b.columns


def test_kernel_spectra_are_reused_within_their_byte_budget(bordeaux, grid_windows):
    """Blocks of one shape share their kernel spectra (same features as computed
    afresh); other kernels or another FFT shape get their own; the budget evicts the
    least recently used."""
    from eominer.features import gabor as g

    band = bordeaux["B08"][:256, :320]
    kernels, other = bank((0.1, 0.4), 2), bank((0.2,), 3)
    h = max(halo_for(kernels), halo_for(other))
    padded = np.pad(band, h, mode="symmetric")
    w = grid_windows(256, 320, sizes=(32, 64))
    cache = g._SpectraCache(max_bytes=1 << 30)
    fresh = g._SpectraCache(max_bytes=0)  # keeps nothing: every call computes afresh
    conv = g._TiledFFT(padded, h, kernels)
    first = cache.get(conv, 128, 160)
    assert cache.get(g._TiledFFT(padded, h, kernels), 128, 160) is first
    assert cache.get(g._TiledFFT(padded, h, other), 128, 160) is not first
    np.testing.assert_array_equal(first[1], fresh.get(conv, 128, 160)[1])
    assert not fresh.items
    small = g._SpectraCache(max_bytes=sum(a.nbytes for a in first))  # room for one bank
    small.get(conv, 128, 160)
    small.get(conv, 100, 160)  # another FFT shape
    assert len(small.items) == 1 and small.bytes <= small.max_bytes
    small.bytes = small.max_bytes  # counted, but the items gone: nothing to evict, no error
    small.items.clear()
    assert len(small.get(conv, 128, 160)) == len(kernels)
    # the descriptor's values do not depend on what the cache held
    # (clearing the items alone left the budget counting them: a later extract in this
    # process then evicted from an empty cache, "KeyError: 'dictionary is empty'")
    g._SPECTRA.clear()
    assert g._SPECTRA.bytes == 0
    a = gabor_features(padded, h, kernels, w)
    b = gabor_features(padded, h, kernels, w)
    np.testing.assert_array_equal(a, b)
