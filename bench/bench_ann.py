"""Which approximate nearest-neighbour library for archive-wide "find more like this"?

    python bench/bench_ann.py [--n 1000000] [--d 128] [--queries 50]

Compares, on the same standardised float32 vectors, an HNSW graph in usearch (float32,
float16 and int8 storage) and in faiss-cpu (HNSWFlat), and faiss's IVFFlat, against the
exact answer (one float32 GEMV over every vector, the session search's own method):
build time on 2 threads, query time for the top 100, recall@100, index size. DuckDB's
`vss` extension is not in the comparison: it is not installable offline for DuckDB 2.x
(the registry's `duckdb-ext-vss` wheel is built for DuckDB 1.4).

The vectors are a mixture of 200 anisotropic Gaussian clusters (EO descriptors cluster
by land cover; uniform noise would be the worst case for every graph index), queries are
vectors of the set itself (an example the analyst clicked).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

K = 100


def vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (200, d)).astype(np.float32)
    scales = rng.uniform(0.1, 0.6, (200, d)).astype(np.float32)
    which = rng.integers(0, 200, n)
    x = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):
        w = which[s:s + 100_000]
        x[s:s + len(w)] = centres[w] + scales[w] * rng.standard_normal((len(w), d), np.float32)
    x -= x.mean(0)
    x /= x.std(0)
    return x


def exact(x: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, float]:
    """Top K by Euclidean distance, and the mean seconds per query."""
    sq = np.einsum("ij,ij->i", x, x)
    out, t = [], time.perf_counter()
    for v in q:
        dist = sq - 2 * (x @ v)
        top = np.argpartition(dist, K)[:K]
        out.append(top[np.argsort(dist[top])])
    return np.array(out), (time.perf_counter() - t) / len(q)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / K
                          for f, t in zip(found, truth, strict=True)]))


def run_usearch(x: np.ndarray, q: np.ndarray, dtype: str) -> dict:
    from usearch.index import Index

    index = Index(ndim=x.shape[1], metric="l2sq", dtype=dtype, connectivity=16,
                  expansion_add=128, expansion_search=256)
    t = time.perf_counter()
    index.add(np.arange(len(x)), x, threads=2)
    build = time.perf_counter() - t
    t = time.perf_counter()
    found = np.array([index.search(v, K).keys for v in q])
    query = (time.perf_counter() - t) / len(q)
    with tempfile.TemporaryDirectory() as tmp:
        index.save(f"{tmp}/i.usearch")
        size = Path(f"{tmp}/i.usearch").stat().st_size
    return {"build_s": build, "query_s": query, "found": found, "bytes": size}


def run_faiss(x: np.ndarray, q: np.ndarray, kind: str) -> dict:
    import faiss

    faiss.omp_set_num_threads(2)
    d = x.shape[1]
    t = time.perf_counter()
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, 16)
        index.hnsw.efConstruction = 128
        index.add(x)
        index.hnsw.efSearch = 256
    else:  # IVFFlat, nlist ~ 4 sqrt(n), 32 lists probed
        nlist = int(4 * np.sqrt(len(x)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
        index.train(x[np.random.default_rng(1).choice(len(x), min(len(x), 50 * nlist),
                                                      replace=False)])
        index.add(x)
        index.nprobe = 32
    build = time.perf_counter() - t
    faiss.omp_set_num_threads(1)  # one query at a time, as the app asks
    t = time.perf_counter()
    found = np.array([index.search(v[None], K)[1][0] for v in q])
    query = (time.perf_counter() - t) / len(q)
    with tempfile.TemporaryDirectory() as tmp:
        faiss.write_index(index, f"{tmp}/i.faiss")
        size = os.path.getsize(f"{tmp}/i.faiss")
    return {"build_s": build, "query_s": query, "found": found, "bytes": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    x = vectors(args.n, args.d)
    q = x[np.random.default_rng(2).choice(args.n, args.queries, replace=False)]
    with threadpool_limits(1):
        truth, t_exact = exact(x, q)
    print(f"bench_ann: {args.n:,} x {args.d} float32 ({x.nbytes / 1e6:,.0f} MB), "
          f"{args.queries} queries, top {K}; load {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    print(f"  exact (one GEMV, 1 thread): {t_exact * 1e3:.1f} ms per query (the bound an "
          "index must beat)")
    runs = {"usearch HNSW f32": lambda: run_usearch(x, q, "f32"),
            "usearch HNSW f16": lambda: run_usearch(x, q, "f16"),
            "usearch HNSW i8": lambda: run_usearch(x, q, "i8"),
            "faiss HNSWFlat": lambda: run_faiss(x, q, "hnsw"),
            "faiss IVFFlat": lambda: run_faiss(x, q, "ivf")}
    for name, fn in runs.items():
        r = fn()
        print(f"  {name:18s} build {r['build_s']:6.1f} s ({args.n / r['build_s']:,.0f} "
              f"vectors/s), query {r['query_s'] * 1e3:6.2f} ms ({t_exact / r['query_s']:5.1f}x "
              f"faster than exact), recall@{K} {recall(r['found'], truth):.3f}, "
              f"index {r['bytes'] / 1e6:,.0f} MB")


if __name__ == "__main__":
    main()
