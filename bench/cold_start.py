"""What the analyst is first asked about in a change-driven session (issue 17): the
positives among the first batch of a session on each OSCD city, the product's diverse
cold start (no prior) against the prior column's top (`SessionParams.prior`,
`Session.cold_start`), on a kept `eval learning` workspace with a change set.

    python bench/cold_start.py --workspace /tmp/ws_percity_reg \
        --feature-sets pair_spectral,pair_gabor,pairs_change_selftrain_regression

Prints per city the mean over `--seeds` sessions (the diverse sample depends on the
seed; the prior's top does not) and the count a random batch would hold."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--feature-sets", default="pair_spectral,pair_gabor,"
                    "pairs_change_selftrain_regression")
    ap.add_argument("--prior-column", default="change_prob_mean")
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    os.environ["EOMINER_HOME"] = str(args.workspace)

    from eominer.evaluation import mining, tasks
    from eominer.evaluation.oscd import oscd_cities
    from eominer.learning.session import Session
    from eominer.store import open_store

    with open_store(f"duckdb:///{args.workspace / 'eval.duckdb'}") as store:
        by_name = dict(store.query("SELECT name, feature_set_id FROM feature_sets "
                                   "ORDER BY created DESC"))  # a name: its first set
        fids = [by_name.get(n, n) for n in args.feature_sets.split(",")]
        means = []
        for task in tasks.oscd_city_tasks(store, args.data, oscd_cities(args.data), 16,
                                          args.workspace, []):
            city = task.name.removeprefix(tasks.OSCD_TASK).lstrip("_")
            got = []
            for seed in range(args.seeds):
                found = []
                for prior in (None, args.prior_column):
                    s = Session.create(store, f"cold start {city} {seed}", "bench",
                                       task.concept, list(task.product_ids), task.level, fids,
                                       params={"seed": seed, "batch_size": args.batch,
                                               "prior": prior},
                                       where=task.where, features_dtype="float32")
                    y = mining.truth_for(task, s.patch_ids)
                    found.append(int((y[s.data.rows(s.cold_start())] == 1).sum()))
                    s.close()
                got.append([*found, args.batch * float((y == 1).mean())])
            m = np.mean(got, axis=0)
            means.append(m)
            print(f"{city}: diverse {m[0]:.1f}, prior's top {m[1]:.1f}, random {m[2]:.2f} "
                  f"positives of {args.batch}", flush=True)
        m = np.mean(means, axis=0)
        print(f"mean over the cities: diverse {m[0]:.2f}, prior's top {m[1]:.2f}, "
              f"random {m[2]:.2f}")


if __name__ == "__main__":
    main()
