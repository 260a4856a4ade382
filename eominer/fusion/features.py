"""Per-sensor patch descriptors and feature-level fusion (weighted concatenation).

The descriptors here are small, fixed statistics so fusion works on its own: the S2
vector is the mean and standard deviation of each of the 12 L2A bands (reflectance) and of
three indices (NDVI, NDWI, NDBI); the S1 vector is the mean, standard deviation, 10th and
90th percentile of VV and VH and the mean/std of the VV-VH difference, in dB/10 (log10
power) so both sensors' values are of order one. The store's own descriptor sets ('spectral',
'sar' from eominer.features) can be fused instead with `fuse_feature_sets`.

Fused rows are [w_s2 * f_s2 / sqrt(d_s2), w_s1 * f_s1 / sqrt(d_s1)]: dividing by the
block's sqrt(dimension) gives each sensor the same share of a Euclidean distance whatever
its number of features (S2 would otherwise outweigh S1 30:10), and the weights move that
share. Models that standardise each column (the logistic models here) are unaffected by
the weights; distance- and kernel-based models (RBF SVM, similarity search) are not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eominer.errors import FeatureError, GridMismatchError
from eominer.fusion.bigearthnet import S2_FUSION_BANDS

_I = {b: i for i, b in enumerate(S2_FUSION_BANDS)}
S2_FEATURE_NAMES: tuple[str, ...] = tuple(
    [f"s2_{b.lower()}_{s}" for b in S2_FUSION_BANDS for s in ("mean", "std")]
    + [f"s2_{ix}_{s}" for ix in ("ndvi", "ndwi", "ndbi") for s in ("mean", "std")]
)
S1_FEATURE_NAMES: tuple[str, ...] = tuple(
    [f"s1_{p}_{s}" for p in ("vv", "vh") for s in ("mean", "std", "p10", "p90")]
    + ["s1_vvvh_mean", "s1_vvvh_std"]
)


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a - b) / (a + b)


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    return (float(x.mean()), float(x.std())) if x.size else (np.nan, np.nan)


def s2_descriptors(s2: np.ndarray) -> np.ndarray:
    """(12, rows, cols) reflectance -> 30 statistics over the valid pixels (0 = no data).

    An all-invalid patch gives NaNs: callers treat it as cloudy (see eominer.fusion.cloud).
    """
    if s2.ndim != 3 or s2.shape[0] != len(S2_FUSION_BANDS):
        raise FeatureError(
            f"S2 patch must be ({len(S2_FUSION_BANDS)} bands, rows, cols) in the order "
            f"{list(S2_FUSION_BANDS)}, got shape {s2.shape}"
        )
    valid = np.all(s2 > 0, axis=0)
    x = np.where(valid, s2, np.nan).astype(np.float64)
    out = [v for b in range(x.shape[0]) for v in _mean_std(x[b])]
    ndvi = _nd(x[_I["B08"]], x[_I["B04"]])
    ndwi = _nd(x[_I["B03"]], x[_I["B08"]])
    ndbi = _nd(x[_I["B11"]], x[_I["B08"]])
    for ix in (ndvi, ndwi, ndbi):
        out += _mean_std(ix)
    return np.asarray(out, dtype=np.float32)


def s1_descriptors(s1_db: np.ndarray) -> np.ndarray:
    """(2, rows, cols) VV/VH backscatter in dB (NaN = no data) -> 10 statistics in dB/10."""
    if s1_db.ndim != 3 or s1_db.shape[0] != 2:
        raise FeatureError(f"S1 patch must be (2 bands VV VH, rows, cols), got {s1_db.shape}")
    x = s1_db.astype(np.float64) / 10.0
    out: list[float] = []
    for b in range(2):
        v = x[b][np.isfinite(x[b])]
        if v.size == 0:
            out += [np.nan] * 4
            continue
        p10, p90 = np.percentile(v, [10, 90])
        out += [float(v.mean()), float(v.std()), float(p10), float(p90)]
    out += _mean_std(x[0] - x[1])
    return np.asarray(out, dtype=np.float32)


def patch_descriptors(s2: np.ndarray, s1_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if s2.shape[1:] != s1_db.shape[1:]:
        raise GridMismatchError(
            f"S2 patch is {s2.shape[1]}x{s2.shape[2]} px but S1 patch is "
            f"{s1_db.shape[1]}x{s1_db.shape[2]} px: resample S1 onto the S2 grid first "
            "(eominer fusion pair)"
        )
    return s2_descriptors(s2), s1_descriptors(s1_db)


def fuse(
    x_s2: np.ndarray, x_s1: np.ndarray, weights: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """Weighted concatenation of (n, d_s2) and (n, d_s1) blocks -> (n, d_s2 + d_s1)."""
    x_s2, x_s1 = np.atleast_2d(x_s2), np.atleast_2d(x_s1)
    if x_s2.shape[0] != x_s1.shape[0]:
        raise FeatureError(
            f"cannot fuse {x_s2.shape[0]} S2 rows with {x_s1.shape[0]} S1 rows: "
            "every S2 patch needs its co-located S1 patch"
        )
    w2, w1 = weights
    if w2 < 0 or w1 < 0 or w2 + w1 == 0:
        raise FeatureError(f"fusion weights must be >= 0 and not both 0, got {weights}")
    return np.hstack([
        x_s2 * np.float32(w2 / np.sqrt(x_s2.shape[1])),
        x_s1 * np.float32(w1 / np.sqrt(x_s1.shape[1])),
    ]).astype(np.float32)


def fused_names(s2_names: Sequence[str], s1_names: Sequence[str]) -> list[str]:
    return [*s2_names, *s1_names]


def dataset_descriptors(patches) -> tuple[np.ndarray, np.ndarray]:
    """(n, 30) S2 and (n, 10) S1 descriptors of PairedPatch objects."""
    pairs = [patch_descriptors(p.s2, p.s1) for p in patches]
    return (np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs]))
