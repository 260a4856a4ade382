"""Benchmark of the multi-knowledge query (issue 16). Run: python bench/bench_search.py [--n N]

"The 100 patches most like these 3 examples, acquired in 2017 or later, with less than
10 % cloud, inside this polygon", over N patches (default 1M: 16 products x 250 x 250
patches) with 128 synthetic features each, stored in a real DuckDB file and queried through
the real path (`eominer.learning.search.search`: the WHERE on the read-only SQL path, the
AOI's bbox in SQL then shapely, the features read from the store, standardised, ranked).

Printed beside two bounds measured in the same run, as ratios:
- the brute-force numpy matmul over the same in-memory matrix (X @ c, 1M x 128 float32),
  i.e. what ranking alone costs when the features are already in memory;
- that matmul plus reading the same features out of DuckDB as Arrow (`read_features`),
  i.e. the floor of any query that starts from the database.
The result is checked against a numpy/shapely brute force over every row.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from shapely.geometry.base import BaseGeometry

    from eominer.learning.aoi import AOI
    from eominer.learning.search import SearchResult
    from eominer.store import FeatureSet, Store

PRODUCTS = 16
D = 128


def median(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def best(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def build(store: Store, n: int, seed: int = 0
          ) -> tuple[FeatureSet, np.ndarray, np.ndarray, dict[str, Any]]:
    """16 products side by side (0.8 degree each), dates 2016-2018, patches with random
    cloud and valid fractions, and n x 128 features; returns the columns for the check."""
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
    dates = [dt.datetime(2016, 3, 1) + dt.timedelta(days=70 * i) for i in range(PRODUCTS)]
    now = dt.datetime(2024, 1, 1)
    for i in range(PRODUCTS):
        store.execute(
            "INSERT INTO products (product_id, sensor, platform, processing_level, tile_id, "
            "acquired, crs, footprint_wkt, source_path, ard_path, width, height, bands, "
            "transform, source_hash, ingested) VALUES (?, 'S2', 'S2A', 'L2A', ?, ?, "
            "'EPSG:4326', 'POLYGON EMPTY', '/s', '/a.tif', ?, ?, '[\"B04\"]', '[0,0,0,0,0,0]',"
            " 'h', ?)", (f"P{i:02d}", f"T{i:02d}", dates[i], side * 32, side * 32, now))
    cloud = rng.random(n, dtype=np.float32) * 0.3
    valid = np.where(rng.random(n) < 0.05, 0.5, 1.0).astype(np.float32)
    zeros = np.zeros(n)
    store.insert_arrow("patches", pa.table({
        "patch_id": ids, "product_id": pa.array([f"P{i:02d}" for i in k]),
        "level": np.full(n, 32, np.int32), "size_px": np.full(n, 32, np.int32),
        "row": r.astype(np.int32), "col": c.astype(np.int32),
        "x_off": (c * 32).astype(np.int32), "y_off": (r * 32).astype(np.int32),
        "min_x": zeros, "min_y": zeros, "max_x": zeros, "max_y": zeros,
        "min_lon": lon0, "min_lat": lat0, "max_lon": lon0 + step, "max_lat": lat0 + step,
        "valid_fraction": valid, "cloud_fraction": cloud,
        "parent_id": pa.nulls(n, pa.int64()),
    }))
    X = rng.standard_normal((n, D), dtype=np.float32)
    X[:, :8] += (k[:, None] % 3).astype(np.float32)  # some structure between products
    cols = [f"f{j:03d}" for j in range(D)]
    fs = store.register_feature_set("bench_search", 1, {"d": D}, cols)
    store.insert_arrow(fs.table_name, pa.table({"patch_id": ids,
                                                **{cn: X[:, j] for j, cn in enumerate(cols)}}))
    year = np.asarray([dates[i].year for i in k])
    return fs, ids, X, {"lon": (lon0, lat0, lon0 + step, lat0 + step), "cloud": cloud,
                        "valid": valid, "year": year}


def reference(ids: np.ndarray, X: np.ndarray, cols: dict[str, Any], aoi: BaseGeometry,
              like: list[int], top: int) -> tuple[np.ndarray, int]:
    """Brute force over every row: numpy filter, shapely over all boxes, float64 sort."""
    import shapely

    boxes = shapely.box(*cols["lon"])
    keep = ((cols["year"] >= 2017) & (cols["cloud"] < np.float32(0.1))
            & (cols["valid"] > np.float32(0.9)) & shapely.intersects(aoi, boxes))
    Xc = X[keep]
    mean = Xc.mean(axis=0, dtype=np.float64).astype(np.float32)
    std = Xc.std(axis=0, dtype=np.float64).astype(np.float32)
    ex = (X[np.searchsorted(ids, like)] - mean) / std
    c = ex.astype(np.float64).mean(axis=0)
    d2 = (((Xc - mean) / std).astype(np.float64) - c) ** 2
    d2 = d2.sum(axis=1)
    cid = ids[keep]
    out = ~np.isin(cid, like)
    order = np.lexsort((cid[out], d2[out]))[:top]
    return cid[out][order], int(keep.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--top", type=int, default=100)
    args = ap.parse_args()

    from shapely.geometry import Polygon

    from eominer.learning.search import candidate_ids, search
    from eominer.store import open_store

    where = ("acquired >= DATE '2017-01-01' AND cloud_fraction < 0.1 "
             "AND valid_fraction > 0.9")
    # a hexagon across 12 of the 16 products
    aoi = Polygon([(-1.7, 45.5), (-0.3, 44.0), (0.6, 44.2), (1.1, 45.7), (0.2, 47.1),
                   (-1.2, 46.9)])
    with tempfile.TemporaryDirectory(prefix="eominer_bench_") as tmp:
        store = open_store(f"duckdb:///{Path(tmp) / 'search.duckdb'}")
        t0 = time.perf_counter()
        fs, ids, X, cols = build(store, args.n)
        n = len(ids)
        print(f"built {n} patches x {D} features in {PRODUCTS} products in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        like = [int(ids[n // 2 + 17]), int(ids[n // 2 + 900]), int(ids[3 * n // 4 + 5])]

        def run() -> SearchResult:
            return search(store, like, top=args.top, where=where, aoi=aoi,
                          feature_set_ids=[fs.feature_set_id])

        r = run()
        ref_ids, n_keep = reference(ids, X, cols, aoi, like, args.top)
        assert r.n_candidates == n_keep and r.patch_ids.tolist() == ref_ids.tolist(), \
            "search differs from the brute-force reference"
        print(f"query kept {r.n_candidates} of {n} patches (AOI and WHERE); top {args.top} "
              "equal to the numpy/shapely brute force (ids and order)")
        t_search = median(run)
        t_filter = median(lambda: candidate_ids(store, 32, where=where, aoi=run_aoi(aoi)))
        products = sorted({f"P{i:02d}" for i in range(PRODUCTS)})
        t_read = median(lambda: store.read_features([fs.feature_set_id], products, 32))
        c32 = X[:3].mean(axis=0)
        t_mm = best(lambda: X @ c32)
        store.close()
    print(f"  of which: SQL WHERE + AOI (bbox in SQL, shapely) {t_filter * 1e3:.0f} ms, "
          f"reading the {n} x {D} features from DuckDB {t_read * 1e3:.0f} ms")
    print(f"mixed query, {n} patches x {D}: {t_search * 1e3:.0f} ms")
    print(f"  bound 1, numpy matmul X @ c over the same matrix: {t_mm * 1e3:.1f} ms; "
          f"ratio {t_search / t_mm:.1f}")
    print(f"  bound 2, that matmul + reading the features from DuckDB: "
          f"{(t_mm + t_read) * 1e3:.0f} ms; ratio {t_search / (t_mm + t_read):.2f}")


def run_aoi(geom: BaseGeometry) -> AOI:
    from eominer.learning.aoi import as_aoi, stored_aoi

    return stored_aoi(as_aoi(geom))


if __name__ == "__main__":
    main()
