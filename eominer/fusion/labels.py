"""The BigEarthNet land-cover nomenclature: 19 classes built from CORINE Land Cover level 3.

Source: Sumbul et al., "BigEarthNet-MM: A Large Scale Multi-Modal Multi-Label Benchmark
Archive for Remote Sensing Image Classification and Retrieval", IEEE GRSM 2021, table 1
(the 19-class nomenclature and which of the 43 CORINE level-3 classes of BigEarthNet v1
it merges). BigEarthNet v2 (`metadata.parquet`) already uses the 19 names; v1 folders
(`*_labels_metadata.json`) carry the 43 CORINE names and are mapped here. CORINE classes
with no 19-class counterpart (roads, ports, bare rock...) are dropped, as the benchmark does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from eominer.errors import FeatureError

BEN19: tuple[str, ...] = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)

# CORINE level-3 name (as written in BigEarthNet v1 JSON) -> 19-class name, or None (dropped).
CORINE43_TO_19: dict[str, str | None] = {
    "Continuous urban fabric": "Urban fabric",
    "Discontinuous urban fabric": "Urban fabric",
    "Industrial or commercial units": "Industrial or commercial units",
    "Road and rail networks and associated land": None,
    "Port areas": None,
    "Airports": None,
    "Mineral extraction sites": None,
    "Dump sites": None,
    "Construction sites": None,
    "Green urban areas": None,
    "Sport and leisure facilities": None,
    "Non-irrigated arable land": "Arable land",
    "Permanently irrigated land": "Arable land",
    "Rice fields": "Arable land",
    "Vineyards": "Permanent crops",
    "Fruit trees and berry plantations": "Permanent crops",
    "Olive groves": "Permanent crops",
    "Annual crops associated with permanent crops": "Permanent crops",
    "Pastures": "Pastures",
    "Complex cultivation patterns": "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation":
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas": "Agro-forestry areas",
    "Broad-leaved forest": "Broad-leaved forest",
    "Coniferous forest": "Coniferous forest",
    "Mixed forest": "Mixed forest",
    "Natural grassland": "Natural grassland and sparsely vegetated areas",
    "Sparsely vegetated areas": "Natural grassland and sparsely vegetated areas",
    "Moors and heathland": "Moors, heathland and sclerophyllous vegetation",
    "Sclerophyllous vegetation": "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland/shrub": "Transitional woodland, shrub",
    "Beaches, dunes, sands": "Beaches, dunes, sands",
    "Bare rock": None,
    "Burnt areas": None,
    "Glaciers and perpetual snow": None,
    "Inland marshes": "Inland wetlands",
    "Peatbogs": "Inland wetlands",
    "Salt marshes": "Coastal wetlands",
    "Salines": "Coastal wetlands",
    "Intertidal flats": None,
    "Water courses": "Inland waters",
    "Water bodies": "Inland waters",
    "Coastal lagoons": "Marine waters",
    "Estuaries": "Marine waters",
    "Sea and ocean": "Marine waters",
}


# Short snake_case keys for annotations (the taxonomy's naming; most match its labels).
_KEYS: dict[str, str] = {
    "Industrial or commercial units": "industrial_commercial_units",
    "Land principally occupied by agriculture, with significant areas of natural vegetation":
        "agriculture_with_natural_vegetation",
    "Natural grassland and sparsely vegetated areas": "natural_grassland_sparse_vegetation",
    "Moors, heathland and sclerophyllous vegetation": "moors_heathland_sclerophyllous",
}


def label_key(name: str) -> str:
    """'Arable land' -> 'arable_land': the label_name an annotation is stored under."""
    import re

    return _KEYS.get(name) or re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def to_ben19(names: Iterable[str], source: str = "") -> tuple[str, ...]:
    """Map CORINE-43 or 19-class names to sorted, unique 19-class names.

    An unknown name is an error (a typo or another nomenclature), never silently dropped.
    """
    out: set[str] = set()
    for name in names:
        if name in BEN19:
            out.add(name)
        elif name in CORINE43_TO_19:
            mapped = CORINE43_TO_19[name]
            if mapped is not None:
                out.add(mapped)
        else:
            where = f" in {source}" if source else ""
            raise FeatureError(
                f"unknown land-cover label {name!r}{where}: expected one of the 19 BigEarthNet "
                "classes or the 43 CORINE level-3 names of BigEarthNet v1 "
                "(see eominer/fusion/labels.py)"
            )
    return tuple(sorted(out, key=BEN19.index))


@dataclass(frozen=True)
class Vocabulary:
    """The ordered label names a classifier predicts (its output columns)."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.names:
            raise FeatureError("a label vocabulary needs at least one label")
        if len(set(self.names)) != len(self.names):
            raise FeatureError(f"label vocabulary has duplicates: {list(self.names)}")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def present(cls, label_sets: Sequence[Sequence[str]]) -> Vocabulary:
        """The labels that occur in the data, in BigEarthNet order."""
        seen = {n for labels in label_sets for n in labels}
        return cls(tuple(n for n in BEN19 if n in seen) + tuple(sorted(seen - set(BEN19))))

    def encode(self, label_sets: Sequence[Sequence[str]]) -> np.ndarray:
        """Multi-hot matrix (n, len(self)) uint8; a label outside the vocabulary is an error."""
        index = {n: i for i, n in enumerate(self.names)}
        Y = np.zeros((len(label_sets), len(self.names)), dtype=np.uint8)
        for r, labels in enumerate(label_sets):
            for n in labels:
                if n not in index:
                    raise FeatureError(
                        f"label {n!r} is not in the model's vocabulary ({len(self)} labels: "
                        f"{', '.join(self.names)}); retrain with this label or drop it"
                    )
                Y[r, index[n]] = 1
        return Y

    def require_same(self, other: Vocabulary, what: str = "model") -> None:
        """Refuse to mix two vocabularies: columns would mean different classes."""
        if other.names == self.names:
            return
        missing = [n for n in other.names if n not in self.names]
        extra = [n for n in self.names if n not in other.names]
        detail = (f"not trained with: {missing}" if missing else "") + (
            f"{'; ' if missing else ''}trained with but not requested: {extra}" if extra else "")
        if not missing and not extra:
            detail = "same labels in another order"
        raise FeatureError(
            f"label vocabulary mismatch with the {what}: {detail}; classify with the "
            "vocabulary the model was trained with, or retrain it (eominer fusion train)"
        )
