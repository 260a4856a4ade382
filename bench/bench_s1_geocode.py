"""Benchmark: geocoding Sentinel-1 blocks (eominer.io.s1_geocode) against GDAL's warp.

    python bench/bench_s1_geocode.py [--blocks 6] [--exact 3]

On the full-size IW product of bench/full_s1.py (real metadata and tie points, real
repeated backscatter), the `--blocks` 2048 px blocks nearest the scene's middle row:
(a) s1_safe.geocode (the product's path: spline inverted every 32 px, bilinear resampling,
    two blocks at a time) and (b) GDAL's warp of the same sigma0 windows through the same
    tie points (`reproject`, SRC_METHOD=GCP_TPS, bilinear, its default transformer with a
    0.125 px error budget, two threads: the product's path up to 2026-12-05), alternated,
    two runs each; then the accuracy of both against GDAL's exact transformer
    (tolerance 0, ten times slower) on the first `--exact` blocks: the mean and 99th
    percentile of |difference| in dB, and the pixels valid in one and not the other.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from full_s1 import full_s1

if TYPE_CHECKING:
    from eominer.domain import SourceProduct
    from eominer.io.read import Grid


def gdal_blocks(product: SourceProduct, grid: Grid, wins: list[tuple[int, int, int, int]],
                tolerance: float) -> list[np.ndarray]:
    """GDAL's warp of each block, from the window of the measurement under it."""
    import rasterio
    from rasterio.control import GroundControlPoint
    from rasterio.transform import Affine
    from rasterio.warp import Resampling, reproject
    from rasterio.windows import Window

    from eominer.io import s1_safe
    from eominer.io.s1_geocode import block_coords, image_window

    safe = s1_safe._safe(product)
    geo = s1_safe.read_geolocation(safe.read(product.extra["VV.annotation"]))
    cal = s1_safe.read_calibration(safe.read(product.extra["VV.calibration"]))
    noise = s1_safe.read_noise(safe.read(product.extra["VV.noise"]))
    spline = s1_safe._spline(geo)
    a, _, c0, _, e, f0 = grid.transform[:6]
    out = []
    with rasterio.open(product.bands["VV"].path) as src:
        for x_off, y_off, w, h in wins:
            r0, r1, s0, s1 = image_window(block_coords(spline, grid.transform,
                                                       (x_off, y_off, w, h)),
                                          geo.lines, geo.samples, margin=16)
            power = s1_safe.sigma0(src.read(1, window=Window(s0, r0, s1 - s0, r1 - r0)),
                                   r0, s0, cal, noise)
            gcps = [GroundControlPoint(row=r - r0, col=c - s0, x=x, y=y)
                    for r, c, x, y in zip(geo.rows, geo.cols, geo.xs, geo.ys)]
            block = np.full((h, w), np.nan, np.float32)
            reproject(power, block, gcps=gcps, src_crs=grid.crs_wkt, src_nodata=np.nan,
                      dst_crs=grid.crs_wkt, dst_nodata=np.nan, resampling=Resampling.bilinear,
                      dst_transform=Affine(a, 0.0, c0 + a * x_off, 0.0, e, f0 + e * y_off),
                      SRC_METHOD="GCP_TPS", XSCALE="1", YSCALE="1", num_threads=2,
                      tolerance=tolerance)
            with np.errstate(divide="ignore", invalid="ignore"):
                out.append(10 * np.log10(block))
    return out


def ours(product: SourceProduct, grid: Grid, wins: list[tuple[int, int, int, int]]
         ) -> list[np.ndarray]:
    from eominer.io import s1_safe

    original = s1_safe._blocks
    s1_safe._blocks = lambda g, rows=None: iter(wins)
    try:
        return [b for _, b in s1_safe.geocode(product, "VV", grid)]
    finally:
        s1_safe._blocks = original


def differences(got: list[np.ndarray], ref: list[np.ndarray]) -> str:
    d = np.concatenate([np.abs(g - r)[np.isfinite(g) & np.isfinite(r)] for g, r in zip(got, ref)])
    odd = sum(int((np.isnan(g) != np.isnan(r)).sum()) for g, r in zip(got, ref))
    return (f"|diff| mean {d.mean():.4f} dB, p99 {np.percentile(d, 99):.3f} dB, "
            f"{odd} pixels valid in one only")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--exact", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"== bench_s1_geocode ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    safe = full_s1()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from eominer.io import s1_safe
    from eominer.io.discover import discover

    (product,) = discover(safe)
    grid = s1_safe.product_grid(product)
    wins = sorted(s1_safe._blocks(grid), key=lambda b: abs(b[1] + b[3] / 2 - grid.height / 2)
                  )[: args.blocks]
    times: dict[str, list[float]] = {"s1_geocode": [], "GDAL warp": []}
    results = {}
    for _ in range(2):
        for name, fn in (("s1_geocode", lambda: ours(product, grid, wins)),
                         ("GDAL warp", lambda: gdal_blocks(product, grid, wins, 0.125))):
            t = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        print(f"{name}: {len(wins)} blocks of 2048 px in {min(ts):.2f} s (runs: "
              + ", ".join(f"{v:.2f}" for v in ts) + ")")
    print(f"ratio GDAL / s1_geocode: {min(times['GDAL warp']) / min(times['s1_geocode']):.2f}")
    t = time.perf_counter()
    exact = gdal_blocks(product, grid, wins[: args.exact], 0.0)
    print(f"GDAL's exact transformer (tolerance 0): {args.exact} blocks in "
          f"{time.perf_counter() - t:.1f} s; against it:")
    for name in times:
        print(f"  {name}: {differences(results[name][: args.exact], exact)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
