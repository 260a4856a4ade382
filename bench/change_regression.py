"""Cross-date regression as a change map and as `selftrain`'s guide, scored on the 9 OSCD
cities (issue 19): which regression, chosen by measurement.

Date 2 (each band standardised) is predicted from date 1 on 30,000 random valid pixels;
the distance is the residual's length, each band scaled by its median absolute residual.
Regressions: `lin` (least squares on date 1's 10 bands), `lin_ctx` (and their masked
Gaussian means at sigma 1 and 2), `rlin_ctx` (refitted without the 10 % largest residuals
of a first fit), `mlp`, `mlp_ctx` (scikit-learn MLPRegressor, 64 x 64). A variant is
scored alone (its distance averaged over sigma 1, 2, 4, the common probability rule,
Otsu) or, prefixed `st_`, as the guide of the product's `selftrain_probability`. `cva` is
CVA's magnitude averaged the same way; `base` the cached `selftrain_encoder` map
(`change_thresholds.py`).

    python bench/change_regression.py [--data ../shared/data/oscd] [--cache DIR]
        [--variants cva,lin,lin_ctx,mlp,mlp_ctx,base,st_lin,st_lin_ctx,st_rlin_ctx,st_mlp,st_mlp_ctx]

Prints per city F1 / best-threshold F1, then pooled F1, its bound and AUPRC. Labels are
used only to score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from change_thresholds import arguments, score_cities

VARIANTS = ("cva", "lin", "lin_ctx", "mlp", "mlp_ctx", "base", "st_lin", "st_lin_ctx",
            "st_rlin_ctx", "st_mlp", "st_mlp_ctx", "lin_shift", "lin_shift2", "st_lin_shift",
            "st_lin_shift2")
N_FIT = 30_000


def residual(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, kind: str) -> np.ndarray:
    """The scaled residual's length per pixel (0 outside `valid`)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.neural_network import MLPRegressor

    from eominer.change.selftrain import masked_smooth

    def std(x: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape, np.float32)
        for i in range(x.shape[0]):
            v = x[i][valid]
            out[i] = (x[i] - np.median(v)) / (np.std(v) + 1e-6)
        return np.where(valid, out, 0)

    a, b = std(x1), std(x2)
    cols = list(a)
    if kind.endswith("_ctx"):
        cols += [masked_smooth(ai, valid, s) for s in (1.0, 2.0) for ai in a]
    X = np.stack([c.ravel() for c in cols], 1)
    Y = np.stack([bi.ravel() for bi in b], 1)
    idx = np.flatnonzero(valid.ravel())
    fit = np.random.default_rng(0).choice(idx, min(N_FIT, idx.size), replace=False)
    if kind.startswith("mlp"):
        model = MLPRegressor(hidden_layer_sizes=(64, 64), alpha=1e-3, max_iter=200,
                             early_stopping=True, random_state=0).fit(X[fit], Y[fit])
    else:
        model = LinearRegression().fit(X[fit], Y[fit])
        if kind.startswith("rlin"):
            r = np.sqrt(((Y[fit] - model.predict(X[fit])) ** 2).sum(1))
            fit = fit[r <= np.quantile(r, 0.9)]
            model = LinearRegression().fit(X[fit], Y[fit])
    P = model.predict(X)
    R = Y - P
    scale = np.median(np.abs(R[fit]), axis=0) + 1e-6
    if kind.endswith(("_shift", "_shift2")):
        shape = (*valid.shape, -1)
        y, p = (Y / scale).reshape(shape), (P / scale).reshape(shape)
        m = min_over_shifts(y, p)
        if kind.endswith("_shift2"):
            m = np.maximum(m, min_over_shifts(p, y))
        return np.where(valid, np.sqrt(m), 0).astype(np.float32)
    m = np.sqrt(((R / scale) ** 2).sum(1)).reshape(valid.shape).astype(np.float32)
    return np.where(valid, m, 0)


def min_over_shifts(a: np.ndarray, b: np.ndarray, r: int = 1) -> np.ndarray:
    """Per pixel, min over shifts s in a (2r+1)^2 window of ||a(p) - b(p + s)||^2: a pixel
    that matches a neighbour of its place on the other date (misregistration, resampled
    20 m edges) is not called changed."""
    rows, cols, _ = a.shape
    bp = np.pad(b, ((r, r), (r, r), (0, 0)), mode="edge")
    out = np.full((rows, cols), np.inf, np.float32)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            d = a - bp[dy:dy + rows, dx:dx + cols]
            np.minimum(out, np.einsum("ijk,ijk->ij", d, d), out=out)
    return out


def probability_of(variant: str, x1: np.ndarray, x2: np.ndarray, valid: np.ndarray,
                   cached: np.ndarray) -> np.ndarray:
    from eominer.change.cva import cva_distance
    from eominer.change.normalise import to_probability
    from eominer.change.selftrain import SCALES, masked_smooth, selftrain_probability

    if variant == "base":
        return cached
    if variant.startswith("st_"):
        return selftrain_probability(x1, x2, valid, 0,
                                     guide=residual(x1, x2, valid, variant[3:]))[0]
    d = cva_distance(x1, x2, valid) if variant == "cva" else residual(x1, x2, valid, variant)
    return to_probability(sum(masked_smooth(d, valid, s) for s in SCALES) / len(SCALES), valid)


def main() -> None:
    args = arguments(__doc__, VARIANTS)
    score_cities(args.variants, lambda v, pair, cached: probability_of(
        v, pair.x1, pair.x2, pair.valid, cached), Path(args.data), Path(args.cache))


if __name__ == "__main__":
    main()
