"""Benchmark: change map of a full Sentinel-2 tile pair (10980 x 10980 px), per method.

    python bench/bench_change.py [--size 10980]
        [--methods encoder,cva,irmad,selftrain,selftrain_encoder,regression,selftrain_regression]
        [--threads 2]

The pair is real data made tile-sized: OSCD Bordeaux's two co-registered dates (10 land
bands, uint16 DN) repeated (mirrored, so no seams) to size x size. Timed per method:
distance (encoder and selftrain training included), probability, Otsu threshold, and both
COGs written.
Target: under 180 s per pair on our 2-core machine (CANDELA's frost pipeline: under an
hour on one vCPU; EVOLVE's Sentinel-2 chain: 3 min 15 s per pair on a Dask cluster).
Bound, measured in the same run: the time to stream both dates once through memory
(every method must read them), and for the encoder the GEMM bound of its convolutions
(its multiply-adds at the peak SGEMM rate measured here on the same threads), and for
selftrain the Gaussian-filter bound: the full-size filters it must run (7: per scale the
seed map's and the decision's smoothed sums, and the final smoothing), each timed here on
one full-size band, by row blocks on the same threads; `selftrain_encoder` against the sum of the
two (it runs the encoder, then selftrain guided by its distance); `selftrain_regression`
against selftrain's filters (its guide's fit and 10 x 11 product per pixel are a few GFLOP).

Then what `eominer change` adds for an ingested pair, on the map of the default method
(`selftrain_regression`, when it is among the methods): the per-patch scores
(`change.scores`) and the tails and spreads of the differences (`diff_tails`,
`change.tails`) of every patch of levels 32, 64 and 128, against the memory bound, and the
whole pair (map, COGs, scores, tails) against the 180 s target.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from eominer.change.align import Scene
    from eominer.change.maps import ChangeMap


def build_pair(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, tuple[float, ...]]:
    import numpy as np

    from eominer.change.align import CHANGE_BANDS, align_pair, scene_from_path

    root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oscd"
    root = Path(os.environ.get("EOMINER_SHARED_DATA", root.parent)) / "oscd"
    base = root / "images" / "bordeaux"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pair = align_pair(scene_from_path(base / "imgs_1"), scene_from_path(base / "imgs_2"))

    def dn(scene: Scene) -> np.ndarray:
        return np.stack([scene.band(b) for b in CHANGE_BANDS]).astype(np.uint16)

    def tile(a: np.ndarray) -> np.ndarray:
        _, h, w = a.shape
        row = np.concatenate([a, a[:, :, ::-1]], axis=2)
        block = np.concatenate([row, row[:, ::-1, :]], axis=1)  # 2h x 2w, mirrored
        reps = (1, -(-size // (2 * h)), -(-size // (2 * w)))
        out = np.empty((a.shape[0], size, size), dtype=a.dtype)
        for i in range(a.shape[0]):  # band by band: no full-size temporary
            out[i] = np.tile(block[i], reps[1:])[:size, :size]
        return out

    x1, x2 = tile(dn(pair.first)), tile(dn(pair.second))
    valid = (x1 != 0).all(axis=0) & (x2 != 0).all(axis=0)
    return x1, x2, valid, pair.crs_wkt, pair.transform


def memory_bound(x1: np.ndarray, x2: np.ndarray) -> float:
    import numpy as np

    t = time.perf_counter()
    for x in (x1, x2):
        for i in range(x.shape[0]):
            np.add.reduce(x[i], axis=None, dtype=np.uint64)
    return time.perf_counter() - t


@functools.cache
def sgemm_rate(threads: int) -> float:
    """Peak float32 FLOP/s here: a large square product (the best any convolution can do;
    the encoder's own skinny products run well below it). The best of 5 products, measured
    once per run, so every method of the run is held against the same bound."""
    import numpy as np

    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    a @ a
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2 * 2048**3 / best


def filter_bound(valid: np.ndarray, threads: int) -> float:
    """Seconds for the full-size Gaussian filters selftrain cannot avoid on a scene with no
    masked pixel (the benchmark's): per scale the seed map's and the decision's smoothed
    sums (3 x 2), and the final sigma-1 smoothing (1); each timed on one full-size band by
    row blocks on `threads`, as selftrain runs them."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    from eominer.change.rowblocks import map_row_blocks
    from eominer.change.selftrain import POST_SIGMA, SCALES, TRUNCATE

    band = np.random.default_rng(0).random(valid.shape, dtype=np.float32)

    def timed(sigma: float) -> float:
        reach = int(TRUNCATE * sigma + 0.5)
        t = time.perf_counter()
        map_row_blocks(lambda a0, a1: gaussian_filter(band[a0:a1], sigma, truncate=TRUNCATE),
                       band.shape, reach, threads)
        return time.perf_counter() - t

    return sum(2 * timed(s) for s in SCALES) + timed(POST_SIGMA)


def encoder_macs_per_pixel(bands: int) -> float:
    """Multiply-adds of the encoder's inference per 10 m pixel and date (on pool x pool
    means: 1 / pool^2 per pixel); `encoder` and `selftrain_encoder`'s guide are one."""
    from eominer.change.encoder import EncoderConfig

    c = EncoderConfig()
    per = bands * c.hidden * 9 + c.hidden * c.hidden * 9 + c.hidden * c.features
    return per / (c.pool * c.pool)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=10980)
    ap.add_argument("--methods", default="encoder,cva,irmad,selftrain,selftrain_regression")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    from eominer.change.maps import change_map, write_maps

    t = time.perf_counter()
    x1, x2, valid, crs, transform = build_pair(args.size)
    print(f"pair {args.size} x {args.size} px, {x1.shape[0]} bands x 2 dates "
          f"(built in {time.perf_counter() - t:.1f} s)")
    bound_mem = memory_bound(x1, x2)
    print(f"bound: stream both dates once: {bound_mem:.2f} s")
    target = 180.0
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            t, cpu = time.perf_counter(), time.process_time()
            cmap = change_map(x1, x2, valid, method, seed=0, threads=args.threads)
            t_map = time.perf_counter() - t
            write_maps(cmap, crs, transform, Path(tmp) / f"{method}.tif")
            total = time.perf_counter() - t
            cpu = time.process_time() - cpu  # this process's CPU (all its threads)
            line = (f"{method}: {total:.1f} s per pair (map {t_map:.1f} s, COGs "
                    f"{total - t_map:.1f} s; CPU {cpu:.1f} s: wall is inflated when the machine "
                    f"is shared); target {target:.0f} s: ratio "
                    f"{total / target:.2f}; vs memory bound {total / bound_mem:.0f}x")
            gemm = fb = 0.0
            if method in ("encoder", "selftrain_encoder"):
                flops = 2 * 2 * encoder_macs_per_pixel(x1.shape[0]) * valid.size
                gemm = flops / sgemm_rate(args.threads)
            if method in ("selftrain", "selftrain_encoder", "selftrain_regression"):
                fb = filter_bound(valid, args.threads)
            if gemm and fb:  # the encoder's inference, then selftrain's filters
                line += (f"; vs GEMM bound of the encoder's inference ({gemm:.1f} s) + "
                         f"Gaussian-filter bound ({fb:.1f} s): {total / (gemm + fb):.1f}x")
            elif gemm:
                line += f"; vs GEMM bound of inference ({gemm:.1f} s) {total / gemm:.1f}x"
            elif fb:
                line += f"; vs Gaussian-filter bound ({fb:.1f} s) {total / fb:.1f}x"
            print(line, flush=True)
            if method == "selftrain_regression":
                patch_columns(cmap, x1, x2, valid, total, target, bound_mem)
            del cmap
    return 0


def patch_columns(cmap: ChangeMap, x1: np.ndarray, x2: np.ndarray, valid: np.ndarray,
                  map_total: float, target: float, bound_mem: float) -> None:
    """Time the per-patch scores and `diff_tails` of levels 32, 64, 128 (every window of
    each level's grid, clipped at the edge, as ingest cuts them)."""
    import numpy as np

    from eominer.change.align import CHANGE_BANDS
    from eominer.change.scores import patch_scores
    from eominer.change.tails import pair_tails

    rows, cols = valid.shape
    xs, ys, ss = [], [], []
    for s in (32, 64, 128):
        y, x = np.mgrid[0:rows:s, 0:cols:s]
        xs.append(x.ravel()), ys.append(y.ravel()), ss.append(np.full(x.size, s))
    x0, y0, size = (np.concatenate(v).astype(np.int64) for v in (xs, ys, ss))
    t = time.perf_counter()
    patch_scores(cmap.probability, cmap.binary, x0, y0, size)
    t_scores = time.perf_counter() - t
    t = time.perf_counter()
    pair_tails(x1, x2, valid, CHANGE_BANDS, x0, y0, size)
    t_tails = time.perf_counter() - t
    total = map_total + t_scores + t_tails
    print(f"per-patch columns of {len(x0)} patches (levels 32, 64, 128): scores "
          f"{t_scores:.1f} s, diff_tails {t_tails:.1f} s; vs memory bound "
          f"{(t_scores + t_tails) / bound_mem:.0f}x", flush=True)
    print(f"selftrain_regression pair as `eominer change` runs it (map, COGs, scores, "
          f"tails): {total:.1f} s; target {target:.0f} s: ratio {total / target:.2f}",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
