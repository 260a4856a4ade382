"""Domain values: small frozen dataclasses that check themselves."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class BandSource:
    """Where one band of a product is read from: a file (GDAL path) and a band index."""

    path: str
    index: int = 1


@dataclass(frozen=True)
class S2Metadata:
    """The facts of one MTD_MSIL*.xml that ingest needs and `products` stores (read by
    eominer.io.s2_metadata)."""

    path: str
    product_uri: str | None
    processing_level: str  # "L1C" or "L2A"
    product_type: str | None  # "S2MSI1C", "S2MSI2A"
    processing_baseline: str | None  # "05.09"
    platform: str | None  # "S2A", "S2B", "S2C"
    relative_orbit: int | None
    orbit_direction: str | None  # "ASCENDING" / "DESCENDING"
    cloud_cover: float | None  # Cloud_Coverage_Assessment, percent
    quantification: float  # DN per unit reflectance (10000)
    offsets: Mapping[str, float] = field(default_factory=dict)  # band -> add-offset (DN)
    tile_id: str | None = None  # MGRS, e.g. "34UDD"
    sun_zenith: float | None = None  # mean over the tile, degrees (MTD_TL.xml)
    sun_azimuth: float | None = None

    def __post_init__(self) -> None:
        if self.quantification <= 0:
            raise ValueError(f"{self.path}: quantification value must be positive, got "
                             f"{self.quantification}")

    def offset(self, band: str) -> float:
        """The add-offset of `band` in DN (0 for products before baseline 04.00)."""
        return float(self.offsets.get(band, 0.0))


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
