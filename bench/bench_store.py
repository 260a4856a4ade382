"""Bulk-load of 1M patch rows + 64 float32 features, and JPEG2000 vs ARD COG reads.

    python bench/bench_store.py                      # DuckDB (main environment)
    python bench/bench_store.py --engine monetdbe    # MonetDB's engine (Python 3.10 side env)

Prints rows/s for each engine, and for the raster part the ratio of decoding a JPEG2000
band to reading the same band from the analysis-ready COG (main environment only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from collections.abc import Callable

    from eominer.store import Store

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N = 1_000_000
D = 64


def patch_table(n: int) -> pa.Table:
    ids = np.arange(1, n + 1, dtype=np.int64)
    i32 = (ids % 343).astype(np.int32)
    f64 = np.random.default_rng(0).random(n)
    return pa.table({
        "patch_id": ids, "product_id": pa.array(["S2A_MSIL1C_20170216T102101_T33UUU"] * n),
        "level": np.full(n, 32, np.int32), "size_px": np.full(n, 32, np.int32), "row": i32,
        "col": i32, "x_off": i32 * 32, "y_off": i32 * 32, "min_x": f64, "min_y": f64,
        "max_x": f64, "max_y": f64, "min_lon": f64, "min_lat": f64, "max_lon": f64,
        "max_lat": f64, "valid_fraction": np.ones(n, np.float32),
    })


def bench_engine(engine: str) -> None:
    from eominer.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        url = f"duckdb:///{tmp}/b.duckdb" if engine == "duckdb" else f"monetdbe:///{tmp}/m"
        store = open_store(url)
        patches = patch_table(N)
        t = time.perf_counter()
        store.insert_arrow("patches", patches)
        dt_p = time.perf_counter() - t
        fs = store.register_feature_set("bench", 1, {}, [f"f{j:02d}" for j in range(D)])
        X = np.random.default_rng(1).random((N, D), dtype=np.float32)
        cols = {"patch_id": pa.array(np.arange(1, N + 1, dtype=np.int64))}
        cols.update({c: pa.array(X[:, j]) for j, c in enumerate(fs.columns)})
        feats = pa.table(cols)
        t = time.perf_counter()
        store.insert_arrow(fs.table_name, feats)
        dt_f = time.perf_counter() - t
        # a re-run of extraction replaces rows: the MERGE upsert path, on 100k rows
        t = time.perf_counter()
        store.write_features(fs, np.arange(1, 100_001), X[:100_000])
        dt_m = time.perf_counter() - t
        assert store.count_features(fs) == N
        if engine == "duckdb":
            lease_cost(store)
        store.close()
    print(f"[{engine}] bulk load patches: {N / dt_p:,.0f} rows/s ({dt_p:.2f} s for 1M rows)")
    print(f"[{engine}] bulk load features 1M x {D} float32: {N / dt_f:,.0f} rows/s ({dt_f:.2f} s)")
    print(f"[{engine}] MERGE upsert of 100k feature rows: {100_000 / dt_m:,.0f} rows/s")
    print(f"[{engine}] vs. row-by-row executemany (~260 rows/s per DESIGN.md): "
          f"{(N / dt_f) / 260:,.0f}x")


def lease_cost(store: Store, reps: int = 15) -> None:
    """The price of sharing the file (eominer.store.engines.DuckDBEngine): a label write
    (one transaction) when the file was released since the last use, so it reopens it,
    against the same write with the file held, as when one process owned it. Interleaved,
    on the 1M-patch database just loaded; medians."""
    from eominer.store.base import utcnow
    from eominer.store.records import SessionParams, SessionRecord

    now = utcnow()
    store.insert_session(SessionRecord(
        session_id="bench", name="bench", owner="ana", concept="water", level=32,
        product_ids=("S2A_MSIL1C_20170216T102101_T33UUU",), feature_set_ids=("bench",),
        feature_signature="", model_kind="logistic", strategy="uncertain",
        params=SessionParams(), status="open", created=now, updated=now))
    engine, linger = store.engine, store.engine.linger
    cold, warm = [], []
    for i in range(reps):
        engine.linger = linger
        with engine.lock:  # drop the held lease's timer, then let the file go
            if engine._timer is not None:
                engine._timer.cancel()
                engine._timer = None
        time.sleep(linger * 4)
        engine._expire()  # released: the next write opens the file again
        assert engine._con is None
        t = time.perf_counter()
        store.put_label("bench", 2 * i + 1, "ana", 1, 0)
        cold.append(time.perf_counter() - t)
        engine.linger = 3600.0  # held from here
        store.put_label("bench", 2 * i + 2, "ana", 1, 0)  # opens; the next is warm
        time.sleep(linger * 4)
        t = time.perf_counter()
        store.put_label("bench", 2 * i + 2, "ana", -1, 0)
        warm.append(time.perf_counter() - t)
    engine.linger = linger
    c, w = float(np.median(cold)), float(np.median(warm))
    print(f"[duckdb] label write with the file released (reopened): {c * 1e3:.1f} ms, "
          f"with the file held: {w * 1e3:.1f} ms (median of {reps}): sharing the file "
          f"costs {(c - w) * 1e3:.1f} ms per isolated write")


def bench_rasters() -> None:
    import rasterio

    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    sample = ROOT / "eominer/sample/IMG_DATA"
    jp2 = sample / "T33UUU_20170216T102101_B02.jp2"
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ["EOMINER_HOME"] = tmp
        store = open_store(f"duckdb:///{tmp}/r.duckdb")
        (res,) = ingest_paths(store, [sample])

        def best(fn: Callable[[], object], repeat: int = 7) -> float:
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return min(times)

        def read_jp2() -> None:
            with rasterio.open(jp2) as ds:
                ds.read(1)

        def read_cog() -> None:
            with rasterio.open(res.ard_path) as ds:
                ds.read(2)

        t_jp2, t_cog = best(read_jp2), best(read_cog)
    print(f"[raster] B02 768x1536: JPEG2000 decode {t_jp2 * 1e3:.1f} ms, ARD COG read "
          f"{t_cog * 1e3:.1f} ms: the COG is {t_jp2 / t_cog:.1f}x faster")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", choices=["duckdb", "monetdbe"], default="duckdb")
    args = ap.parse_args()
    bench_engine(args.engine)
    if args.engine == "duckdb":
        bench_rasters()
