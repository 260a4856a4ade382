"""How well could OSCD's "new construction" patches be ranked from their pixels (issue 17)?

Out-of-fold ceilings (5 stratified folds over the pooled 16 px patches of the 9 cities,
and each city held out) of three ways to use a pair's pixels, against the 0.50 of the
product's patch sets:
- `mil`: a pixel classifier (gradient boosting) trained from patch labels only: the 5 %
  of a positive patch's pixels the change map scores highest are its positives, 32 random
  pixels of a negative patch its negatives; a patch scores the mean of its top 5 %;
- `oracle`: the same with OSCD's pixel labels in the positive patches (an analyst does
  not give those: it bounds what a pixel model could learn);
- `agg`: per patch, the mean, standard deviation, 10th and 90th percentile of 37 pixel
  features (both dates' 10 bands, their differences, NDVI and NDBI of each date and their
  differences, the change map), ranked by an RBF SVM and by gradient boosting; then the
  RBF SVM with each group of features or statistics left out.

The pixel features are standardised over all pixels of the 9 cities. The workspace is a
kept `eval learning` OSCD workspace with `selftrain_regression` run on its pairs (the
docstring of `bench/ranking_probes.py` builds one).

`--write-sets` instead writes the scratch sets that chose `diff_tails` version 2 into the
workspace (use a copy): `pa_dstats`, the mean, std, q10 and q90 of the 10 band and 2
index differences (48 columns); `pa_dstd`, their 12 standard deviations; `pa_v2`, those
12 beside the six columns of the workspace's version-1 `pairs_diff_tails` (18). Then
`ranking_probes.py --feature-sets pair_spectral,pair_gabor,<change set>,pa_dstd ...`.

    python bench/pixel_aggregates.py --workspace /tmp/ws_oscd [--data ../shared/data]
        [--write-sets]
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from eominer.store import Store

TOP = 13  # 5 % of a 16 px patch
GROUPS = {"x1": range(0, 10), "x2": range(10, 20), "d": range(20, 30), "idx": range(30, 34),
          "didx": range(34, 36), "map": range(36, 37)}
STATS = ("mean", "std", "q10", "q90")


def pixels(store: Store, data: Path, workspace: Path
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(patches, 256, 37) pixel features, (patches, 256) pixel labels, patch labels,
    city index and id of each patch."""
    import rasterio

    from eominer.change.align import CHANGE_BANDS, PairWarning, align_pair, load_scene
    from eominer.change.tails import normalised_difference
    from eominer.evaluation import tasks
    from eominer.evaluation.oscd import read_labels

    warnings.simplefilter("ignore", PairWarning)
    city_tasks = tasks.oscd_city_tasks(store, data, None, 16, workspace, [])
    rows = [store.pair(p) for p in store.pairs(kind="change")["pair_id"].to_pylist()]
    maps = {r["first_id"]: r["layer_path"] for r in rows
            if r["params"].get("method") == "selftrain_regression"}
    P, L, Y, C, ids = [], [], [], [], []
    for k, t in enumerate(city_tasks):
        p1, p2 = t.pairs[0]
        with rasterio.open(maps[p1]) as ds:
            prob = np.nan_to_num(ds.read(1))
        pair = align_pair(load_scene(p1, store), load_scene(p2, store))
        x1, x2 = pair.x1, pair.x2
        idx = [normalised_difference(x, CHANGE_BANDS, a, b)
               for x in (x1, x2) for a, b in (("B08", "B04"), ("B11", "B08"))]
        layers = [*x1, *x2, *(x2 - x1), *idx, idx[2] - idx[0], idx[3] - idx[1], prob]
        F = np.stack(layers, -1).astype(np.float32)
        labels = read_labels(tasks.oscd_folder(data), t.name.removeprefix(
            "oscd_new_construction_"))
        win = store.patches(p1, 16)
        at = dict(zip(win["patch_id"].to_numpy().tolist(),
                      zip(win["x_off"].to_numpy().tolist(), win["y_off"].to_numpy().tolist(),
                          strict=True), strict=True))
        for pid in t.patch_ids.tolist():
            x, y = at[pid]
            P.append(F[y:y + 16, x:x + 16].reshape(256, -1))
            L.append(labels[y:y + 16, x:x + 16].reshape(256))
        Y.append(t.y > 0)
        C.append(np.full(len(t.y), k))
        ids.append(t.patch_ids)
    P = np.stack(P)
    flat = P.reshape(-1, P.shape[-1])
    P = (P - flat.mean(0)) / (flat.std(0) + 1e-6)
    return P, np.stack(L), np.concatenate(Y), np.concatenate(C), np.concatenate(ids)


def write_sets(store: Store, P: np.ndarray, ids: np.ndarray) -> None:
    """The scratch sets of `--write-sets` (module docstring)."""
    d = P[:, :, [*GROUPS["d"], *GROUPS["didx"]]]  # 10 band differences, NDVI's, NDBI's
    names = [f"b{i}" for i in range(10)] + ["ndvi", "ndbi"]
    stats = {"mean": d.mean(1), "std": d.std(1), "q10": np.quantile(d, 0.1, axis=1),
             "q90": np.quantile(d, 0.9, axis=1)}
    sets = {"pa_dstats": ([f"{s}_{n}" for s in STATS for n in names],
                          np.concatenate([stats[s] for s in STATS], axis=1)),
            "pa_dstd": ([f"std_{n}" for n in names], stats["std"])}
    v1 = store.feature_sets("pairs_diff_tails")
    v1 = [fs for fs in v1 if len(fs.columns) == 6]
    if v1:
        t = store.query_arrow(f"SELECT * FROM {v1[0].table_name} ORDER BY patch_id")
        at = np.searchsorted(t["patch_id"].to_numpy(), ids)
        old = np.column_stack([t[c].to_numpy() for c in v1[0].columns])[at]
        sets["pa_v2"] = ([*v1[0].columns, *sets["pa_dstd"][0]],
                         np.concatenate([old, stats["std"]], axis=1))
    for name, (cols, values) in sets.items():
        fs = store.register_feature_set(name, 1, {"probe": "bench/pixel_aggregates.py"},
                                        cols, sensor="S2")
        store.write_features(fs, ids, values.astype(np.float64))
        print(f"{name}: {fs.feature_set_id}, {values.shape[1]} columns", flush=True)


def splits(Y: np.ndarray, city: np.ndarray, by: str) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    if by == "folds":
        return list(StratifiedKFold(5, shuffle=True, random_state=0).split(Y, Y))
    return [(np.flatnonzero(city != c), np.flatnonzero(city == c)) for c in np.unique(city)]


def pixel_ceiling(P: np.ndarray, L: np.ndarray, Y: np.ndarray, city: np.ndarray, mode: str,
                  by: str) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    oof = np.zeros(len(Y))
    for train, test in splits(Y, city, by):
        X, y = [], []
        for i in train.tolist():
            if Y[i] and mode == "oracle":
                changed = L[i] > 0
                X += [P[i][changed], P[i][~changed][:16]]
                y += [np.ones(changed.sum()), np.zeros(min(16, (~changed).sum()))]
            elif Y[i]:
                X.append(P[i][np.argsort(-P[i][:, -1])[:TOP]])
                y.append(np.ones(TOP))
            else:
                X.append(P[i][rng.choice(256, 32, replace=False)])
                y.append(np.zeros(32))
        model = HistGradientBoostingClassifier(max_iter=200, random_state=0)
        model.fit(np.concatenate(X), np.concatenate(y))
        p = model.predict_proba(P[test].reshape(-1, P.shape[-1]))[:, 1].reshape(len(test), -1)
        oof[test] = np.sort(p, axis=1)[:, -TOP:].mean(axis=1)
    return float(average_precision_score(Y, oof))


def aggregate_ceiling(stats: dict, Y: np.ndarray, city: np.ndarray, groups: Sequence[str],
                      names: Sequence[str], by: str, model: str) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import average_precision_score
    from sklearn.svm import SVC

    cols = [i for g in groups for i in GROUPS[g]]
    A = np.concatenate([stats[s][:, cols] for s in names], axis=1)
    Z = (A - A.mean(0)) / (A.std(0) + 1e-6)
    oof = np.zeros(len(Y))
    for train, test in splits(Y, city, by):
        if model == "rbf":
            oof[test] = SVC(C=1.0, gamma="scale").fit(Z[train], Y[train]).decision_function(
                Z[test])
        else:
            m = HistGradientBoostingClassifier(max_iter=200, random_state=0)
            oof[test] = m.fit(Z[train], Y[train]).predict_proba(Z[test])[:, 1]
    return float(average_precision_score(Y, oof))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--write-sets", action="store_true",
                    help="write the scratch sets into the workspace instead (use a copy)")
    args = ap.parse_args()
    os.environ["EOMINER_HOME"] = str(args.workspace)
    from eominer.store import open_store

    with open_store(f"duckdb:///{args.workspace / 'eval.duckdb'}") as store:
        P, L, Y, city, ids = pixels(store, args.data, args.workspace)
        if args.write_sets:
            write_sets(store, P, ids)
            return
    print(f"{len(Y)} patches, {int(Y.sum())} positive, {P.shape[-1]} pixel features")
    for mode in ("mil", "oracle"):
        print(f"{mode}: 5 folds {pixel_ceiling(P, L, Y, city, mode, 'folds'):.3f}, each city "
              f"held out {pixel_ceiling(P, L, Y, city, mode, 'cities'):.3f}", flush=True)
    stats = {"mean": P.mean(1), "std": P.std(1), "q10": np.quantile(P, 0.1, axis=1),
             "q90": np.quantile(P, 0.9, axis=1)}
    every = list(GROUPS)
    for model in ("rbf", "hgb"):
        print(f"agg {model}: 5 folds "
              f"{aggregate_ceiling(stats, Y, city, every, STATS, 'folds', model):.3f}, each city "
              f"held out {aggregate_ceiling(stats, Y, city, every, STATS, 'cities', model):.3f}",
              flush=True)
    for g in every:
        rest = [x for x in every if x != g]
        print(f"agg rbf without {g}: "
              f"{aggregate_ceiling(stats, Y, city, rest, STATS, 'folds', 'rbf'):.3f}", flush=True)
    for s in STATS:
        rest = [x for x in STATS if x != s]
        print(f"agg rbf without the {s}: "
              f"{aggregate_ceiling(stats, Y, city, every, rest, 'folds', 'rbf'):.3f}", flush=True)
    for only in (["x1", "x2"], ["x1", "x2", "idx"], ["d", "didx"]):
        print(f"agg rbf only {'+'.join(only)}: "
              f"{aggregate_ceiling(stats, Y, city, only, STATS, 'folds', 'rbf'):.3f}", flush=True)


if __name__ == "__main__":
    main()
