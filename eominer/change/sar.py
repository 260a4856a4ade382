"""Sentinel-1 change detection: two co-registered GRD products, VV and VH.

Speckle is multiplicative, so SAR change is measured by ratios, not differences:

- `logratio`: the mean over a `window` x `window` neighbourhood of the per-pixel log-ratio
  ln(I2 / I1), i.e. the log of the ratio of the two dates' *geometric* means. Averaging
  in the log domain is a speckle filter that keeps the log-ratio's symmetry.
- `rom` (ratio of means; Touzi, Lopes & Bousquet 1988): ln(m2 / m1) with m the local
  *arithmetic* mean of linear intensity over the same window. The classic ROM statistic
  1 - min(m1/m2, m2/m1) is a monotonic function of |ln(m2/m1)|, so the two give the same
  map and threshold; we keep the log form, in dB, so both detectors share one unit.

Both are computed per polarisation in dB (10 log10) and combined into one change
magnitude d = sqrt(r_VV^2 + r_VH^2) (the length of the change vector in (VV, VH) log
space: a flood darkens both, a new building brightens VV mostly). Pixels without data in
either date are excluded from every window (the means are taken over valid pixels only).
All of it is box filters (`scipy.ndimage.uniform_filter`): a few passes over the pair.

The threshold is Kittler-Illingworth with generalised-Gaussian classes on d
(`threshold.kittler_illingworth`, Bazi et al. 2005); the change probability is the
fitted two-class posterior P(change | d) (non-decreasing in d), so it can be combined
with an optical map (`fuse_probabilities`). On a pair without change the histogram of d
is unimodal and KI splits its speckle tail (2-7 % false alarms measured on real patches),
so the threshold is guarded from below, speckle-aware, by a constant-false-alarm-rate
level: most of a scene does not change, and without change each polarisation's windowed
change is about N(0, s^2), so d is Rayleigh with median 1.1774 s; the level
median(d) / 1.1774 * sqrt(-2 ln ALPHA) has a false-alarm rate ALPHA (1e-4) on unchanged
ground. A last floor, MIN_DB = 1 dB (26 % in power), keeps changes below calibration
stability out when the two dates are (nearly) identical and the median is 0. The
level used is max(KI, CFAR, MIN_DB); `S1Change` keeps all three.

Inputs: linear power (sigma0) or dB (`to_linear`, unit "auto" tells them apart: dB images
have negative values, linear power never has). The ARD of an ingested S1 product is dB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eominer import sensors as S
from eominer.errors import ConfigError

S1_METHODS: tuple[str, ...] = ("logratio", "rom")
S1_BANDS: tuple[str, ...] = tuple(S.S1_BANDS)  # VV, VH (eominer.sensors)
UNITS: tuple[str, ...] = ("auto", "db", "linear")
DB_PER_NEPER = 10.0 / np.log(10.0)  # ln ratio -> dB
WINDOW = 5
MIN_DB = 1.0
ALPHA = 1e-4
RAYLEIGH_MEDIAN = float(np.sqrt(2 * np.log(2)))  # median of a unit Rayleigh variable
# a linear-power image has no negative value; a dB image of a real scene is mostly
# negative (sigma0 < 1): "auto" calls an image dB when more than this share is negative
AUTO_DB_NEGATIVE_SHARE = 0.01
TINY = np.float32(1e-6)  # -60 dB: floor of linear power before a log or ratio


def unit_of(x: np.ndarray) -> str:
    """'db' or 'linear' by the documented rule (AUTO_DB_NEGATIVE_SHARE)."""
    v = x[np.isfinite(x)]
    if v.size == 0:
        return "db"
    return "db" if float(np.mean(v < 0)) > AUTO_DB_NEGATIVE_SHARE else "linear"


def to_linear(x: np.ndarray, unit: str = "auto") -> np.ndarray:
    """float32 linear power from dB or linear input; NaN stays NaN (no data)."""
    if unit not in UNITS:
        raise ConfigError(f"unknown backscatter unit {unit!r}: expected one of "
                          f"{', '.join(UNITS)}")
    x = np.asarray(x, dtype=np.float32)
    if unit == "auto":
        unit = unit_of(x)
    if unit == "db":
        return np.power(np.float32(10), x / np.float32(10), dtype=np.float32)
    if np.any(x[np.isfinite(x)] < 0):
        raise ConfigError("linear backscatter has negative values: is it in dB? "
                          "pass unit='db' (or 'auto')")
    return x.copy()


def _window_mean(a: np.ndarray, w: np.ndarray, window: int, wsum: np.ndarray) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    s = uniform_filter(a * w, size=window, mode="reflect")
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / wsum


def polarisation_change(
    lin1: np.ndarray, lin2: np.ndarray, valid: np.ndarray, method: str = "rom",
    window: int = WINDOW,
) -> np.ndarray:
    """Signed change in dB of one polarisation (positive: brighter on date 2);
    NaN outside `valid`. `lin1`, `lin2`: (rows, cols) linear power."""
    from scipy.ndimage import uniform_filter

    if method not in S1_METHODS:
        raise ConfigError(f"unknown Sentinel-1 change method {method!r}: expected one of "
                          f"{', '.join(S1_METHODS)}")
    full = bool(valid.all())  # the common case: no weights needed
    a = np.maximum(lin1, TINY, dtype=np.float32)
    b = np.maximum(lin2, TINY, dtype=np.float32)
    if not full:
        a[~valid] = 1.0
        b[~valid] = 1.0
        w = valid.astype(np.float32)
        wsum = uniform_filter(w, size=window, mode="reflect")

    def mean(x: np.ndarray) -> np.ndarray:
        if full:
            return uniform_filter(x, size=window, mode="reflect")
        return _window_mean(x, w, window, wsum)

    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "logratio":
            np.log(b, out=b)
            b -= np.log(a, out=a)
            r = mean(b)
        else:
            r = mean(b)
            r /= mean(a)
            np.log(r, out=r)
    r *= np.float32(DB_PER_NEPER)
    if not full:
        r[~valid] = np.nan
    return r.astype(np.float32, copy=False)


def s1_change_magnitude(
    x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, method: str = "rom",
    window: int = WINDOW,
) -> np.ndarray:
    """(rows, cols) float32 change magnitude in dB, sqrt(sum over polarisations of the
    squared signed change); x1, x2: (pols, rows, cols) linear power; NaN outside `valid`."""
    if x1.shape != x2.shape or x1.shape[1:] != valid.shape:
        raise ConfigError(f"Sentinel-1 change inputs must share one grid: got {x1.shape}, "
                          f"{x2.shape} and mask {valid.shape}")
    d = np.zeros(valid.shape, dtype=np.float32)
    for i in range(x1.shape[0]):
        r = polarisation_change(x1[i], x2[i], valid, method, window)
        d += r * r
    np.sqrt(d, out=d)
    return d


@dataclass(frozen=True, eq=False)
class S1Change:
    """probability: P(change) (NaN = nodata); binary: 1 change, 0 none, 255 nodata;
    threshold in dB of the change magnitude."""

    magnitude: np.ndarray
    probability: np.ndarray
    binary: np.ndarray
    threshold: float
    ki_threshold: float
    cfar_threshold: float


def s1_change(
    x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, method: str = "rom",
    window: int = WINDOW, min_db: float = MIN_DB, alpha: float = ALPHA, seed: int = 0,
) -> S1Change:
    """Change magnitude, probability and binary map of an S1 pair (linear power); the
    threshold is max(KI, CFAR at `alpha`, `min_db`) (module docstring)."""
    from eominer.change.normalise import sample_index
    from eominer.change.threshold import kittler_illingworth

    d = s1_change_magnitude(x1, x2, valid, method, window)
    ok = valid & np.isfinite(d)
    if not ok.any():
        raise ConfigError("the Sentinel-1 pair has no pixel with data in both dates")
    sample = d.ravel()[sample_index(ok, seed=seed)]  # one seeded sample for both levels
    ki = kittler_illingworth(sample, model="gg", seed=seed)
    cfar = cfar_level(sample, alpha=alpha)
    level = max(ki.threshold, cfar, float(min_db))
    prob = ki.posterior(d)
    # below the guard the posterior may not call change: cap it under 0.5 there
    cap = d * np.float32(0.5 / level)
    np.minimum(prob, cap, out=prob, where=d <= level)
    del cap
    binary = (d > level).astype(np.uint8)
    if not ok.all():
        prob[~ok] = np.nan
        binary[~ok] = 255
    return S1Change(d, prob, binary, level, ki.threshold, cfar)


def cfar_level(d: np.ndarray, valid: np.ndarray | None = None, alpha: float = ALPHA,
               seed: int = 0) -> float:
    """The change magnitude exceeded with probability `alpha` by unchanged ground, if d
    is Rayleigh there with the median of d over the valid area (module docstring)."""
    from eominer.change.normalise import sample_index

    if valid is None:
        valid = np.isfinite(d)
    med = float(np.median(d.ravel()[sample_index(valid, seed=seed)]))
    return med / RAYLEIGH_MEDIAN * float(np.sqrt(-2.0 * np.log(alpha)))


# --- S1 + S2 fusion ------------------------------------------------------------------------
FUSION_RULE = "mean"


def fuse_probabilities(p_s1: np.ndarray, p_s2: np.ndarray) -> np.ndarray:
    """Change probability of a place seen by both an S1 and an S2 pair (one grid):
    the mean of the two probabilities where both are valid, the one that is valid where
    only one is (clouds hide the optical pair, radar sees through them), NaN where
    neither is. The fused binary map is fused probability > 0.5."""
    if p_s1.shape != p_s2.shape:
        raise ConfigError(f"fusion needs the S1 and S2 maps on one grid: got {p_s1.shape} "
                          f"and {p_s2.shape}")
    a, b = np.isfinite(p_s1), np.isfinite(p_s2)
    out = np.full(p_s1.shape, np.nan, dtype=np.float32)
    both = a & b
    out[both] = 0.5 * (p_s1[both] + p_s2[both])
    out[a & ~b] = p_s1[a & ~b]
    out[b & ~a] = p_s2[b & ~a]
    return out
