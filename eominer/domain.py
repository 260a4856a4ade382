"""Domain values: small frozen dataclasses that check themselves."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eominer.io.s2_metadata import S2Metadata


@dataclass(frozen=True)
class BandSource:
    """Where one band of a product is read from: a file (GDAL path) and a band index."""

    path: str
    index: int = 1


@dataclass(frozen=True)
class SourceProduct:
    """A product found on disk, before ingest: identity, metadata and band files."""

    product_id: str
    sensor: str  # "S2" or "S1"
    source_path: str
    bands: dict[str, BandSource]
    platform: str | None = None
    processing_level: str | None = None
    tile_id: str | None = None
    acquired: dt.datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # Sentinel-2 MTD_MSIL*.xml facts (offsets applied at ingest); None without one
    s2_metadata: S2Metadata | None = None
    # Sentinel-2 quality masks found with the bands (eominer.io.mask_files): kind ("SCL",
    # "MSK_CLASSI", "MSK_CLOUDS") -> GDAL path; empty when the product has none
    cloud_masks: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sensor not in ("S1", "S2"):
            raise ValueError(f"sensor must be S1 or S2, got {self.sensor!r}")
        if not self.bands:
            raise ValueError(f"product {self.product_id} has no bands")

    @property
    def name(self) -> str:
        return Path(self.source_path).name
