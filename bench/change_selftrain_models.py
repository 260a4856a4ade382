"""Other classifiers for `selftrain`'s self-training, and a second round guided by
`selftrain_encoder`'s own map, scored on the 9 OSCD cities (issue 19).

Variants `<model>_<seed>`: model `lr` (the product's standardised logistic regression),
`hgb` (scikit-learn HistGradientBoosting, 100 trees of 15 leaves) or `mlp` (one hidden
layer of 32); seed `c`: the CVA seed map and features of `selftrain` (`lr_c` is
`selftrain` itself), `g`: `selftrain_encoder`'s probability (cached by
`change_thresholds.py`) as the guide, i.e. a second round of self-training. `base` is
that cached map. A `_tex` suffix adds, per band, the change of local texture: log(1 +
the 3 x 3 standard deviation at date 2) minus the same at date 1, each scaled by its
median (new buildings add texture at 10 m; crops and seasons change reflectance more than
texture). Seed map, pseudo-labels (`pseudo_labels`), features (`context_features`)
and the final smoothing are the product's (`change/selftrain.py`); the threshold is Otsu.

    python bench/change_selftrain_models.py [--data ../shared/data/oscd] [--cache DIR]
        [--variants base,lr_c,hgb_c,mlp_c,lr_g,hgb_g,mlp_g]

Prints per city F1 / best-threshold F1, then pooled F1, its bound (`best_f1`) and
AUPRC. Labels are used only to score."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from change_thresholds import arguments, score_cities

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    from eominer.change.align import AlignedPair

VARIANTS = ("base", "lr_c", "hgb_c", "mlp_c", "lr_g", "hgb_g", "mlp_g", "lr_c_tex", "lr_g_tex")
TEXTURE_WINDOW = 3  # px: the local standard deviation of `_tex` variants


def model(kind: str) -> HistGradientBoostingClassifier | Pipeline:
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


def texture_change(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(pixels, bands): per band, log1p of the 3 x 3 local std at date 2 minus at date 1."""
    from scipy.ndimage import uniform_filter

    cols = []
    for i in range(x1.shape[0]):
        logs = []
        for x in (x1[i], x2[i]):
            a = np.where(valid, x, 0).astype(np.float32)
            m = uniform_filter(a, TEXTURE_WINDOW)
            sd = np.sqrt(np.maximum(uniform_filter(a * a, TEXTURE_WINDOW) - m * m, 0))
            logs.append(np.log1p(sd / (np.median(sd[valid]) + 1e-6)))
        cols.append((logs[1] - logs[0]).ravel())
    return np.stack(cols, 1)


def self_trained(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, kind: str,
                 guide: np.ndarray | None, tex: bool = False) -> np.ndarray:
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
    F = context_features(x1, x2, valid, stats, g)
    if tex:  # the product's sampler keeps no pixel index, so the same rule is drawn here
        from eominer.change.normalise import sample_index
        from eominer.change.selftrain import PER_CLASS, SEED_HIGH, SEED_LOW

        F = np.hstack([F, texture_change(x1, x2, valid)])
        high, low = np.quantile(seed.ravel()[sample_index(valid, seed=0)], [SEED_HIGH, SEED_LOW])
        rng = np.random.default_rng(0)
        keep = [rng.choice(i, PER_CLASS, replace=False) if i.size > PER_CLASS else i
                for i in (np.flatnonzero((valid & (seed >= high)).ravel()),
                          np.flatnonzero((valid & (seed <= low)).ravel()))]
        X = F[np.concatenate(keep)].astype(np.float64)
        y = np.r_[np.ones(keep[0].size, np.int8), np.zeros(keep[1].size, np.int8)]
    else:
        X, y, _, _ = pseudo_labels(x1, x2, valid, stats, seed, 0, g)
    z = model(kind).fit(X, y).predict_proba(F)[:, 1]
    p = masked_smooth(z.reshape(valid.shape).astype(np.float32), valid, POST_SIGMA)
    p[~valid] = np.nan
    return p


def main() -> None:
    args = arguments(__doc__, VARIANTS)

    def probability_of(v: str, pair: AlignedPair, cached: np.ndarray) -> np.ndarray:
        if v == "base":
            return cached
        kind, seed, *tex = v.split("_")
        return self_trained(pair.x1, pair.x2, pair.valid, kind,
                            cached if seed == "g" else None, bool(tex))

    score_cities(args.variants, probability_of, Path(args.data), Path(args.cache))


if __name__ == "__main__":
    main()
