"""Other classifiers for `selftrain`'s self-training, and a second round guided by
`selftrain_encoder`'s own map, scored on the 9 OSCD cities (issue 19).

Variants `<model>_<seed>`: model `lr` (the product's standardised logistic regression),
`hgb` (scikit-learn HistGradientBoosting, 100 trees of 15 leaves) or `mlp` (one hidden
layer of 32); seed `c`: the CVA seed map and features of `selftrain` (`lr_c` is
`selftrain` itself), `g`: `selftrain_encoder`'s probability (cached by
`change_thresholds.py`) as the guide, i.e. a second round of self-training. `base` is
that cached map. Seed map, pseudo-labels (`pseudo_labels`), features (`context_features`)
and the final smoothing are the product's (`change/selftrain.py`); the threshold is Otsu.

    python bench/change_selftrain_models.py [--data ../shared/data/oscd] [--cache DIR]
        [--variants base,lr_c,hgb_c,mlp_c,lr_g,hgb_g,mlp_g]

Prints per city F1 / best-threshold F1, then pooled F1, its bound (`best_f1`) and
AUPRC. Labels are used only to score."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from change_thresholds import CITIES, probability

VARIANTS = ("base", "lr_c", "hgb_c", "mlp_c", "lr_g", "hgb_g", "mlp_g")


def model(kind: str):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from eominer.change.selftrain import C

    if kind == "hgb":
        return HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=15,
                                              l2_regularization=1.0, random_state=0)
    last = (LogisticRegression(C=C, max_iter=1000) if kind == "lr" else
            MLPClassifier((32,), alpha=1e-2, max_iter=300, random_state=0))
    return make_pipeline(StandardScaler(), last)


def self_trained(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, kind: str,
                 guide: np.ndarray | None) -> np.ndarray:
    """The product's seed, pseudo-labels and features (`change/selftrain.py`), `kind`'s
    model fitted on them, its probability smoothed as the product smooths it."""
    from eominer.change.selftrain import (
        POST_SIGMA,
        _date_stats,
        _magnitude,
        context_features,
        masked_smooth,
        pseudo_labels,
        seed_map,
    )

    stats = _date_stats(x1, x2, valid, "standardise", 0)
    g = None if guide is None else np.where(valid, np.nan_to_num(guide), 0).astype(np.float32)
    seed = seed_map(_magnitude(x1, x2, valid, stats) if g is None else g, valid)
    X, y, _, _ = pseudo_labels(x1, x2, valid, stats, seed, 0, g)
    z = model(kind).fit(X, y).predict_proba(context_features(x1, x2, valid, stats, g))[:, 1]
    p = masked_smooth(z.reshape(valid.shape).astype(np.float32), valid, POST_SIGMA)
    p[~valid] = np.nan
    return p


def main() -> None:
    import argparse

    from eominer.change.threshold import otsu_threshold
    from eominer.evaluation.change_metrics import F1Hull, auprc, best_f1, confusion
    from eominer.evaluation.oscd import load_city

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/oscd")
    ap.add_argument("--cache", default="/tmp/chg_thresholds")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    variants = args.variants.split(",")
    if set(variants) - set(VARIANTS):
        sys.exit(f"unknown variants {set(variants) - set(VARIANTS)}; known: {VARIANTS}")
    pooled = {v: np.zeros(4, np.int64) for v in variants}
    hulls: dict[str, list] = {v: [] for v in variants}
    probs: dict[str, list[np.ndarray]] = {v: [] for v in variants}
    truths = []
    for city in CITIES:
        guide = probability(Path(args.data), city, Path(args.cache))[0]
        pair, truth = load_city(Path(args.data), city)
        valid = pair.valid
        truths.append(truth.ravel())
        line = []
        for v in variants:
            t0 = time.perf_counter()
            if v == "base":
                p = guide
            else:
                kind, seed = v.split("_")
                p = self_trained(pair.x1, pair.x2, valid, kind, guide if seed == "g" else None)
            p0 = np.where(valid, np.nan_to_num(p, nan=0.0), 0.0)
            c = confusion(valid & (p0 > otsu_threshold(p, valid, 0)), truth)
            pooled[v] += c
            hulls[v].append(F1Hull.of(p0, truth))
            probs[v].append(p0.ravel())
            f1 = 2 * c[0] / (2 * c[0] + c[1] + c[2])
            line.append(f"{v} {f1:.3f}/{best_f1([hulls[v][-1]])[0]:.3f} "
                        f"({time.perf_counter() - t0:.0f} s)")
        print(city, "  ".join(line), flush=True)
    t = np.concatenate(truths)
    print("\nvariant  pooled F1  bound  AUPRC")
    for v in variants:
        tp, fp, fn, _ = (int(x) for x in pooled[v])
        print(f"{v:8s} {2 * tp / (2 * tp + fp + fn):.3f}      {best_f1(hulls[v])[0]:.3f}  "
              f"{auprc(np.concatenate(probs[v]), t):.3f}")


if __name__ == "__main__":
    main()
