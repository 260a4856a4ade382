"""Onera Satellite Change Detection (OSCD) folders.

ROOT/images/<city>/imgs_1 and imgs_2 are the two dates (per-band GeoTIFFs, either
Sentinel-2 naming), ROOT/labels/<city>/cm/<city>-cm.tif the change labels (1 = no
change, 2 = change; 0 or 1 is also read as 'no change' / 'change' when the file has
no 2), pixel-aligned with the 10 m bands of imgs_1.

Two views: `load_city` gives the aligned pair the change methods see (eominer.change),
`oscd` the labelled patches of the learning curves: a patch is "new construction" when
more than `OSCD_CHANGE_SHARE` (5%) of its pixels are changed. The learning-curve
functions take the data root laid out like the shared data (ROOT/oscd/...).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eominer.errors import GridMismatchError, ProductReadError, SessionError
from eominer.evaluation.bandfolder import read_bands
from eominer.evaluation.patches import (
    LabelledPatches,
    label_share,
    pair_feature_names,
    pair_stats,
)

if TYPE_CHECKING:
    from eominer.change.align import AlignedPair

OSCD_CITIES: tuple[str, ...] = (
    "abudhabi", "aguasclaras", "bercy", "bordeaux", "hongkong", "nantes", "paris", "rennes",
    "saclay_e",
)
OSCD_CHANGE_SHARE = 0.05


def list_cities(root: str | Path) -> list[str]:
    """Cities with a change label under an OSCD folder."""
    labels = Path(root) / "labels"
    if not labels.is_dir():
        raise ProductReadError(
            f"{labels} is missing: --data must be an OSCD-shaped folder with images/ and labels/"
        )
    return sorted(d.name for d in labels.iterdir()
                  if (d / "cm" / f"{d.name}-cm.tif").exists())


def read_labels(root: str | Path, city: str) -> np.ndarray:
    """Boolean change mask of a city (True = change)."""
    import rasterio

    path = Path(root) / "labels" / city / "cm" / f"{city}-cm.tif"
    if not path.exists():
        raise ProductReadError(f"labels of {city} missing: expected {path}")
    with warnings.catch_warnings():  # OSCD labels carry no georeferencing: they align by pixel
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            lab = ds.read(1)
    return lab == 2 if (lab == 2).any() or lab.max() > 1 else lab == 1


def load_city(root: str | Path, city: str) -> tuple[AlignedPair, np.ndarray]:
    """(AlignedPair, labels) of one city."""
    from eominer.change.align import align_pair, scene_from_path

    base = Path(root) / "images" / city
    for d in ("imgs_1", "imgs_2"):
        if not (base / d).is_dir():
            raise ProductReadError(f"{city}: {base / d} is missing (expected imgs_1 and imgs_2)")
    # OSCD pairs are 9-27 months apart: the caution is expected, so it is not passed on
    pair = align_pair(scene_from_path(base / "imgs_1"), scene_from_path(base / "imgs_2"),
                      notes=[])
    truth = read_labels(root, city)
    if truth.shape != pair.valid.shape:
        raise GridMismatchError(
            f"labels of {city} are {truth.shape[1]} x {truth.shape[0]} px but its imgs_1 10 m "
            f"grid is {pair.valid.shape[1]} x {pair.valid.shape[0]}: labels must align with "
            "the 10 m bands of imgs_1"
        )
    return pair, truth


# ---- labelled patches for the learning curves (data root: ROOT/oscd) ----------------

def oscd_cities(root: Path) -> list[str]:
    """Cities with a change-map folder under ROOT/oscd/labels ([] when there is none)."""
    labels = Path(root) / "oscd" / "labels"
    return sorted(p.name for p in labels.iterdir() if (p / "cm").is_dir()) \
        if labels.is_dir() else []


def oscd_city(root: Path, city: str, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, 93) and change share (n,) of one OSCD city's patches."""
    base = Path(root) / "oscd"
    changed = read_labels(base, city)
    a1 = read_bands(base / "images" / city / "imgs_1", changed.shape)
    a2 = read_bands(base / "images" / city / "imgs_2", changed.shape)
    return pair_stats(a1, a2, size), label_share(changed, size)


def oscd(root: Path, size: int = 16, cities: list[str] | None = None) -> LabelledPatches:
    """All OSCD cities as one pool: positives are patches with > 5% changed pixels."""
    cities = cities or oscd_cities(root)
    if not cities:
        raise SessionError(f"no OSCD data under {Path(root) / 'oscd'} (labels/<city>/cm)")
    xs, ys, gs = [], [], []
    for i, c in enumerate(cities):
        X, share = oscd_city(root, c, size)
        xs.append(X)
        ys.append(np.where(share > OSCD_CHANGE_SHARE, 1, -1).astype(np.int8))
        gs.append(np.full(len(X), i, np.int32))
    names = tuple(pair_feature_names())
    return LabelledPatches("oscd_new_construction", np.concatenate(xs), np.concatenate(ys),
                           np.concatenate(gs), names)
