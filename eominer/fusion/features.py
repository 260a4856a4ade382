"""Per-sensor patch descriptors and feature-level fusion (weighted concatenation).

The descriptors are small, fixed statistics, registered in eominer.features like every
other descriptor (so a fused feature set's identity is their names + parameters): the S2
vector is 's2stats', the mean and standard deviation of each of the 12 L2A bands
(reflectance) and of three indices (NDVI, NDWI, NDBI); the S1 vector is 's1stats', the
mean, standard deviation, 10th and 90th percentile of VV and VH and the mean/std of the
VV-VH difference, in dB/10 (log10 power) so both sensors' values are of order one. The
store's own descriptor sets ('spectral', 'sar') can be fused instead with
`fuse_feature_sets`.

Fused rows are [w_s2 * f_s2 / sqrt(d_s2), w_s1 * f_s1 / sqrt(d_s1)]: dividing by the
block's sqrt(dimension) gives each sensor the same share of a Euclidean distance whatever
its number of features (S2 would otherwise outweigh S1 30:10), and the weights move that
share. Models that standardise each column (the logistic models here) are unaffected by
the weights; distance- and kernel-based models (RBF SVM, similarity search) are not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from eominer.errors import FeatureError, GridMismatchError
from eominer.features.registry import Descriptor, build
from eominer.features.windows import tile_patches
from eominer.fusion.bands import S1_FUSION_BANDS, S2_FUSION_BANDS

if TYPE_CHECKING:
    from typing import Protocol

    class PairedArrays(Protocol):
        """A patch seen by both sensors (evaluation.bigearthnet.PairedPatch)."""

        @property
        def s2(self) -> np.ndarray: ...

        @property
        def s1(self) -> np.ndarray: ...


def s2_descriptor() -> Descriptor:
    """The registered 's2stats' descriptor fusion computes on the 12 S2 bands."""
    return build("s2stats", S2_FUSION_BANDS, indices=("ndvi", "ndwi", "ndbi"))


def s1_descriptor() -> Descriptor:
    """The registered 's1stats' descriptor fusion computes on VV, VH (dB/10)."""
    return build("s1stats", S1_FUSION_BANDS, percentiles=(10, 90), divide_by=10.0)


S2_FEATURE_NAMES: tuple[str, ...] = tuple(f"s2_{c}" for c in s2_descriptor().columns)
S1_FEATURE_NAMES: tuple[str, ...] = tuple(f"s1_{c}" for c in s1_descriptor().columns)


def _batch(x: np.ndarray, n_bands: int, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != n_bands:
        raise FeatureError(f"{what}, got shape {x.shape}")
    return x


def s2_descriptors(s2: np.ndarray) -> np.ndarray:
    """(12, rows, cols) reflectance, or a batch (n, 12, rows, cols) -> (30,) or (n, 30)
    's2stats' over the valid pixels (0 = no data). An all-invalid patch gives zeros (the
    registry never returns NaN): check `cloud.usable` first, as fusion does."""
    x = _batch(s2, len(S2_FUSION_BANDS),
               f"S2 patch must be ({len(S2_FUSION_BANDS)} bands, rows, cols) in the order "
               f"{list(S2_FUSION_BANDS)}")
    out = s2_descriptor().compute(*tile_patches(x))
    return out[0] if np.ndim(s2) == 3 else out


def s1_descriptors(s1_db: np.ndarray) -> np.ndarray:
    """(2, rows, cols) VV/VH backscatter in dB (NaN = no data), or a batch
    (n, 2, rows, cols) -> (10,) or (n, 10) 's1stats' in dB/10."""
    x = _batch(s1_db, 2, "S1 patch must be (2 bands VV VH, rows, cols)")
    out = s1_descriptor().compute(*tile_patches(x))
    return out[0] if np.ndim(s1_db) == 3 else out


def has_valid_pixels(s2: np.ndarray, s1_db: np.ndarray) -> np.ndarray:
    """(n,) bool: the S2 patch has a valid pixel (every band > 0) and both S1 bands have a
    finite one, i.e. the descriptors are not the registry's zeros for 'no data'."""
    with np.errstate(invalid="ignore"):
        ok2 = np.all(np.isfinite(s2) & (s2 > 0), axis=1).any(axis=(1, 2))
    ok1 = np.isfinite(s1_db).any(axis=(2, 3)).all(axis=1)
    return ok2 & ok1


def patch_descriptors(s2: np.ndarray, s1_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S2 and S1 descriptors of one co-located patch, or of a batch of them."""
    if s2.shape[-2:] != s1_db.shape[-2:]:
        raise GridMismatchError(
            f"S2 patch is {s2.shape[-2]}x{s2.shape[-1]} px but S1 patch is "
            f"{s1_db.shape[-2]}x{s1_db.shape[-1]} px: resample S1 onto the S2 grid first "
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


def dataset_descriptors(patches: Iterable[PairedArrays]) -> tuple[np.ndarray, np.ndarray]:
    """(n, 30) S2 and (n, 10) S1 descriptors of paired patches (objects with `.s2` and
    `.s1` arrays of one size), computed as one batch."""
    patches = list(patches)
    return patch_descriptors(np.stack([p.s2 for p in patches]),
                             np.stack([p.s1 for p in patches]))
