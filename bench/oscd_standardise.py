"""Does standardising each city's features on their own help the pooled OSCD task?

The pooled "new construction" task mixes 9 cities of other seasons and climates in one
session, whose matrix is standardised over the whole pool (`SessionData`). This probe
runs the same simulated sessions twice on a kept evaluation workspace: as the product
does, and with each product's rows re-centred and re-scaled on their own (each column
keeps the pool's spread, so the per-set weights stay as they were).

    eominer eval learning --data ../shared/data --dataset oscd --no-ray \
        --features spectral+gabor+change_selftrain_encoder --workspace /tmp/ws_oscd
    python bench/oscd_standardise.py --workspace /tmp/ws_oscd --data ../shared/data
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--feature-sets", default="pair_spectral,pair_gabor,"
                    "pairs_change_selftrain_encoder")
    ap.add_argument("--strategy", default="diverse")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    os.environ["EOMINER_HOME"] = str(args.workspace)

    from eominer.evaluation import mining, tasks
    from eominer.evaluation.ranking import average_precision
    from eominer.learning.session import Session
    from eominer.store import open_store

    with open_store(f"duckdb:///{args.workspace / 'eval.duckdb'}") as store:
        task = tasks.oscd_task(store, args.data, None, 16, args.workspace, [])
        by_name = dict(store.query("SELECT name, feature_set_id FROM feature_sets"))
        fids = [by_name[n] for n in args.feature_sets.split(",")]
        product = dict(store.query("SELECT patch_id, product_id FROM patches WHERE level = ?",
                                   [task.level]))
        for mode in ("pool", "per product"):
            aps = []
            for seed in range(args.seeds):
                s = Session.create(store, f"standardise probe {mode} {seed}", "bench",
                                   task.concept, list(task.product_ids), task.level, fids,
                                   model_kind="rbf_svm", strategy=args.strategy,
                                   params={"seed": seed, "batch_size": 10}, where=task.where,
                                   features_dtype="float32")
                if mode == "per product":
                    per_product(s.data.X, np.array([product[int(p)] for p in s.patch_ids]))
                y = mining.truth_for(task, s.patch_ids)
                labels, curve = mining.drive(s, y, seed, 200, 10, CHECKPOINTS,
                                             lambda sc, y=y: average_precision(y, sc))
                s.close()
                aps.append([curve[labels.index(c)] for c in CHECKPOINTS])
            m, sd = np.mean(aps, axis=0), np.std(aps, axis=0)
            print(f"{mode:12s} {args.strategy}: " + "  ".join(
                f"AP@{c} {a:.3f}±{b:.3f}" for c, a, b in zip(CHECKPOINTS, m, sd, strict=True)))


if __name__ == "__main__":
    main()
