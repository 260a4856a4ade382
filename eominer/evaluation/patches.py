"""Labelled patches for the learning-curve harness, and their features.

Features come from the feature registry (eominer.features), descriptor 'bandstats': per
band the mean and std over the patch, and the mean/std of NDVI, NDWI, NDBI; for a pair of
dates (OSCD) also the difference of the band means, the mean absolute per-pixel band
difference ('bandstats' with `stats=["mean"]` on |date 2 - date 1|) and the difference of
the index means. The harness's own column names are kept (`single_feature_names`,
`pair_feature_names`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eominer.features import build
from eominer.features.windows import grid_windows
from eominer.sensors import S2_BAND_ORDER

INDICES: tuple[str, ...] = ("ndvi", "ndwi", "ndbi")


@dataclass(frozen=True)
class LabelledPatches:
    """A dataset for simulation: features X (n, d) float32, y in {-1, +1}, group per row."""

    name: str
    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    feature_names: tuple[str, ...]


def block_view(a: np.ndarray, size: int) -> np.ndarray:
    """(bands, H, W) -> (n_patches, bands, size*size) for whole size x size patches,
    in row-major patch order (the order of the patch grid). For labels (shares of
    a class per patch); features go through the registry."""
    b, h, w = a.shape
    nr, nc = h // size, w // size
    v = a[:, : nr * size, : nc * size].reshape(b, nr, size, nc, size)
    return v.transpose(1, 3, 0, 2, 4).reshape(nr * nc, b, size * size)


def label_share(mask: np.ndarray, size: int) -> np.ndarray:
    """(n_patches,) share of each size x size patch where the 2-D mask is set."""
    return block_view(mask[None].astype(np.float32), size).mean(2)[:, 0]


def single_stats(a: np.ndarray, size: int, bands: Sequence[str] = S2_BAND_ORDER) -> np.ndarray:
    """'bandstats' of every whole size x size patch of one date, row-major:
    (n, 2 * bands + 2 * len(INDICES)), columns in `single_feature_names` order."""
    d = build("bandstats", bands, indices=INDICES, stats=("mean", "std"))
    return d.compute(a, grid_windows(a.shape[1:], size))


def pair_stats(a1: np.ndarray, a2: np.ndarray, size: int, bands: Sequence[str] = S2_BAND_ORDER,
               ) -> np.ndarray:
    """Change features of two co-registered dates, per patch: band mean/std of both
    dates, difference of the band means, mean absolute per-pixel difference per band,
    index mean/std of both dates and the difference of the index means.
    (n_patches, 6 * bands + 15); names in `pair_feature_names`."""
    nb = a1.shape[0]
    f1, f2 = single_stats(a1, size, bands), single_stats(a2, size, bands)
    s1, s2 = f1[:, : 2 * nb], f2[:, : 2 * nb]
    i1, i2 = f1[:, 2 * nb:], f2[:, 2 * nb:]
    diff = np.abs(a2.astype(np.float32) - a1.astype(np.float32))
    absdiff = build("bandstats", bands, indices=(), stats=("mean",)).compute(
        diff, grid_windows(diff.shape[1:], size))
    return np.concatenate([s1, s2, s2[:, :nb] - s1[:, :nb], absdiff, i1, i2,
                           i2[:, 0::2] - i1[:, 0::2]], axis=1)


def single_feature_names(bands: Sequence[str] = S2_BAND_ORDER) -> list[str]:
    """Names of the `single_stats` columns of one date."""
    return ([f"mean_{b}" for b in bands] + [f"std_{b}" for b in bands]
            + [f"{s}_{i}" for i in INDICES for s in ("mean", "std")])


def pair_feature_names(bands: Sequence[str] = S2_BAND_ORDER) -> list[str]:
    """Names of the `pair_stats` columns (valid SQL identifiers)."""
    idx = [f"{s}_{i}" for i in INDICES for s in ("mean", "std")]
    return ([f"{s}_{b.lower()}" for s in ("mean1", "std1") for b in bands]
            + [f"{s}_{b.lower()}" for s in ("mean2", "std2") for b in bands]
            + [f"dmean_{b.lower()}" for b in bands] + [f"absdiff_{b.lower()}" for b in bands]
            + [f"{n}1" for n in idx] + [f"{n}2" for n in idx]
            + [f"dmean_{i}" for i in INDICES])
