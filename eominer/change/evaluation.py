"""Evaluation on OSCD-shaped folders (no database involved).

ROOT/images/<city>/imgs_1 and imgs_2 are the two dates (per-band GeoTIFFs, either
Sentinel-2 naming), ROOT/labels/<city>/cm/<city>-cm.tif the change labels (1 = no
change, 2 = change; 0 or 1 is also read as 'no change' / 'change' when the file has
no 2), pixel-aligned with the 10 m bands of imgs_1. Every method sees the same aligned
pair and mask; 'overall' pools the pixels of all cities (confusion counts summed; the
PR curve over all pixels together).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eominer.change.maps import METHODS, change_map, check_method
from eominer.change.metrics import ChangeScores, auprc, confusion, from_confusion, score_maps
from eominer.errors import GridMismatchError, ProductReadError

OSCD_CITIES: tuple[str, ...] = (
    "abudhabi", "aguasclaras", "bercy", "bordeaux", "hongkong", "nantes", "paris", "rennes",
    "saclay_e",
)


@dataclass(frozen=True)
class CityResult:
    city: str
    method: str
    scores: ChangeScores
    threshold: float
    seconds: float
    masked_fraction: float


def list_cities(root: str | Path) -> list[str]:
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


def load_city(root: str | Path, city: str):
    """(AlignedPair, labels) of one city."""
    from eominer.change.align import PairWarning, align_pair, scene_from_path

    base = Path(root) / "images" / city
    for d in ("imgs_1", "imgs_2"):
        if not (base / d).is_dir():
            raise ProductReadError(f"{city}: {base / d} is missing (expected imgs_1 and imgs_2)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PairWarning)  # OSCD pairs are 9-27 months apart
        pair = align_pair(scene_from_path(base / "imgs_1"), scene_from_path(base / "imgs_2"))
    truth = read_labels(root, city)
    if truth.shape != pair.valid.shape:
        raise GridMismatchError(
            f"labels of {city} are {truth.shape[1]} x {truth.shape[0]} px but its imgs_1 10 m "
            f"grid is {pair.valid.shape[1]} x {pair.valid.shape[0]}: labels must align with "
            "the 10 m bands of imgs_1"
        )
    return pair, truth


def evaluate(
    root: str | Path, cities: Sequence[str] | None = None,
    methods: Sequence[str] = METHODS, seed: int = 0, threads: int = 1,
    progress: Callable[[CityResult], None] | None = None,
) -> tuple[list[CityResult], dict[str, ChangeScores]]:
    """Per-city results and the pooled 'overall' scores per method."""
    for m in methods:
        check_method(m)
    known = list_cities(root)
    chosen = list(cities) if cities else known
    missing = [c for c in chosen if c not in known]
    if missing:
        raise ProductReadError(
            f"no labels for {', '.join(missing)} under {root}: known cities {', '.join(known)}"
        )
    results: list[CityResult] = []
    pooled = {m: np.zeros(4, dtype=np.int64) for m in methods}
    probs: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    truths: list[np.ndarray] = []
    for city in chosen:
        pair, truth = load_city(root, city)
        truths.append(truth.ravel())
        for m in methods:
            t0 = time.perf_counter()
            cmap = change_map(pair.x1, pair.x2, pair.valid, m, seed, threads)
            seconds = time.perf_counter() - t0
            s = score_maps(cmap.probability, cmap.binary, truth)
            pooled[m] += confusion(cmap.binary == 1, truth)
            probs[m].append(np.nan_to_num(cmap.probability, nan=0.0).ravel())
            r = CityResult(city, m, s, cmap.threshold, seconds, float(1 - pair.valid.mean()))
            results.append(r)
            if progress:
                progress(r)
    all_truth = np.concatenate(truths)
    overall = {
        m: from_confusion(*(int(v) for v in pooled[m]), auprc(np.concatenate(probs[m]), all_truth))
        for m in methods
    }
    return results, overall
