"""Automatic thresholds without labels: Otsu (probability maps) and Kittler-Illingworth
(the Sentinel-1 change image; see below).

Otsu picks the level that maximises the between-class variance of the two classes it
makes (scikit-image's `threshold_otsu`, 256-bin histogram of the valid probabilities).
It needs no parameter and no label; its known weakness is a very small change class
(a few per mille of the scene), where it tends to set the cut too low.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from eominer.change.normalise import sample_index
from eominer.errors import require


def otsu_threshold(prob: np.ndarray, valid: np.ndarray, seed: int = 0) -> float:
    require("skimage", "change", "the change map's automatic threshold")
    from skimage.filters import threshold_otsu

    values = prob.ravel()[sample_index(valid, seed=seed)]
    values = values[np.isfinite(values)]
    if values.size == 0 or float(values.min()) == float(values.max()):
        return 0.5
    return float(threshold_otsu(values, nbins=256))


def binary_map(prob: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 map: 1 change, 0 no change, 255 nodata (outside `valid`)."""
    out = np.where(prob > threshold, 1, 0).astype(np.uint8)
    out[~valid] = 255
    return out


# --- Kittler-Illingworth minimum-error threshold ------------------------------------------
#
# Kittler & Illingworth (1986) choose the level T that minimises the cost of classifying
# the histogram with two parametric class densities fitted on either side of T:
#     J(T) = - sum_x h(x) log( P_i(T) p_i(x | T) ),   i = class of x at level T.
# With Gaussian classes J reduces to their closed form 1 + 2 sum P_i (log s_i - log P_i).
# SAR change images are not Gaussian: Bazi, Bruzzone & Melgani (IEEE TGRS 43(4), 2005)
# model each class of the log-ratio image with a generalised Gaussian (GG)
#     p(x) = b / (2 a G(1/b)) exp(-(|x - m| / a)^b),  a = s sqrt(G(1/b) / G(3/b)),
# whose shape b (1: Laplacian, 2: Gaussian, large: flat) is estimated per class from
# the ratio (E|x - m|)^2 / Var = G(2/b)^2 / (G(1/b) G(3/b)) (method of moments). That
# is `model="gg"` (the default); `model="gaussian"` is the original criterion.

KI_MODELS: tuple[str, ...] = ("gg", "gaussian")


@functools.lru_cache(maxsize=1)
def _gg_shape_table() -> tuple[np.ndarray, np.ndarray]:
    from scipy.special import gammaln

    b = np.linspace(0.3, 10.0, 400)
    rho = np.exp(2 * gammaln(2 / b) - gammaln(1 / b) - gammaln(3 / b))
    return rho, b  # rho increases with b: 0.5 at b = 1, 2/pi at b = 2


def gg_shape(rho: np.ndarray) -> np.ndarray:
    """Generalised-Gaussian shape from the moment ratio (E|x-m|)^2 / Var."""
    table_rho, table_b = _gg_shape_table()
    return np.interp(rho, table_rho, table_b)


def gg_logpdf(x: np.ndarray, mean: float, std: float, shape: float) -> np.ndarray:
    from scipy.special import gammaln

    std = np.maximum(std, 1e-12)
    log_alpha = np.log(std) + 0.5 * (gammaln(1 / shape) - gammaln(3 / shape))
    alpha = np.exp(log_alpha)
    return (np.log(shape) - np.log(2.0) - log_alpha - gammaln(1 / shape)
            - (np.abs(x - mean) / alpha) ** shape)


@dataclass(frozen=True)
class KIThreshold:
    """A fitted two-class split of a change image: the level, and each class's prior,
    mean, standard deviation and GG shape (index 0: no change, below the level)."""

    threshold: float
    model: str
    prior: tuple[float, float]
    mean: tuple[float, float]
    std: tuple[float, float]
    shape: tuple[float, float]

    def posterior(self, x: np.ndarray) -> np.ndarray:
        """P(change | x) from the two fitted class densities, made non-decreasing in x
        (a heavier-tailed no-change class would otherwise win again far in the tail),
        float32, NaN where x is NaN."""
        x = np.asarray(x)
        grid = np.linspace(min(self.mean[0], self.threshold) - 1e-9,
                           max(self.mean[1], self.threshold) + 1e-9, 512)
        l0 = np.log(max(self.prior[0], 1e-12)) + gg_logpdf(grid, self.mean[0], self.std[0],
                                                           self.shape[0])
        l1 = np.log(max(self.prior[1], 1e-12)) + gg_logpdf(grid, self.mean[1], self.std[1],
                                                           self.shape[1])
        post = 1.0 / (1.0 + np.exp(np.clip(l0 - l1, -50, 50)))
        post = np.maximum.accumulate(post)
        out = np.interp(x, grid, post).astype(np.float32)
        nan = np.isnan(x)
        if nan.any():
            out[nan] = np.nan
        return out


def kittler_illingworth(
    values: np.ndarray, valid: np.ndarray | None = None, *, model: str = "gg",
    nbins: int = 256, seed: int = 0,
) -> KIThreshold:
    """Minimum-error threshold of a change image (see the comment above): pure function
    of the valid values (a seeded sample of at most 1M of them), 256-bin histogram.
    Classes with fewer than 0.1 % of the values are not considered (a split that
    isolates a handful of outliers is not a change class)."""
    if model not in KI_MODELS:
        from eominer.errors import ConfigError

        raise ConfigError(f"unknown Kittler-Illingworth model {model!r}: expected one of "
                          f"{', '.join(KI_MODELS)}")
    v = np.asarray(values, dtype=np.float64)
    if valid is None:
        valid = np.isfinite(v)
    v = v.ravel()[sample_index(np.asarray(valid) & np.isfinite(v), seed=seed)]
    if v.size == 0 or float(v.min()) == float(v.max()):
        level = float(v.max()) if v.size else 0.0
        return KIThreshold(level, model, (1.0, 0.0), (level, level), (0.0, 0.0), (2.0, 2.0))
    counts, edges = np.histogram(v, bins=nbins)
    h = counts / counts.sum()
    c = 0.5 * (edges[:-1] + edges[1:])
    k = np.arange(1, nbins)  # class 0 = bins [0, k), class 1 = bins [k, nbins)
    below = np.arange(nbins)[None, :] < k[:, None]  # (levels, bins)
    costs = np.full(k.size, np.inf)
    fits: list[tuple] = [()] * k.size
    for j in range(k.size):
        parts = []
        cost = 0.0
        for mask in (below[j], ~below[j]):
            hp = h[mask]
            p = hp.sum()
            if p < 1e-3:
                break
            m = float((hp * c[mask]).sum() / p)
            var = float((hp * (c[mask] - m) ** 2).sum() / p)
            bin_w = edges[1] - edges[0]
            s = max(np.sqrt(var), bin_w / np.sqrt(12))  # one bin wide at least
            if model == "gg":
                mad = float((hp * np.abs(c[mask] - m)).sum() / p)
                b = float(gg_shape(min(mad * mad / (s * s), 0.749)))
            else:
                b = 2.0
            cost -= float((hp * (np.log(p) + gg_logpdf(c[mask], m, s, b))).sum())
            parts.append((p, m, s, b))
        else:
            costs[j] = cost
            fits[j] = tuple(parts)
    if not np.isfinite(costs).any():
        level = float(edges[-1])
        return KIThreshold(level, model, (1.0, 0.0), (float(v.mean()), level),
                           (float(v.std()), 0.0), (2.0, 2.0))
    j = int(np.argmin(costs))
    (p0, m0, s0, b0), (p1, m1, s1, b1) = fits[j]
    return KIThreshold(float(edges[k[j]]), model, (p0, p1), (m0, m1), (s0, s1), (b0, b1))
