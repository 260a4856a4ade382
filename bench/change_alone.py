"""How well a change map alone, with no label, finds OSCD's "new construction" patches
(issue 17): each patch ranked by its `change_prob_mean` (the mean change probability
over the patch, the column the loop sees), on a kept `eval learning` workspace. The
average precision of that ranking is the figure an analyst gets from the change layer
before answering a single question; the sessions' AP at 25-200 labels is to be read
against it.

    eominer eval learning --data ../shared/data --dataset oscd --no-ray --oscd-sessions both \
        --features spectral+gabor+change_cva --workspace /tmp/ws_oscd ...
    python bench/change_alone.py --workspace /tmp/ws_oscd [--data ../shared/data]

Prints, per `pairs_change_<method>` set of the workspace, the pooled AP (all 9 cities in
one ranking) and each city's."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from eominer.evaluation.tasks import Task
    from eominer.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = ap.parse_args()
    os.environ["EOMINER_HOME"] = str(args.workspace)

    from eominer.evaluation import tasks
    from eominer.evaluation.ranking import average_precision
    from eominer.store import open_store

    with open_store(f"duckdb:///{args.workspace / 'eval.duckdb'}") as store:
        todo = tasks.oscd_tasks(store, args.data, None, 16, args.workspace, [], "both")
        sets: dict[str, list[str]] = {}  # one set per task and method (its pairs)
        for fid, name in store.query("SELECT feature_set_id, name FROM feature_sets WHERE "
                                     "name LIKE 'pairs_change_%' ORDER BY name, created"):
            sets.setdefault(name, []).append(fid)
        if not sets:
            raise SystemExit(f"no pairs_change_* feature set in {args.workspace}: run eval "
                             "learning with a change_<method> feature set there first")
        for name, fids in sets.items():
            line = []
            for task in todo:
                col = ranking(store, task, fids)
                if col is None:
                    continue
                city = task.name.removeprefix(tasks.OSCD_TASK).lstrip("_") or "pooled"
                line.append((city, average_precision(task.y, col), task.positives,
                             len(task.y)))
            per_city = [a for c, a, _, _ in line if c != "pooled"]
            print(f"{name.removeprefix('pairs_')}: " + ", ".join(
                f"{c} {a:.3f} ({p}/{n})" for c, a, p, n in line)
                + (f"; mean over the cities {np.mean(per_city):.3f}" if per_city else ""),
                flush=True)


def ranking(store: Store, task: Task, fids: list[str]) -> np.ndarray | None:
    """`change_prob_mean` of the task's patches, in their order, from the set among
    `fids` that covers them all (None: no such set, the task was not run with it)."""
    for fid in fids:
        ids, X, names = store.read_features([fid], list(task.product_ids), task.level)
        at = np.minimum(np.searchsorted(ids, task.patch_ids), max(len(ids) - 1, 0))
        if len(ids) and np.array_equal(ids[at], task.patch_ids):
            return X[at, names.index(f"{fid}__change_prob_mean")]
    return None


if __name__ == "__main__":
    main()
