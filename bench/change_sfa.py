"""Iterative slow feature analysis (ISFA; Wu, Du & Zhang 2014) as a change map and as
`selftrain`'s guide, scored on the 9 OSCD cities (issue 19).

Each band of each date standardised (median, standard deviation over the valid pixels);
on 50,000 random valid pixels, the generalised eigenproblem of the difference's
covariance against the mean of the two dates' covariances gives the slow features, the
projections of the difference that change least where the scene did not change. A
pixel's statistic is the sum of its slow features' squares over their variances
(chi-square with one degree per band); each pixel of the sample is then weighted by its
chi-square probability of no change, and the weighted fit repeated until the weights
move by < 1e-3 (at most 15 times), as IR-MAD reweights its canonical variates. `mahal`
is the same iteration with the difference's Mahalanobis distance under its weighted
covariance (the same statistic: a check). Variants prefixed `st_` are the product's
`selftrain_probability` guided by the distance; `st_lin` is `selftrain_regression`'s
guide (bench/change_regression.py) for comparison, `st_lin_isfa` the mean of the two
guides, each over its median.

    python bench/change_sfa.py [--data ../shared/data/oscd] [--cache DIR]
        [--variants isfa,st_isfa,mahal,st_mahal,st_lin,st_lin_isfa]

Prints per city F1 / best-threshold F1, then pooled F1, its bound and AUPRC (labels only
to score)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from change_regression import residual  # this folder
from change_thresholds import arguments, score_cities

VARIANTS = ("isfa", "st_isfa", "mahal", "st_mahal", "st_lin", "st_lin_isfa")
N_FIT = 50_000


def standardised(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(pixels, bands) float32, each band centred on its median and scaled by its std."""
    out = np.empty(x.shape, np.float32)
    for i, band in enumerate(x):
        v = band[valid]
        out[i] = (band - np.median(v)) / (np.std(v) + 1e-6)
    return np.where(valid, out, 0).reshape(x.shape[0], -1).T


def weighted_cov(a: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = (a * w[:, None]).sum(0) / w.sum()
    c = a - m
    return (c * w[:, None]).T @ c / w.sum(), m


def sfa_distance(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, kind: str = "isfa",
                 iters: int = 15) -> np.ndarray:
    """(rows, cols) float32 square root of the chi-square statistic; 0 outside `valid`."""
    from scipy.linalg import eigh
    from scipy.stats import chi2

    bands = x1.shape[0]
    d_all = standardised(x1, valid) - standardised(x2, valid)
    idx = np.flatnonzero(valid.ravel())
    fit = np.random.default_rng(0).choice(idx, min(N_FIT, idx.size), replace=False)
    x, y = (standardised(v, valid)[fit].astype(np.float64) for v in (x1, x2))
    d, w = x - y, np.ones(len(fit))

    def statistic(diff: np.ndarray) -> np.ndarray:
        c = diff - mean
        if kind == "isfa":
            s = c @ vecs
            return (s ** 2 / var).sum(1)
        return np.einsum("ij,jk,ik->i", c, inv, c)

    for _ in range(iters):
        cov_d, mean = weighted_cov(d, w)
        if kind == "isfa":
            _, vecs = eigh(cov_d, 0.5 * (weighted_cov(x, w)[0] + weighted_cov(y, w)[0]))
            s = (d - mean) @ vecs
            var = (s ** 2 * w[:, None]).sum(0) / w.sum()
        else:
            inv = np.linalg.inv(cov_d + 1e-6 * np.eye(bands))
        w_new = 1 - chi2.cdf(statistic(d), bands)
        moved, w = np.abs(w_new - w).max(), w_new
        if moved < 1e-3:
            break
    t = statistic(d_all).reshape(valid.shape)
    return np.where(valid, np.sqrt(t), 0).astype(np.float32)


def probability_of(variant: str, x1: np.ndarray, x2: np.ndarray, valid: np.ndarray
                   ) -> np.ndarray:
    from eominer.change.normalise import to_probability
    from eominer.change.selftrain import SCALES, masked_smooth, selftrain_probability

    kind = variant.removeprefix("st_")
    if kind == "lin":
        g = residual(x1, x2, valid, "lin")
    elif kind == "lin_isfa":
        a, b = residual(x1, x2, valid, "lin"), sfa_distance(x1, x2, valid)
        g = a / np.median(a[valid]) + b / np.median(b[valid])
    else:
        g = sfa_distance(x1, x2, valid, kind)
    if variant.startswith("st_"):
        return selftrain_probability(x1, x2, valid, 0, guide=g)[0]
    return to_probability(sum(masked_smooth(g, valid, s) for s in SCALES) / len(SCALES), valid)


def main() -> None:
    args = arguments(__doc__, VARIANTS)
    score_cities(args.variants, lambda v, pair, cached: probability_of(
        v, pair.x1, pair.x2, pair.valid), Path(args.data), Path(args.cache))


if __name__ == "__main__":
    main()
