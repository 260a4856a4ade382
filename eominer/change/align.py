"""Two dates of one place on one grid: load, check, co-register, mask.

A `Scene` is one date: its bands on its own 10 m grid (from an ingested product's ARD COG,
or read straight from a product folder/file). `align_pair` checks that the two scenes can
be compared (same sensor, overlapping footprints; dates far apart are only warned about),
reprojects the second onto the grid of the first when the grids differ (OSCD's second
dates are sometimes a few pixels smaller), and returns the common valid area: pixels with
data in both dates and no cloud in either (`cloud_mask`).

Sentinel-2 pairs give top-of-atmosphere reflectance of `CHANGE_BANDS`; a date that is
entirely cloud is refused, naming it. Sentinel-1 pairs give linear power of VV and VH
(dB or linear input, told apart by `change.sar.unit_of`); both products need VV and VH,
and when both name their relative orbit and pass (SAFE products, ingested products),
those must agree: another orbit sees the ground from another incidence angle and side,
which shows as change everywhere. A pair of one S1 and one S2 product is refused: give
both pairs to `eominer change ... --fuse` instead.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eominer import sensors as S
from eominer.errors import GridMismatchError, PairingError, ProductReadError
from eominer.store.records import Product

if TYPE_CHECKING:
    from eominer.store import Store

# Bands the change methods compare: the 10 m and 20 m land bands. B01 (aerosol), B09
# (water vapour) and B10 (cirrus) see the atmosphere, not the ground; B10 feeds the cloud test.
CHANGE_BANDS: tuple[str, ...] = (
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
)
# Cloud test (documented in docs/change.md): a pixel is cloud when it is bright and flat
# in the visible (B02 reflectance > 0.25 and B02 >= 0.8 * B04: clouds are white, bright
# sand and soil are redder than blue) AND bright in the 60 m aerosol band (B01 > 0.25: a
# cloud fills the 60 m cell, a bright new roof does not, so roofs are not masked), or when
# the cirrus band B10 sees high ice clouds (B10 > 0.012, the threshold Sen2Cor uses).
CLOUD_BLUE_MIN = 0.25
CLOUD_COASTAL_MIN = 0.25
CLOUD_BLUE_RED_RATIO = 0.8
CIRRUS_MIN = 0.012
# Pairs further apart than this are flagged: seasons and land cover drift.
MAX_DAYS_APART = 730.0


class PairWarning(UserWarning):
    """A pair that can be compared but deserves a look (dates far apart)."""


@dataclass(frozen=True, eq=False)
class Scene:
    """One date: bands (count, rows, cols) as stored (S2: uint16 DN, 0 = nodata)."""

    data: np.ndarray
    band_names: tuple[str, ...]
    crs_wkt: str
    transform: tuple[float, ...]
    sensor: str
    acquired: dt.datetime | None
    source: str
    product_id: str | None = None
    relative_orbit: int | None = None  # Sentinel-1: the track, and the pass direction
    orbit_direction: str | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[1]), int(self.data.shape[2])

    def band(self, name: str) -> np.ndarray:
        if name not in self.band_names:
            raise ProductReadError(
                f"band {name} missing in {self.source}: expected it among "
                f"{', '.join(self.band_names)}; re-ingest the product with all its bands"
            )
        return self.data[self.band_names.index(name)]

    def valid(self) -> np.ndarray:
        if np.issubdtype(self.data.dtype, np.floating):
            return np.isfinite(self.data).all(axis=0)
        return (self.data != 0).all(axis=0)


@dataclass(frozen=True, eq=False)
class AlignedPair:
    """Two dates on the first date's grid: float32 reflectance of `CHANGE_BANDS` (S2) or
    linear power of VV, VH (S1)."""

    x1: np.ndarray
    x2: np.ndarray
    valid: np.ndarray  # data in both dates and cloud-free in both
    nodata: np.ndarray  # no data in one of the dates (outside the common footprint)
    cloud: np.ndarray  # cloud in one of the dates (and data in both)
    first: Scene
    second: Scene
    reprojected: bool
    days_apart: float | None
    overlap_fraction: float

    @property
    def sensor(self) -> str:
        return self.first.sensor

    @property
    def crs_wkt(self) -> str:
        return self.first.crs_wkt

    @property
    def transform(self) -> tuple[float, ...]:
        return self.first.transform


def scene_from_product(product: Product) -> Scene:
    """A scene from an ingested product."""
    from eominer.io.ard import read_ard

    return Scene(
        data=read_ard(product.ard_path), band_names=product.bands, crs_wkt=product.crs,
        transform=product.transform, sensor=product.sensor, acquired=product.acquired,
        source=product.ard_path, product_id=product.product_id,
        relative_orbit=product.relative_orbit, orbit_direction=product.orbit_direction,
    )


def scene_from_path(path: str | Path) -> Scene:
    """A scene read straight from a product on disk (any layout `eominer ingest` reads:
    per-band folders under either Sentinel-2 naming, SAFE, multi-band COG...)."""
    from eominer.io.discover import discover
    from eominer.io.read import band_names, product_grid, read_band

    found = discover(path)
    if len(found) != 1:
        raise PairingError(
            f"{path} holds {len(found)} products: expected one date per argument; "
            "name the product folder itself"
        )
    product = found[0]
    grid = product_grid(product)
    names = band_names(product)
    if product.extra.get("format") == "S1_SAFE":  # calibrated and geocoded on the way
        from eominer.io.s1_safe import read_bands

        data = read_bands(product, grid)
    else:
        data = np.stack([read_band(product.bands[b], grid, product.sensor) for b in names])
    orbit = product.extra.get("relative_orbit")
    return Scene(
        data=data, band_names=tuple(names), crs_wkt=grid.crs_wkt, transform=grid.transform,
        sensor=product.sensor, acquired=product.acquired, source=str(path),
        relative_orbit=int(orbit) if orbit else None,
        orbit_direction=product.extra.get("orbit_direction") or None,
    )


def load_scene(ref: str | Path, store: Store | None = None) -> Scene:
    """`ref` is an ingested product id (looked up in `store`) or a path on disk."""
    if store is not None and isinstance(ref, str) and not Path(ref).exists():
        product = store.product(ref)
        if product is not None:
            return scene_from_product(product)
    if not Path(ref).exists():
        where = f" nor a product id in {store.url}" if store is not None else ""
        raise ProductReadError(
            f"{ref} is neither a file or folder{where}: give a product folder, a COG, "
            "or the id of an ingested product (eominer products)"
        )
    return scene_from_path(ref)


def reflectance(scene: Scene, bands: tuple[str, ...] = CHANGE_BANDS) -> np.ndarray:
    """(len(bands), rows, cols) float32 top-of-atmosphere reflectance."""
    out = np.empty((len(bands), *scene.shape), dtype=np.float32)
    for i, b in enumerate(bands):
        np.multiply(scene.band(b), np.float32(1.0 / S.S2_REFLECTANCE_SCALE), out=out[i],
                    casting="unsafe")
    return out


def cloud_mask(scene: Scene) -> np.ndarray:
    """Cloud (True) by the documented brightness and cirrus test; each part is skipped
    when the product lacks its bands (L2A has no B10: the brightness test remains)."""
    scale = np.float32(1.0 / S.S2_REFLECTANCE_SCALE)
    cloud = np.zeros(scene.shape, dtype=bool)
    if "B02" in scene.band_names and "B04" in scene.band_names:
        blue = scene.band("B02").astype(np.float32) * scale
        red = scene.band("B04").astype(np.float32) * scale
        bright = (blue > CLOUD_BLUE_MIN) & (blue >= CLOUD_BLUE_RED_RATIO * red)
        if "B01" in scene.band_names:
            bright &= scene.band("B01").astype(np.float32) * scale > CLOUD_COASTAL_MIN
        cloud |= bright
    if "B10" in scene.band_names:
        cloud |= scene.band("B10").astype(np.float32) * scale > CIRRUS_MIN
    return cloud


def _bounds(scene: Scene) -> tuple[float, float, float, float]:
    a, _, c, _, e, f = scene.transform[:6]
    rows, cols = scene.shape
    xs, ys = (c, c + a * cols), (f, f + e * rows)
    return min(xs), min(ys), max(xs), max(ys)


def _same_grid(a: Scene, b: Scene) -> bool:
    return same_grid(a.crs_wkt, a.transform, a.shape, b.crs_wkt, b.transform, b.shape)


def same_grid(crs_a: str, transform_a: Sequence[float], shape_a: tuple[int, int],
              crs_b: str, transform_b: Sequence[float], shape_b: tuple[int, int]) -> bool:
    """One pixel grid: the same shape and CRS, and transforms within 1/1000 pixel."""
    from rasterio.crs import CRS

    if tuple(shape_a) != tuple(shape_b) or CRS.from_wkt(crs_a) != CRS.from_wkt(crs_b):
        return False
    tol = abs(transform_a[0]) * 1e-3
    return all(abs(x - y) <= tol for x, y in zip(transform_a[:6], transform_b[:6]))


def overlap_fraction(first: Scene, second: Scene) -> float:
    """Share of the first scene's footprint that the second covers (in the first's CRS)."""
    from rasterio.crs import CRS
    from rasterio.warp import transform_bounds

    b1 = _bounds(first)
    b2 = transform_bounds(CRS.from_wkt(second.crs_wkt), CRS.from_wkt(first.crs_wkt),
                          *_bounds(second))
    w = min(b1[2], b2[2]) - max(b1[0], b2[0])
    h = min(b1[3], b2[3]) - max(b1[1], b2[1])
    area = (b1[2] - b1[0]) * (b1[3] - b1[1])
    return float(max(w, 0.0) * max(h, 0.0) / area) if area > 0 else 0.0


def reproject_onto(scene: Scene, target: Scene) -> Scene:
    """`scene` resampled (bilinear; nodata 0 outside its footprint) onto `target`'s grid."""
    from rasterio.crs import CRS
    from rasterio.transform import Affine
    from rasterio.warp import Resampling, reproject

    out = np.zeros((scene.data.shape[0], *target.shape), dtype=scene.data.dtype)
    floating = np.issubdtype(scene.data.dtype, np.floating)
    nodata = np.nan if floating else 0
    for i in range(scene.data.shape[0]):
        reproject(
            scene.data[i], out[i], src_transform=Affine(*scene.transform[:6]),
            src_crs=CRS.from_wkt(scene.crs_wkt), src_nodata=nodata,
            dst_transform=Affine(*target.transform[:6]), dst_crs=CRS.from_wkt(target.crs_wkt),
            dst_nodata=nodata, resampling=Resampling.bilinear,
        )
    return Scene(out, scene.band_names, target.crs_wkt, target.transform, scene.sensor,
                 scene.acquired, scene.source, scene.product_id)


def days_between(first: Scene, second: Scene) -> float | None:
    if first.acquired is None or second.acquired is None:
        return None
    return abs((second.acquired - first.acquired).total_seconds()) / 86400.0


def _check_s1(first: Scene, second: Scene) -> None:
    from eominer.change.sar import S1_BANDS

    for scene in (first, second):
        missing = [b for b in S1_BANDS if b not in scene.band_names]
        if missing:
            raise PairingError(
                f"{scene.source} has polarisations {', '.join(scene.band_names)}: Sentinel-1 "
                f"change compares {' and '.join(S1_BANDS)} in both dates (missing "
                f"{', '.join(missing)}); pair two dual-polarisation (1SDV) products"
            )
    for what in ("relative_orbit", "orbit_direction"):
        a, b = getattr(first, what), getattr(second, what)
        if a is not None and b is not None and a != b:
            raise PairingError(
                f"{first.source} has {what.replace('_', ' ')} {a} but {second.source} has "
                f"{b}: another orbit sees the ground from another incidence angle and side, "
                "which shows as change everywhere; pair two products of the same relative "
                "orbit and pass"
            )


def _s1_power(scene: Scene) -> Scene:
    """The scene's VV and VH as linear power (from dB or linear), NaN = no data."""
    from eominer.change.sar import S1_BANDS, to_linear

    data = np.stack([to_linear(scene.band(b)) for b in S1_BANDS])
    data[:, ~np.isfinite(data).all(axis=0)] = np.nan
    return replace(scene, data=data, band_names=S1_BANDS)


def align_pair(first: Scene, second: Scene, *, mask_clouds: bool = True,
               notes: list[str] | None = None) -> AlignedPair:
    """Check, co-register and mask a pair; see the module docstring. A caution (dates
    far apart) is appended to `notes` when given, else warned as a PairWarning: callers
    on threads pass a list, since `warnings.catch_warnings` is not thread-safe."""
    if first.sensor != second.sensor:
        raise PairingError(
            f"{first.source} is {first.sensor} but {second.source} is {second.sensor}: "
            "change detection compares two dates of the same sensor; to combine a "
            "Sentinel-1 pair with a Sentinel-2 pair of the same place give both pairs: "
            "eominer change S2_BEFORE S2_AFTER --fuse S1_BEFORE S1_AFTER"
        )
    if first.sensor not in ("S2", "S1"):
        raise PairingError(
            f"{first.source} is {first.sensor}: change detection reads Sentinel-2 "
            "(optical bands) or Sentinel-1 (VV and VH) products"
        )
    if first.sensor == "S1":
        _check_s1(first, second)
        first, second = _s1_power(first), _s1_power(second)
    overlap = overlap_fraction(first, second)
    if overlap <= 0.0:
        raise PairingError(
            f"{first.source} and {second.source} do not overlap: pick two dates of the "
            "same place (same tile or footprint)"
        )
    days = days_between(first, second)
    if days is not None and days > MAX_DAYS_APART:
        note = (f"{first.source} and {second.source} are {days:.0f} days apart (more than "
                f"{MAX_DAYS_APART:.0f}): seasonal and land-cover drift will show as change")
        if notes is None:
            warnings.warn(note, PairWarning, stacklevel=2)
        else:
            notes.append(note)
    reprojected = not _same_grid(first, second)
    if reprojected:
        second = reproject_onto(second, first)
    has_data = first.valid() & second.valid()
    if not has_data.any():
        raise GridMismatchError(
            f"{first.source} and {second.source} share no valid pixel on the first grid: "
            "check their footprints and nodata"
        )
    if first.sensor == "S1":
        return AlignedPair(
            x1=first.data, x2=second.data, valid=has_data, nodata=~has_data,
            cloud=np.zeros_like(has_data), first=first, second=second,
            reprojected=reprojected, days_apart=days, overlap_fraction=overlap,
        )
    if mask_clouds:
        c1, c2 = cloud_mask(first), cloud_mask(second)
        for scene, c in ((first, c1), (second, c2)):
            if c[has_data].all():
                raise PairingError(
                    f"{scene.source} is cloud over all of the pair's common area: no pixel "
                    "to compare; pick another date"
                )
        cloud = c1 | c2
    else:
        cloud = np.zeros_like(has_data)
    cloud &= has_data
    return AlignedPair(
        x1=reflectance(first), x2=reflectance(second), valid=has_data & ~cloud,
        nodata=~has_data, cloud=cloud, first=first, second=second, reprojected=reprojected,
        days_apart=days, overlap_fraction=overlap,
    )
