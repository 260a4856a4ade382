"""Benchmark: MOSAIKS random convolutional features on a full Sentinel-2 tile.

    python bench/bench_mosaiks.py [--size 10980] [--procs 2] [--filters 64] [--k 3]

Real data made tile-sized as in bench_features.py: OSCD Bordeaux's bands of the default
bank (the 10 m bands, and the 20 m ones doubled to 10 m as the ARD holds them) repeated
mirrored (no seams) to size x size. The bank (K filters, k x k x bands) is
sampled from the source bands; the tile is cut in row blocks of 1024 px (plus the
k // 2 halo) split over `procs` processes with one BLAS thread each, as extract's Ray
tasks run; patches of levels 32, 64 and 128 px. Bound: the convolution GEMM's
floating-point operations (with the default bias 0, 2 x pixels x K x k^2 bands: the K
filters only, `mosaiks_features` gets the other K columns from ReLU(-c) = ReLU(c) - c) at
the SGEMM rate measured in the same processes (a 2048^3 product), divided over the
processes. Printed: time, bound, ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from eominer.features.mosaiks import Bank

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
BLOCK = 1024


def source_bands() -> np.ndarray:
    import numpy as np
    import rasterio
    from bench_features import shared_data

    from eominer.features.mosaiks import DEFAULT_BANDS

    folder = shared_data() / "oscd" / "images" / "bordeaux" / "imgs_1"
    out = []
    for b in DEFAULT_BANDS:
        with rasterio.open(next(folder.glob(f"*_{b}.tif"))) as ds:
            a = ds.read(1).astype(np.float32) / np.float32(10000)
        if out and a.shape != out[0].shape:  # a 20 m band: each pixel to 2 x 2
            a = np.kron(a, np.ones((2, 2), np.float32))[:out[0].shape[0], :out[0].shape[1]]
        out.append(a)
    return np.stack(out)


def sgemm_rate() -> float:
    import numpy as np

    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    a @ a
    t0 = time.perf_counter()
    for _ in range(3):
        a @ a
    return 3 * 2 * 2048 ** 3 / (time.perf_counter() - t0)


def _part(args: tuple[np.ndarray, Bank, int, int, int]) -> tuple[float, float, int]:
    from bench_features import block_padded, windows_for

    from eominer.features.mosaiks import mosaiks_features

    src, bank, size, y0, y1 = args
    rate = sgemm_rate()
    h = bank.k // 2
    t, n = 0.0, 0
    for b0 in range(y0, y1, BLOCK):
        b1 = min(b0 + BLOCK, y1)
        block = block_padded(src, size, b0, b1, h)
        win = windows_for(b1 - b0, size)
        t0 = time.perf_counter()
        mosaiks_features(block, win, bank)
        t += time.perf_counter() - t0
        n += len(win)
    return t, rate, n


def main() -> None:
    from eominer.features.mosaiks import DEFAULT_BANDS, gemm_flops, sample_bank

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=10980)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--filters", type=int, default=64)
    ap.add_argument("--k", type=int, default=3)
    a = ap.parse_args()
    src = source_bands()
    bank = sample_bank([src], a.filters, a.k, seed=0)
    step = -(-a.size // a.procs // BLOCK) * BLOCK
    parts = [(src, bank, a.size, y, min(y + step, a.size)) for y in range(0, a.size, step)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(len(parts)) as pool:
        res = list(pool.map(_part, parts))
    wall = time.perf_counter() - t0
    t = max(r[0] for r in res)
    rate = min(r[1] for r in res)
    n = sum(r[2] for r in res)
    bound = gemm_flops(step, a.size, len(DEFAULT_BANDS), a.filters, a.k) / rate
    print(f"mosaiks K={a.filters} k={a.k} ({2 * a.filters} columns), {len(DEFAULT_BANDS)} bands, "
          f"{a.size} x {a.size} px, {n} patches (levels 32/64/128), {len(parts)} processes:"
          f" {t:.1f} s compute ({wall:.1f} s wall incl. tiling); GEMM bound {bound:.1f} s "
          f"at {rate / 1e9:.0f} GFLOP/s per process; ratio {t / bound:.2f}")


if __name__ == "__main__":
    main()
