"""The descriptor registry: names -> builders of configured descriptors.

A `Descriptor` is a pure function over a block of one product's bands
(`compute(stack, windows) -> (n, d) float32`) plus what identifies its output:
name, version and parameters (input bands included). The feature database keys a
feature set on exactly these, so changed parameters never mix with old rows; bump
`version` whenever a descriptor's output changes for the same parameters.

`stack` is (bands, rows + 2*halo, cols + 2*halo) float32 in physical units
(S2: reflectance, S1: backscatter dB), NaN where there is no data; `windows` are
(n, 4) `[y_off, x_off, height, width]` relative to the block's interior (without halo).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eominer.errors import FeatureError

# name -> "module:builder"; builders take (product_bands, **params) -> Descriptor.
BUILDERS: dict[str, str] = {
    "spectral": "eominer.features.spectral:build",
    "gabor": "eominer.features.gabor:build",
    "wld": "eominer.features.wld:build",
    "sar": "eominer.features.sar:build",
    "encoder": "eominer.features.encoder:build",
    # the self-supervised (VICReg) encoder: ahead of the autoencoder out of fold
    # (docs/learning.md), the default of `eominer encoder train`
    "ssl": "eominer.features.ssl:build",
    # random convolutional features; the filter bank is sampled from the archive by extract
    "mosaiks": "eominer.features.mosaiks:build",
    # the statistics of the fusion and evaluation paths (never extracted by default)
    "s2stats": "eominer.features.s2stats:build",
    "s1stats": "eominer.features.s1stats:build",
    "bandstats": "eominer.features.bandstats:build",
}
# the learned encoders are extracted by default only where a model of theirs is trained
DEFAULT_FEATURES: tuple[str, ...] = ("spectral", "gabor", "wld", "sar", "encoder", "ssl")
SENSORS: dict[str, str] = {
    "spectral": "S2", "gabor": "S2", "wld": "S2", "sar": "S1", "encoder": "S2", "ssl": "S2",
    "mosaiks": "S2", "s2stats": "S2", "s1stats": "S1", "bandstats": "S2",
}


@dataclass(frozen=True)
class Descriptor:
    name: str
    version: int
    sensor: str
    params: dict[str, Any]
    bands: tuple[str, ...]  # input bands read from the product, in stack order
    halo: int
    columns: tuple[str, ...]
    fn: Callable[..., np.ndarray] = field(repr=False, compare=False)
    # arguments of `fn` that are not part of the identity (e.g. a model's file path)
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def dims(self) -> int:
        return len(self.columns)

    def compute(self, stack: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """(n, dims) float32 features; never NaN (see eominer/features/reduce.py)."""
        if stack.ndim != 3 or stack.shape[0] != len(self.bands):
            raise FeatureError(
                f"{self.name} expects a ({len(self.bands)}, rows, cols) stack of bands "
                f"{', '.join(self.bands)}; got shape {stack.shape}"
            )
        windows = np.asarray(windows, dtype=np.int64).reshape(-1, 4)
        out = np.asarray(self.fn(stack, windows, **self.params, **self.extra), dtype=np.float32)
        if out.shape != (len(windows), self.dims):
            raise FeatureError(f"{self.name} returned {out.shape}, expected "
                               f"({len(windows)}, {self.dims})")
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def available() -> list[str]:
    return list(BUILDERS)


def parse_feature_names(text: str | Sequence[str] | None) -> list[str]:
    """'spectral,gabor' -> ['spectral', 'gabor']; unknown names raise FeatureError."""
    if text is None:
        return list(DEFAULT_FEATURES)
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in BUILDERS]
    if unknown or not names:
        raise FeatureError(
            f"unknown feature set {', '.join(map(repr, unknown)) or '(none given)'}: "
            f"expected one or more of {', '.join(BUILDERS)}"
        )
    return list(dict.fromkeys(names))


def build(name: str, product_bands: Sequence[str], **params: Any) -> Descriptor:
    """The descriptor `name` configured for a product with these bands."""
    if name not in BUILDERS:
        parse_feature_names([name])
    module, attr = BUILDERS[name].split(":")
    return getattr(importlib.import_module(module), attr)(list(product_bands), **params)


def require_bands(name: str, product_bands: Sequence[str], needed: Sequence[str]) -> None:
    missing = [b for b in needed if b not in product_bands]
    if missing:
        raise FeatureError(
            f"descriptor {name} needs bands {', '.join(needed)}; the product has "
            f"{', '.join(product_bands)} (missing {', '.join(missing)})"
        )


def column(*parts: object) -> str:
    """A SQL-safe column name from parts: column('B8A', 'mean') -> 'b8a_mean'."""
    return "_".join(str(p).lower() for p in parts)
