"""Ranking variants on the pooled OSCD "new construction" task, tried on a kept workspace.

The same simulated sessions (seeds, strategy, 200 labels) are run once per variant:
- `pool`: the product as it is (the matrix standardised over all 9 cities at once);
- `per-product`: each city's rows standardised on their own (each column keeps the
  pool's spread, so the per-set weights stay as they were);
- `spatial-A`: the model's decision smoothed over the patch grid, f = (1 - A) d + A S f
  (S: the row-normalised adjacency of the up to 8 touching patches of the same grid,
  20 Jacobi steps), so a patch whose neighbours look changed ranks higher.

    eominer eval learning --data ../shared/data --dataset oscd --no-ray \
        --features spectral+gabor+change_selftrain_encoder --workspace /tmp/ws_oscd
    python bench/oscd_probes.py --workspace /tmp/ws_oscd --data ../shared/data \
        --variants pool,per-product,spatial-0.3
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

CHECKPOINTS = (25, 50, 100, 200)


def per_product(X: np.ndarray, product: np.ndarray) -> None:
    """Standardise the rows of each product on their own, in place, keeping each
    column's pooled spread."""
    scale = X.std(axis=0)
    for p in np.unique(product):
        rows = product == p
        mu, sd = X[rows].mean(axis=0), X[rows].std(axis=0)
        sd[sd == 0] = 1.0
        X[rows] = (X[rows] - mu) / sd * scale


def grid_adjacency(centres: np.ndarray, product: np.ndarray):
    """Row-normalised adjacency of touching patches (8-neighbourhood) within a product."""
    import scipy.sparse as sp
    from sklearn.neighbors import NearestNeighbors

    n = len(centres)
    rows, cols = [], []
    for p in np.unique(product):
        idx = np.flatnonzero(product == p)
        nn = NearestNeighbors(n_neighbors=min(9, len(idx))).fit(centres[idx])
        d, j = nn.kneighbors(centres[idx])
        step = np.median(d[:, 1])  # the grid's pitch
        keep = (d > 0) & (d <= 1.5 * step)  # side and diagonal neighbours
        rows.append(np.repeat(idx, keep.sum(1)))
        cols.append(idx[j[keep]])
    r, c = np.concatenate(rows), np.concatenate(cols)
    A = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    deg = np.asarray(A.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.maximum(deg, 1.0)) @ A


def spatial_models(alpha: float, adjacency):
    """`make_model` whose models smooth their decision over `adjacency` (the whole
    pool's rows only: the session scores the pool in one call)."""
    from eominer.learning import models

    def make(kind: str, **params):
        base = models.make_model(kind, **params)
        plain = base.decision

        def decision(X, sq_norms=None, out=None):
            d = plain(X, sq_norms, out=out)
            if adjacency[0] is None or len(d) != adjacency[0].shape[0]:
                return d
            f = d.astype(np.float64)
            for _ in range(20):
                f = (1.0 - alpha) * d + alpha * (adjacency[0] @ f)
            d[:] = f
            return d

        base.decision = decision
        return base

    return make


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--feature-sets", default="pair_spectral,pair_gabor,"
                    "pairs_change_selftrain_encoder")
    ap.add_argument("--variants", default="pool,per-product,spatial-0.3")
    ap.add_argument("--strategy", default="diverse")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    os.environ["EOMINER_HOME"] = str(args.workspace)

    from eominer.evaluation import mining, tasks
    from eominer.evaluation.ranking import average_precision
    from eominer.learning import engine
    from eominer.learning.session import Session
    from eominer.store import open_store

    plain_make = engine.make_model
    with open_store(f"duckdb:///{args.workspace / 'eval.duckdb'}") as store:
        task = tasks.oscd_task(store, args.data, None, 16, args.workspace, [])
        by_name = dict(store.query("SELECT name, feature_set_id FROM feature_sets"))
        fids = [by_name[n] for n in args.feature_sets.split(",")]
        product_of = dict(store.query("SELECT patch_id, product_id FROM patches "
                                      "WHERE level = ?", [task.level]))
        for variant in args.variants.split(","):
            adjacency = [None]
            engine.make_model = plain_make
            if variant.startswith("spatial-"):
                engine.make_model = spatial_models(float(variant.split("-", 1)[1]), adjacency)
            elif variant not in ("pool", "per-product"):
                raise SystemExit(f"unknown variant {variant!r}: pool, per-product, spatial-A")
            aps = []
            for seed in range(args.seeds):
                s = Session.create(store, f"oscd probe {variant} {seed}", "bench",
                                   task.concept, list(task.product_ids), task.level, fids,
                                   model_kind="rbf_svm", strategy=args.strategy,
                                   params={"seed": seed, "batch_size": 10}, where=task.where,
                                   features_dtype="float32")
                product = np.array([product_of[int(p)] for p in s.patch_ids])
                if variant == "per-product":
                    per_product(s.data.X, product)
                if variant.startswith("spatial-"):
                    adjacency[0] = grid_adjacency(np.asarray(s.data.centres, float), product)
                y = mining.truth_for(task, s.patch_ids)
                labels, curve = mining.drive(s, y, seed, 200, 10, CHECKPOINTS,
                                             lambda sc, y=y: average_precision(y, sc))
                s.close()
                aps.append([curve[labels.index(c)] for c in CHECKPOINTS])
            m, sd = np.mean(aps, axis=0), np.std(aps, axis=0)
            print(f"{variant:14s} {args.strategy}: " + "  ".join(
                f"AP@{c} {a:.3f}±{b:.3f}" for c, a, b in zip(CHECKPOINTS, m, sd, strict=True)),
                flush=True)
    engine.make_model = plain_make


if __name__ == "__main__":
    main()
