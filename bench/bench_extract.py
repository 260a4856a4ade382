"""Benchmark: `extract` on Ray, 1 vs 2 workers, and the encoder on CPU.

    python bench/bench_extract.py [--cities all|bordeaux,paris,...] [--features ...]
    python bench/bench_extract.py --tile [--repeats 2]   # a full 10980 x 10980 granule

1. Real OSCD cities (both dates of each, ingested into a temporary workspace) extracted
   with spectral, gabor and wld on a local Ray of 2 CPUs, with 1 worker and with 2,
   alternated, 3 runs each (each on a fresh copy of the database). Scaling efficiency
   T1 / (2 T2) of the medians: target >= 85%. Time counts from Ray being up to the last
   result written (worker start-up included, Ray start excluded); printed also from the
   first result to the last, the part of a job that more workers can shorten.
   With `--tile`, the same on one full-size granule (bench/full_tile.py: 13 bands, 10980
   x 10980 px at 10 m, built once) instead of the cities: an archive's unit of work,
   where the workers' start-up weighs ~1 % instead of ~10 %.
2. The encoder: training patches/s (2 epochs on the cities' level-32 patches, TF's own
   threads) and inference patches/s with one TF thread (as in an extract worker).
   Bound: the model's multiply-adds at the SGEMM rate measured here on one thread.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITIES = ("aguasclaras", "bercy", "bordeaux", "nantes", "paris", "rennes", "saclay_e",
          "abudhabi", "hongkong")


def shared_data() -> Path:
    return Path(os.environ.get("EOMINER_SHARED_DATA", ROOT.parent / "shared" / "data"))


def sgemm_rate() -> float:
    import numpy as np

    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    a @ a
    t = time.perf_counter()
    for _ in range(4):
        a @ a
    return 4 * 2 * 1024 ** 3 / (time.perf_counter() - t)


def encoder_flops(dim: int) -> tuple[float, float]:
    """(forward flops of the encoder half, training flops of the whole autoencoder)."""
    enc = 2 * (16 * 16 * 16 * 9 * 4 + 8 * 8 * 32 * 9 * 16 + 4 * 4 * 64 * 9 * 32 + 1024 * dim)
    dec = 2 * (dim * 1024 + 8 * 8 * 32 * 9 * 64 + 16 * 16 * 16 * 9 * 32 + 32 * 32 * 4 * 9 * 16)
    return enc, 3 * (enc + dec)  # backward ~ 2x forward


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cities", default="all")
    ap.add_argument("--tile", action="store_true",
                    help="extract one full-size granule instead of the cities")
    ap.add_argument("--features", default="spectral,gabor,wld")
    ap.add_argument("--block-rows", type=int, default=None,
                    help="rows per task: 128 for the small cities (228 tasks), else the "
                         "product's default")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of each worker count, alternated (medians compared)")
    args = ap.parse_args(argv)
    if args.block_rows is None:
        from compute.extract import DEFAULT_BLOCK_ROWS

        args.block_rows = DEFAULT_BLOCK_ROWS if args.tile else 128
    cities = CITIES if args.cities == "all" else tuple(args.cities.split(","))
    what = "one full 10980 x 10980 granule" if args.tile else f"{len(cities)} OSCD cities x 2 dates"
    print(f"== bench_extract ({what}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EOMINER_HOME"] = tmp
        from compute.extract import run_extract
        from eominer.ingest import ingest_paths
        from eominer.store import open_store

        base = Path(tmp) / "base.duckdb"
        oscd = shared_data() / "oscd" / "images"
        t = time.perf_counter()
        if args.tile:
            from full_tile import full_tile  # this folder

            inputs = [full_tile()]
        else:
            inputs = [oscd / c / d for c in cities for d in ("imgs_1", "imgs_2")]
        with open_store(f"duckdb:///{base}") as store:
            res = ingest_paths(store, inputs)
        n_patches = sum(r.patches for r in res)
        print(f"ingested {len(res)} products, {n_patches} patches in "
              f"{time.perf_counter() - t:.0f} s")
        # 1 and 2 workers alternated, `--repeats` each, medians compared: this VM's speed
        # drifts by 20-40 % within minutes, and one run of each would compare two machines
        runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        for r in range(args.repeats):
            for workers in (1, 2):
                db = Path(tmp) / f"w{workers}_{r}.duckdb"
                shutil.copy(base, db)
                with open_store(f"duckdb:///{db}") as store:
                    rep = run_extract(store, args.features, num_cpus=2, num_workers=workers,
                                      block_rows=args.block_rows)
                    rep.raise_for_failures()
                db.unlink()
                runs[workers].append((rep.seconds, rep.seconds - rep.first_result_seconds))
                print(f"extract {args.features}, {workers} worker(s): {rep.seconds:.1f} s, "
                      f"{rep.tasks_done} tasks, {rep.patches_written / rep.seconds:,.0f} patch "
                      f"rows/s (first result after {rep.first_result_seconds:.1f} s: worker "
                      "start-up)")
        times = {w: statistics.median(t for t, _ in v) for w, v in runs.items()}
        steady = {w: statistics.median(u for _, u in v) for w, v in runs.items()}
        print(f"medians of {args.repeats} alternated runs each: 1 worker {times[1]:.1f} s, "
              f"2 workers {times[2]:.1f} s")
        eff = times[1] / (2 * times[2])
        print(f"Ray scaling 1 -> 2 workers: efficiency {eff:.1%} (target >= 85%); "
              f"bound (perfect scaling) {times[1] / 2:.1f} s vs {times[2]:.1f} s measured")
        eff = steady[1] / (2 * steady[2])
        print(f"  once the workers are up (first result to last): efficiency {eff:.1%}; "
              f"{steady[1] / 2:.1f} s bound vs {steady[2]:.1f} s; the start-up does not "
              "shrink with more workers, and weighs little on a real archive")
        if args.tile:
            return 0  # the encoder's figures below are the cities'

        from eominer.features import build
        from eominer.features.encoder import load_embedder
        from eominer.features.encoder_train import collect_patches, train_encoder

        with open_store(f"duckdb:///{base}") as store:
            row = train_encoder(store, epochs=2, dim=32, max_patches=5000)
            x, _ = collect_patches(store, max_patches=2000, seed=1)
        gflops = sgemm_rate()
        f_inf, f_train = encoder_flops(32)
        m = row["metrics"]
        print(f"encoder training: {m['train_patches_per_s']:,.0f} patches/s on CPU "
              f"({m['patches']} patches x 2 epochs); bound {gflops * os.cpu_count() / f_train:,.0f}"
              f" patches/s at SGEMM rate ({gflops / 1e9:.0f} GFLOP/s per core), ratio "
              f"{gflops * os.cpu_count() / f_train / m['train_patches_per_s']:.1f}")
        d = build("encoder", ["B02", "B03", "B04", "B08"], model=row)
        stack = x.transpose(3, 0, 1, 2).reshape(4, -1, 32)  # patches stacked vertically
        win = [[i * 32, 0, 32, 32] for i in range(len(x))]
        load_embedder(row["path"])  # load (and set one TF thread) before timing
        d.compute(stack, win[:64])
        t = time.perf_counter()
        d.compute(stack, win)
        s = time.perf_counter() - t
        print(f"encoder inference, 1 TF thread: {len(x) / s:,.0f} patches/s; bound "
              f"{gflops / f_inf:,.0f} patches/s at SGEMM rate, ratio {gflops / f_inf * s / len(x):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
