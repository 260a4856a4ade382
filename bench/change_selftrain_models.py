"""Other classifiers for `selftrain`'s self-training, and a second round guided by
`selftrain_encoder`'s own map, scored on the 9 OSCD cities (issue 19).

Variants `<model>_<seed>`: model `lr` (the product's standardised logistic regression),
`hgb` (scikit-learn HistGradientBoosting, 100 trees of 15 leaves) or `mlp` (one hidden
layer of 32); seed `c`: the CVA seed map and features of `selftrain` (`lr_c` is
`selftrain` itself), `g`: `selftrain_encoder`'s probability (cached by
`change_thresholds.py`) as the guide, i.e. a second round of self-training. `base` is
that cached map. Pseudo-labels, feature scales and the final smoothing are the
product's (`change/selftrain.py`); the threshold is Otsu.

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


def features(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray,
             guide: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """`selftrain`'s per-pixel features (with the guide's four when given) and seed map."""
    from eominer.change.selftrain import (
        SCALES,
        _band_pair,
        _date_stats,
        mask_weights,
        masked_smooth,
        seed_map,
    )

    stats = _date_stats(x1, x2, valid, "standardise", 0)
    pairs = [_band_pair(x1, x2, valid, stats, i) for i in range(x1.shape[0])]
    d = [p[1] for p in pairs]
    m = np.sqrt(sum(di * di for di in d)).astype(np.float32)
    dens = mask_weights(valid)
    cols = [*d, *(np.abs(di) for di in d), m]
    for s, den in zip(SCALES, dens, strict=True):
        cols += [masked_smooth(di, valid, s, den) for di in d] + [masked_smooth(m, valid, s, den)]
    cols += [p[0] for p in pairs]
    seed = seed_map(m, valid, dens)
    if guide is not None:
        g = np.where(valid, np.nan_to_num(guide), 0).astype(np.float32)
        cols += [g] + [masked_smooth(g, valid, s, den) for s, den in zip(SCALES, dens, strict=True)]
        seed = seed_map(g, valid, dens)
    return np.stack([c.ravel() for c in cols], 1).astype(np.float32), seed


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


def self_trained(X: np.ndarray, seed: np.ndarray, valid: np.ndarray, kind: str) -> np.ndarray:
    """The product's pseudo-labels (top 1 % / bottom 80 % of the seed, 10,000 each),
    the model fitted on them, its probability smoothed as the product smooths it."""
    from eominer.change.normalise import sample_index
    from eominer.change.selftrain import PER_CLASS, POST_SIGMA, SEED_HIGH, SEED_LOW, masked_smooth

    s = seed.ravel()[sample_index(valid, seed=0)]
    high, low = float(np.quantile(s, SEED_HIGH)), float(np.quantile(s, SEED_LOW))
    rng = np.random.default_rng(0)
    keep = []
    for mask in (valid & (seed >= high), valid & (seed <= low)):
        idx = np.flatnonzero(mask.ravel())
        keep.append(rng.choice(idx, PER_CLASS, replace=False) if idx.size > PER_CLASS else idx)
    idx = np.concatenate(keep)
    y = np.r_[np.ones(keep[0].size, np.int8), np.zeros(keep[1].size, np.int8)]
    z = model(kind).fit(X[idx], y).predict_proba(X)[:, 1].reshape(valid.shape)
    p = masked_smooth(z.astype(np.float32), valid, POST_SIGMA)
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
                X, s = features(pair.x1, pair.x2, valid, guide if seed == "g" else None)
                p = self_trained(X, s, valid, kind)
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
