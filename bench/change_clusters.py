"""The cross-date regression's residual judged against what each kind of ground does
between two dates (issue 19): scored on the 9 OSCD cities, as a map alone and as
`selftrain`'s guide.

`selftrain_regression` scales the residual of date 2 predicted from date 1 by one
robust scale per band for the whole scene. Its false alarms are whole objects that OSCD
does not label (fields, water, vegetation: docs/change.md, "Where
`selftrain_regression`'s false alarms are"), where the ground changes a lot between
any two dates, and along its own directions (a crop's red and NIR). So here date 1's
pixels are clustered (k-means on its standardised bands, no label) and each cluster's
residuals get their own scale:

- `lin`: the product's residual length (one scale per band; the reference);
- `blin`, `slin`, `minlin`, `maxlin`: date 1 predicted from date 2 as well (a field
  that became a building is unexplained both ways; a crop that grew, perhaps not): the
  backward residual's length alone, the root mean square of both, their minimum and
  maximum;
- `gmah`: the residual's Mahalanobis length under one robust covariance for the scene
  (is it the covariance, not the clusters?);
- `cdiag` K: per cluster of date 1, one robust scale per band;
- `cmah` K: per cluster, the residual's Mahalanobis length under the cluster's robust
  covariance (fitted, then refitted without its 10 % largest lengths).

Each is scored alone (averaged over sigma 1, 2, 4, the common probability rule, Otsu)
and, prefixed `st_`, as the guide of the product's `selftrain_probability`.

    python bench/change_clusters.py [--data ../shared/data/oscd]
        [--variants lin,gmah,cdiag8,cmah8,st_lin,st_gmah,st_cdiag8,st_cmah8]

Prints per city F1 / best-threshold F1, then pooled F1, its bound and AUPRC
(`change_thresholds.score_cities`). Labels are used only to score."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from change_thresholds import score_cities

N_FIT = 30_000


def _standardised(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, np.float32)
    for i in range(x.shape[0]):
        v = x[i][valid]
        out[i] = (x[i] - np.median(v)) / (np.std(v) + 1e-6)
    return np.where(valid, out, 0)


def _robust_inverse(R: np.ndarray) -> np.ndarray:
    """The inverse of a covariance of residual rows `R`, refitted without the 10 % of
    rows farthest under the first fit (the changes among them)."""
    cov = np.cov(R, rowvar=False) + 1e-4 * np.eye(R.shape[1])
    d = np.einsum("ij,jk,ik->i", R, np.linalg.inv(cov), R)
    keep = R[d <= np.quantile(d, 0.9)]
    return np.linalg.inv(np.cov(keep, rowvar=False) + 1e-4 * np.eye(R.shape[1]))


def distance(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, kind: str) -> np.ndarray:
    """The residual's length per pixel under `kind` (0 outside `valid`)."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.linear_model import LinearRegression

    a, b = _standardised(x1, valid), _standardised(x2, valid)
    X = a.reshape(a.shape[0], -1).T
    Y = b.reshape(b.shape[0], -1).T
    idx = np.flatnonzero(valid.ravel())
    rng = np.random.default_rng(0)
    fit = rng.choice(idx, min(N_FIT, idx.size), replace=False)
    R = Y - LinearRegression().fit(X[fit], Y[fit]).predict(X)

    def length(R: np.ndarray) -> np.ndarray:
        return np.sqrt(((R / (np.median(np.abs(R[fit]), axis=0) + 1e-6)) ** 2).sum(1))

    if kind == "lin":
        d = length(R)
    elif kind in ("blin", "slin", "minlin", "maxlin"):  # date 1 predicted from date 2 too
        back = length(X - LinearRegression().fit(Y[fit], X[fit]).predict(Y))
        d = {"blin": back, "slin": np.sqrt((length(R) ** 2 + back ** 2) / 2),
             "minlin": np.minimum(length(R), back),
             "maxlin": np.maximum(length(R), back)}[kind]
    elif kind == "gmah":
        d = np.sqrt(np.einsum("ij,jk,ik->i", R, _robust_inverse(R[fit]), R))
    else:
        k = int(re.sub(r"\D", "", kind))
        km = MiniBatchKMeans(k, random_state=0, n_init=3).fit(X[fit])
        labels = km.predict(X)
        d = np.zeros(len(R), np.float64)
        for c in range(k):
            rows = labels == c
            train = fit[labels[fit] == c]
            if train.size < 50:  # a cluster too small for its own scale: the scene's
                train = fit
            if kind.startswith("cdiag"):
                scale = np.median(np.abs(R[train]), axis=0) + 1e-6
                d[rows] = np.sqrt(((R[rows] / scale) ** 2).sum(1))
            else:
                inv = _robust_inverse(R[train])
                d[rows] = np.sqrt(np.einsum("ij,jk,ik->i", R[rows], inv, R[rows]))
    return np.where(valid, d.reshape(valid.shape), 0).astype(np.float32)


def probability_of(variant: str, x1: np.ndarray, x2: np.ndarray, valid: np.ndarray
                   ) -> np.ndarray:
    from eominer.change.normalise import to_probability
    from eominer.change.selftrain import SCALES, masked_smooth, selftrain_probability

    if variant.startswith("st_"):
        return selftrain_probability(x1, x2, valid, 0,
                                     guide=distance(x1, x2, valid, variant[3:]))[0]
    d = distance(x1, x2, valid, variant)
    return to_probability(sum(masked_smooth(d, valid, s) for s in SCALES) / len(SCALES), valid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/oscd")
    ap.add_argument("--variants", default="lin,gmah,cdiag8,cmah8,st_lin,st_gmah,st_cdiag8,"
                                          "st_cmah8")
    args = ap.parse_args()
    score_cities(args.variants.split(","), lambda v, pair, _: probability_of(
        v, pair.x1, pair.x2, pair.valid), Path(args.data), None)


if __name__ == "__main__":
    main()
