"""Benchmark of `eominer apply` (issue 18). Run: python bench/bench_apply.py [--n N]

A saved logistic classifier scores N patches (default 2M: 8 products x 250k) x 64
synthetic features stored in a real DuckDB file, through the real job (compute.apply on a
local Ray: the driver reads each block of 65,536 patches from the store, a worker scores
it, the driver upserts the annotations and marks the block done), with 1 and then 2
workers on the same data (annotations and job rows deleted in between).

With `--spatial-context A` the model ranks with spatial context A: its blocks are bands of
grid rows scored with a halo (compute/apply.py), and the bound reads, scores and smooths
each product whole in one process (no halo scored twice).

Printed: rows/s for 1 and 2 workers, the scaling efficiency (rate2 / (2 x rate1)), and
the bound measured in the same run, in one process: reading the same blocks from the store
with the same queries plus standardising and scoring them (one GEMV per block), without
writing. Each job rate is printed as a ratio to that bound. The driver's own parts are
timed alone as well: the block reads, the scoring, and the annotation upserts in the
batches a job commits, so that the bottleneck is visible.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from eominer.store import FeatureSet, Store

D = 64
PRODUCTS = 8


def build(store: Store, n: int, seed: int = 0) -> tuple[FeatureSet, int]:
    """PRODUCTS products of n / PRODUCTS level-32 patches each, D features per patch."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    side = int(round((n / PRODUCTS) ** 0.5))
    per = side * side
    n = per * PRODUCTS
    ids = np.arange(1, n + 1, dtype=np.int64)
    k = np.repeat(np.arange(PRODUCTS), per)
    r = np.tile(np.repeat(np.arange(side), side), PRODUCTS)
    c = np.tile(np.tile(np.arange(side), side), PRODUCTS)
    step = 0.8 / side
    lon0 = -2.0 + (k % 4) * 0.8 + c * step
    lat0 = 45.0 + (k // 4) * 0.8 - (r + 1) * step
    now = dt.datetime(2024, 1, 1)
    for i in range(PRODUCTS):
        store.execute(
            "INSERT INTO products (product_id, sensor, platform, processing_level, tile_id, "
            "acquired, crs, footprint_wkt, source_path, ard_path, width, height, bands, "
            "transform, source_hash, ingested) VALUES (?, 'S2', 'S2A', 'L2A', ?, ?, "
            "'EPSG:4326', 'POLYGON EMPTY', '/s', '/a.tif', ?, ?, '[\"B04\"]', '[0,0,0,0,0,0]',"
            " 'h', ?)", (f"P{i:02d}", f"T{i:02d}", now, side * 32, side * 32, now))
    zeros = np.zeros(n)
    store.insert_arrow("patches", pa.table({
        "patch_id": ids, "product_id": pa.array([f"P{i:02d}" for i in k]),
        "level": np.full(n, 32, np.int32), "size_px": np.full(n, 32, np.int32),
        "row": r.astype(np.int32), "col": c.astype(np.int32),
        "x_off": (c * 32).astype(np.int32), "y_off": (r * 32).astype(np.int32),
        "min_x": zeros, "min_y": zeros, "max_x": zeros, "max_y": zeros,
        "min_lon": lon0, "min_lat": lat0, "max_lon": lon0 + step, "max_lat": lat0 + step,
        "valid_fraction": np.ones(n, np.float32),
        "cloud_fraction": rng.random(n, dtype=np.float32) * 0.3,
        "parent_id": pa.nulls(n, pa.int64()),
    }))
    cols = [f"f{j:03d}" for j in range(D)]
    fs = store.register_feature_set("bench_apply", 1, {"d": D}, cols)
    for s in range(0, n, 500_000):  # written in parts: the build stays small in memory
        e = min(n, s + 500_000)
        X = rng.standard_normal((e - s, D), dtype=np.float32)
        X[:, :4] += (k[s:e, None] % 3).astype(np.float32)
        store.insert_arrow(fs.table_name, pa.table(
            {"patch_id": ids[s:e], **{cn: X[:, j] for j, cn in enumerate(cols)}}))
    return fs, n


def train(store: Store, fs: FeatureSet, spatial_context: float = 0.0) -> str:
    """A logistic session over the first product, a few labels, one round, saved."""
    from eominer.learning.session import Session

    s = Session.create(store, "bench", "ana", "new_construction", ["P00"], 32,
                       [fs.feature_set_id], model_kind="logistic",
                       params={"spatial_context": spatial_context})
    X0 = s.data.X[:, 0]
    order = np.argsort(X0)
    for p in s.patch_ids[order[-10:]]:
        s.label(int(p), 1, "ana")
    for p in s.patch_ids[order[:: len(order) // 20][:20]]:
        s.label(int(p), -1, "ana")
    s.run_round()
    return s.save_model()


def reset(store: Store) -> None:
    store.execute("DELETE FROM annotations")
    store.execute("DELETE FROM jobs")
    store.execute("CHECKPOINT")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--block-patches", type=int, default=65_536)
    ap.add_argument("--spatial-context", type=float, default=0.0,
                    help="the model's spatial context A (0: none)")
    args = ap.parse_args()

    from compute.apply import (
        ApplyReport,
        apply_job,
        model_feature_sets,
        plan,
        run_apply,
        score_band_in_context,
    )
    from compute.runtime import ray_session
    from eominer.learning.saved import load_model
    from eominer.store import open_store

    with tempfile.TemporaryDirectory(prefix="eominer_bench_apply_") as tmp:
        os.environ["EOMINER_HOME"] = tmp
        store = open_store(f"duckdb:///{Path(tmp) / 'apply.duckdb'}")
        t0 = time.perf_counter()
        fs, n = build(store, args.n)
        mid = train(store, fs, args.spatial_context)
        store.execute("CHECKPOINT")
        print(f"built {n:,} patches x {D} features in {PRODUCTS} products, trained and saved "
              f"model {mid} in {time.perf_counter() - t0:.1f} s", flush=True)

        # ---- the bound: the same reads and scoring in one process, nothing written -----
        model = load_model(store, mid)
        sets = model_feature_sets(store, model)
        context = args.spatial_context > 0
        # with context, the bound smooths each product whole: one band, no halo
        blocks = plan(store, model, None, None, None, n if context else args.block_patches,
                      ApplyReport("bench"))
        spec = apply_job(model, sets, blocks, 0.5)
        t_read = t_score = 0.0
        batches = []
        for task in spec.tasks:
            a = time.perf_counter()
            loaded = spec.load(store, task)
            b = time.perf_counter()
            if context:
                _, scores = score_band_in_context(*loaded)
                ids = loaded[1]
            else:
                scorer, ids, X = loaded
                scores = scorer(X)
            t_read += b - a
            t_score += time.perf_counter() - b
            batches.append((ids, scores))
        bound = n / (t_read + t_score)
        print(f"bound, one process: read {n / t_read:,.0f} rows/s ({t_read:.2f} s), score "
              f"{'and smooth ' if context else ''}"
              f"{n / t_score:,.0f} rows/s ({t_score:.2f} s): read + score "
              f"{bound:,.0f} rows/s", flush=True)
        # the commits alone, in the batches of a job (about two blocks a commit here)
        t_commit = 0.0
        for i in range(0, len(batches), 2):
            ids = np.concatenate([b[0] for b in batches[i:i + 2]])
            sc = np.concatenate([b[1] for b in batches[i:i + 2]])
            a = time.perf_counter()
            with store.transaction():
                store.upsert_annotations(model.session_id, model.concept, ids, sc, sc >= 0.5,
                                         mid, "apply")
            t_commit += time.perf_counter() - a
        print(f"annotation upserts alone: {n / t_commit:,.0f} rows/s ({t_commit:.2f} s)",
              flush=True)
        del batches
        reset(store)

        rates = {}
        with ray_session(num_cpus=2):
            for workers in (1, 2):
                a = time.perf_counter()
                report = run_apply(store, mid, num_workers=workers,
                                   block_patches=args.block_patches)
                wall = time.perf_counter() - a
                assert not report.failed and report.patches_written == n
                got = store.query("SELECT COUNT(*) FROM annotations")[0][0]
                assert got == n, got
                rates[workers] = n / report.seconds
                print(f"apply, {workers} worker(s): {rates[workers]:,.0f} rows/s "
                      f"({report.seconds:.2f} s from Ray up, first result after "
                      f"{report.first_result_seconds:.2f} s; {wall:.2f} s with planning), "
                      f"ratio to the bound {rates[workers] / bound:.2f}", flush=True)
                reset(store)
        eff = rates[2] / (2 * rates[1])
        print(f"scaling 1 -> 2 workers: x{rates[2] / rates[1]:.2f}, efficiency {eff:.0%}")
        store.close()


if __name__ == "__main__":
    main()
