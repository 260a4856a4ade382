"""Benchmark: `eominer ingest` of one full-size Sentinel-1 IW GRDH SAFE on the job runner.

    python bench/bench_ingest_s1.py [--levels 32,64,128] [--workers 2]

The product (bench/full_s1.py, built once and cached under bench/data): the real
product's metadata with 25,931 x 16,854 px VV and VH measurements of real, repeated
backscatter. Ingest calibrates, removes thermal noise, geocodes by the tie points to a
10 m UTM grid (about 29,300 x 22,900 px), writes the dB ARD as a COG and cuts the patch
grid. Figures, each beside its bound measured in the same run:

(a) bound: the I/O no ingest can avoid: reading both measurements once (uint16, block by
    block) plus re-encoding the finished ARD as a COG (eominer.io.ard.write_cog of the
    ARD itself: decode, ZSTD encode, overviews), measured after the ingest;
(b) ingest end to end on a local Ray of 2 CPUs and `--workers` workers (each polarisation
    in row bands of 2048 rows, a task each, then the assembly), from Ray up to the
    product committed, and the largest worker's peak memory;
(c) ratio (b) / (a). No target is set for S1 yet; docs/sentinel1.md quotes 9 min and
    2.7 GB, measured by hand before this benchmark existed.

The figures also go to bench/results/bench_ingest_s1.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from full_s1 import full_s1
from full_tile import ROOT


def read_measurements(safe: Path) -> float:
    """Seconds to read every block of both measurement TIFFs once."""
    import rasterio

    t = time.perf_counter()
    for f in sorted((safe / "measurement").glob("*.tiff")):
        with rasterio.open(f) as ds:
            for _, window in ds.block_windows(1):
                ds.read(1, window=window)
    return time.perf_counter() - t


def recode_ard(ard: Path) -> float:
    """Seconds to copy the finished ARD COG to a new COG (decode + encode + overviews)."""
    from eominer.io.ard import write_cog

    with tempfile.TemporaryDirectory(prefix="bench_s1_cog_") as tmp:
        t = time.perf_counter()
        write_cog(ard, Path(tmp) / "copy.tif")
        return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="32,64,128")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    levels = tuple(int(v) for v in args.levels.split(","))
    print(f"== bench_ingest_s1 (a full-size S1 IW GRDH SAFE, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f})")
    safe = full_s1()
    from compute.ingest import plan_ingest, run_ingest
    from eominer.ingest import plan_products
    from eominer.store import open_store

    with tempfile.TemporaryDirectory(prefix="bench_ingest_s1_") as home:
        os.environ["EOMINER_HOME"] = home
        with open_store(f"duckdb:///{home}/bench.duckdb") as store:
            products = plan_products([safe])
            t0 = time.perf_counter()
            plan = plan_ingest(store, products, levels)
            report = run_ingest(store, plan, num_cpus=2, num_workers=args.workers)
            wall = time.perf_counter() - t0
            report.raise_for_failures()
            (result,) = report.results
            n_patches = store.query("SELECT COUNT(*) FROM patches")[0][0]
            width, height = store.query("SELECT width, height FROM products")[0]
        ard = Path(result.ard_path)
        ard_mb = ard.stat().st_size / 1e6
        t_read = read_measurements(safe)
        t_cog = recode_ard(ard)
    bound = t_read + t_cog
    out = {"workers": args.workers, "ingest_s": report.seconds, "wall_s": wall, "peak_rss_mb": report.peak_rss_mb,
           "patches": n_patches, "ard_px": [width, height], "ard_mb": ard_mb,
           "read_s": t_read, "cog_s": t_cog, "bound_s": bound,
           "ratio": report.seconds / bound, "load": os.getloadavg()[0]}
    print(f"(a) bound: reading both measurements {t_read:.1f} s + re-encoding the ARD as a "
          f"COG {t_cog:.1f} s = {bound:.1f} s")
    print(f"(b) ingest: {report.seconds:.1f} s from Ray up to the commit ({wall:.1f} s with "
          f"Ray's start and planning); ARD {width:,} x {height:,} px, COG {ard_mb:,.0f} MB, "
          f"{n_patches:,} patches; {args.workers} worker(s), peak memory {report.peak_rss_mb:,.0f} MB")
    print(f"(c) ratio ingest / bound: {report.seconds:.1f} / {bound:.1f} s = "
          f"{out['ratio']:.2f} (load {out['load']:.1f})")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "bench_ingest_s1.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
