"""`gabor`: mean and std of Gabor response magnitudes per patch, for a filter bank.

The bank is `frequencies` x `orientations` complex Gabor kernels, defined as in
scikit-image's `gabor_kernel` (isotropic Gaussian envelope whose width follows from
the frequency and the bandwidth in octaves, truncated at `n_stds` sigmas). Responses
equal `skimage.filters.gabor(band, f, theta, mode="reflect")` (tested within 1e-5),
but are computed once per band with FFT convolution over overlapping tiles
(overlap-save) instead of per patch: each tile's spectrum is taken once and reused by
every filter; the tile's mean is removed before the FFT (and its exact response added
back) so float32 FFTs keep 1e-6 accuracy. Tiles are aligned with the patch grid, so
per-patch statistics are reduced tile by tile without a full-size response image; the
tiles cut short at a block's edges take FFTs of their own, smaller size.

Input: one band (default B08, 10 m NIR) or `luminance` (0.2125 B04 + 0.7154 B03 +
0.0721 B02, ITU-R BT.709 weights). Nodata pixels are filled with the block's valid
mean before filtering and left out of the per-patch statistics.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

from eominer.features.reduce import patch_mean_std
from eominer.features.registry import Descriptor, require_bands

VERSION = 1
LUMINANCE = {"B04": 0.2125, "B03": 0.7154, "B02": 0.0721}
DEFAULT_FREQUENCIES = (0.05, 0.1, 0.2, 0.4)
TILE = 1024  # FFT tile edge: large enough to amortise the halo, small enough for cache
# Kernel spectra kept between calls (an extract worker runs block after block of the
# same shapes): 24 kernel FFTs cost ~25% of a small block's time. Bounded by bytes, so
# one full-tile bank (24 x 968^2 complex64, 180 MB) and its edge tiles' banks fit.
SPECTRA_CACHE_BYTES = 384 * 2**20


def sigma_for(frequency: float, bandwidth: float) -> float:
    """Gaussian sigma of a Gabor filter of `bandwidth` octaves at `frequency` cycles/px."""
    b = 2.0 ** bandwidth
    return math.sqrt(math.log(2) / 2) / math.pi * (b + 1) / (b - 1) / frequency


def gabor_kernel(frequency: float, theta: float, bandwidth: float = 1.0,
                 n_stds: float = 3.0) -> np.ndarray:
    """Complex128 kernel, odd-sized, centred (same definition as scikit-image)."""
    s = sigma_for(frequency, bandwidth)
    c, sn = math.cos(theta), math.sin(theta)
    hx = math.ceil(max(abs(n_stds * s * c), abs(n_stds * s * sn), 1))
    hy = math.ceil(max(abs(n_stds * s * c), abs(n_stds * s * sn), 1))
    y, x = np.mgrid[-hy:hy + 1, -hx:hx + 1].astype(np.float64)
    xr = x * c + y * sn
    yr = -x * sn + y * c
    envelope = np.exp(-0.5 * (xr ** 2 + yr ** 2) / s ** 2) / (2 * math.pi * s * s)
    return envelope * np.exp(1j * 2 * math.pi * frequency * xr)


def bank(frequencies: Sequence[float], orientations: int, bandwidth: float = 1.0,
         n_stds: float = 3.0) -> list[np.ndarray]:
    """Kernels in column order: frequency-major, orientation k * pi / orientations."""
    return [gabor_kernel(f, k * math.pi / orientations, bandwidth, n_stds)
            for f in frequencies for k in range(orientations)]


def halo_for(kernels: Sequence[np.ndarray]) -> int:
    return max(max(k.shape) // 2 for k in kernels)


def _fill_nodata(img: np.ndarray) -> tuple[np.ndarray, bool]:
    nan = np.isnan(img)
    if not nan.any():
        return img, False
    fill = float(np.nanmean(img)) if not nan.all() else 0.0
    return np.where(nan, np.float32(fill), img), True


class _TiledFFT:
    """Overlap-save convolution of one padded image with many kernels."""

    def __init__(self, padded: np.ndarray, halo: int, kernels: Sequence[np.ndarray],
                 align: int = 1, tile: int = TILE, workers: int = 1) -> None:
        from scipy import fft

        self.fft = fft
        self.p, self.h, self.workers = padded, halo, workers
        self.rows, self.cols = padded.shape[0] - 2 * halo, padded.shape[1] - 2 * halo
        self.kernels, self.align = list(kernels), align
        step = max(align, (tile - 2 * halo) // align * align)
        self.ty = min(step, -(-self.rows // align) * align)
        self.tx = min(step, -(-self.cols // align) * align)
        self.sums = [complex(k.sum()) for k in kernels]
        # this call's banks, one per FFT shape, held here whatever the cache evicts
        self.banks: dict[tuple[int, int], list[np.ndarray]] = {}

    def shape(self, th: int, tw: int) -> tuple[int, int]:
        """FFT shape of a tile of th x tw output pixels: its size rounded up to the patch
        grid, plus the halo. So the tiles cut short at the block's bottom and right edges
        get FFTs of their own size instead of a full tile's (a 10980-px row of 896-px
        tiles ends with 228 px), and a block of one tile keeps the shape it always had."""
        a = self.align
        return (self.fft.next_fast_len(-(-th // a) * a + 2 * self.h),
                self.fft.next_fast_len(-(-tw // a) * a + 2 * self.h))

    def spectra(self, ny: int, nx: int) -> list[np.ndarray]:
        if (ny, nx) not in self.banks:
            self.banks[ny, nx] = _SPECTRA.get(self, ny, nx)
        return self.banks[ny, nx]

    def kernel_spectrum(self, k: np.ndarray, ny: int, nx: int) -> np.ndarray:
        # centre the kernel on (0, 0) (wrapped) so output pixel i sees inputs i - h .. i + h
        rows = (np.arange(k.shape[0]) - k.shape[0] // 2) % ny
        cols = (np.arange(k.shape[1]) - k.shape[1] // 2) % nx
        buf = np.zeros((ny, nx), np.complex64)
        buf[np.ix_(rows, cols)] = k
        return self.fft.fft2(buf, overwrite_x=True, workers=self.workers)

    def tiles(self) -> Iterator[tuple[int, int, int, int]]:
        for y in range(0, self.rows, self.ty):
            for x in range(0, self.cols, self.tx):
                yield y, x, min(self.ty, self.rows - y), min(self.tx, self.cols - x)

    def responses(self, y: int, x: int, th: int, tw: int) -> Iterator[np.ndarray]:
        """Complex64 (th, tw) response of each kernel at output tile (y, x). The array
        yielded is overwritten by the next kernel's: use or copy it before moving on."""
        fft, h, w = self.fft, self.h, self.workers
        ny, nx = self.shape(th, tw)
        src = self.p[y: y + th + 2 * h, x: x + tw + 2 * h]
        mean = float(src.mean(dtype=np.float64))
        tile = np.zeros((ny, nx), np.float32)
        tile[: src.shape[0], : src.shape[1]] = src - np.float32(mean)
        spec = fft.fft2(tile, workers=w)
        # one buffer reused by every kernel: a fresh 7 MB output per transform costs page
        # faults
        buf = np.empty((ny, nx), np.complex64)
        for kspec, ksum in zip(self.spectra(ny, nx), self.sums, strict=True):
            np.multiply(spec, kspec, out=buf)
            # 2-D inverse as two 1-D passes: along x, then along y for the output columns
            # only (the halo columns are never needed), in place on that strided view
            fft.ifft(buf, axis=1, overwrite_x=True, workers=w)
            cols = buf[:, h: h + tw]
            # the tile mean's exact response (mean x kernel sum, the same at every pixel)
            # enters as the DC term of the y pass instead of a pass over the output
            cols[0] += np.complex64(mean * ksum * ny)
            yield fft.ifft(cols, axis=0, overwrite_x=True, workers=w)[h: h + th]


class _SpectraCache:
    """Least recently used kernel spectra per (FFT shape, kernels), within a byte budget."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.lock = max_bytes, threading.Lock()
        self.items: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()
        self.bytes = 0

    def get(self, conv: _TiledFFT, ny: int, nx: int) -> list[np.ndarray]:
        key = (ny, nx, tuple((k.shape, k.tobytes()) for k in conv.kernels))
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        spectra = [conv.kernel_spectrum(k, ny, nx) for k in conv.kernels]
        size = sum(a.nbytes for a in spectra)
        with self.lock:
            if size > self.max_bytes or key in self.items:  # too big, or another thread's
                return spectra
            while self.items and self.bytes + size > self.max_bytes:
                _, old = self.items.popitem(last=False)
                self.bytes -= sum(a.nbytes for a in old)
            self.items[key] = spectra
            self.bytes += size
        return spectra

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.bytes = 0


_SPECTRA = _SpectraCache(SPECTRA_CACHE_BYTES)


def gabor_responses(padded: np.ndarray, halo: int, kernels: Sequence[np.ndarray],
                    workers: int = 1) -> Iterator[np.ndarray]:
    """Full complex64 response images (rows, cols) of each kernel, for tests and small
    images; `padded` has `halo` >= every kernel's half-size on each side."""
    conv = _TiledFFT(padded.astype(np.float32, copy=False), halo, kernels, workers=workers)
    outs = [np.empty((conv.rows, conv.cols), np.complex64) for _ in kernels]
    for y, x, th, tw in conv.tiles():
        for out, r in zip(outs, conv.responses(y, x, th, tw), strict=True):
            out[y: y + th, x: x + tw] = r
    yield from outs


def gabor_features(padded: np.ndarray, halo: int, kernels: Sequence[np.ndarray],
                   windows: np.ndarray, valid: np.ndarray | None = None,
                   workers: int = 1, tile: int = TILE) -> np.ndarray:
    """(n, 2 * len(kernels)) [mean, std] of |response| per window, kernel by kernel."""
    sizes = np.unique(windows[:, 2]) if len(windows) else np.array([1])
    align = int(np.lcm.reduce(sizes.astype(np.int64)))
    aligned = bool(np.all(windows[:, 0] % windows[:, 2] == 0)
                   and np.all(windows[:, 1] % windows[:, 3] == 0))
    conv = _TiledFFT(padded, halo, kernels, align=align if aligned else 1, tile=tile,
                     workers=workers)
    out = np.zeros((len(windows), 2 * len(kernels)), np.float32)
    if not aligned:
        for k, resp in enumerate(gabor_responses(padded, halo, kernels, workers)):
            mag = np.abs(resp)
            if valid is not None:
                mag[~valid] = np.nan
            mean, std, _ = patch_mean_std(mag, windows)
            out[:, 2 * k], out[:, 2 * k + 1] = mean, std
        return out
    for y, x, th, tw in conv.tiles():
        inside = np.flatnonzero(
            (windows[:, 0] >= y) & (windows[:, 0] + windows[:, 2] <= y + th)
            & (windows[:, 1] >= x) & (windows[:, 1] + windows[:, 3] <= x + tw))
        if not inside.size:
            continue
        local = windows[inside] - np.array([y, x, 0, 0])
        mask = None if valid is None else ~valid[y: y + th, x: x + tw]
        mag = np.empty((th, tw), np.float32)
        for k, resp in enumerate(conv.responses(y, x, th, tw)):
            np.abs(resp, out=mag)
            if mask is not None:
                mag[mask] = np.nan
            mean, std, _ = patch_mean_std(mag, local)
            out[inside, 2 * k], out[inside, 2 * k + 1] = mean, std
    return out


def band_image(stack: np.ndarray, bands: Sequence[str], band: str) -> np.ndarray:
    if band == "luminance":
        pos = {b: i for i, b in enumerate(bands)}
        return sum(np.float32(w) * stack[pos[b]] for b, w in LUMINANCE.items())
    return stack[list(bands).index(band)]


def _compute(stack: np.ndarray, windows: np.ndarray, *, band: str, frequencies: list[float],
             orientations: int, bandwidth: float, n_stds: float, input_bands: list[str],
             ) -> np.ndarray:
    kernels = bank(frequencies, orientations, bandwidth, n_stds)
    h = halo_for(kernels)
    img, filled = _fill_nodata(band_image(stack, input_bands, band))
    valid = None
    if filled:
        valid = ~np.isnan(band_image(stack, input_bands, band))[h:-h, h:-h]
    return gabor_features(img.astype(np.float32, copy=False), h, kernels, windows, valid)


def build(product_bands: Sequence[str], band: str = "B08",
          frequencies: Sequence[float] = DEFAULT_FREQUENCIES, orientations: int = 6,
          bandwidth: float = 1.0, n_stds: float = 3.0) -> Descriptor:
    inputs = list(LUMINANCE) if band == "luminance" else [band]
    require_bands("gabor", product_bands, inputs)
    freqs = [float(f) for f in frequencies]
    halo = halo_for(bank(freqs, orientations, bandwidth, n_stds))
    cols = [f"gabor_f{i}_o{k}_{s}" for i in range(len(freqs)) for k in range(orientations)
            for s in ("mean", "std")]
    params = {"band": band, "frequencies": freqs, "orientations": int(orientations),
              "bandwidth": float(bandwidth), "n_stds": float(n_stds), "input_bands": inputs}
    return Descriptor("gabor", VERSION, "S2", params, tuple(inputs), halo, tuple(cols), _compute)
