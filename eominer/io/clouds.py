"""Cloud, shadow, snow and water masks of a product on its 10 m grid, from the best source
it has (docs/ingest.md, "Clouds"):

1. `SCL`: the L2A scene classification (20 m; classes in eominer.sensors): cloud = medium
   and high probability cloud and thin cirrus (8, 9, 10), shadow = 3, snow = 11, water = 6;
2. `MSK_CLASSI`: the baseline >= 04.00 mask (60 m): cloud = opaque or cirrus, snow;
3. `MSK_CLOUDS_GML`: the older L1C cloud polygons: cloud only (no polygon: no cloud);
4. `s2cloudless`: the pixel detector (eominer.io.cloud_detector) on the ARD of an L1C
   product with the detector's ten bands: cloud only.
Otherwise none (an L2A without SCL, a stack without the detector's bands, Sentinel-1,
the detector not installed): the product's fractions stay NULL and `note` says why.

Class rasters are resampled by nearest neighbour (one class per pixel, never blended).
A pixel is flagged only where the ARD is valid. A mask the product has but that cannot
be read (truncated, corrupt, another grid) fails the ingest with ProductReadError naming
the file: a damaged product is copied again rather than measured with a fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from eominer import sensors as S
from eominer.domain import SourceProduct
from eominer.errors import MissingExtraError, ProductReadError
from eominer.io import cloud_detector as detector
from eominer.io.gml_mask import parse_cloud_gml, rasterise, read_bytes
from eominer.io.read import Grid

# Mask sources, as stored in products.cloud_mask.
SOURCES: tuple[str, ...] = ("SCL", "MSK_CLASSI", "MSK_CLOUDS_GML", "s2cloudless")


@dataclass(frozen=True)
class CloudMasks:
    """The masks of one product: class ("cloud", "shadow", "snow", "water") -> bool
    raster of the 10 m grid; only the classes its source observes."""

    source: str | None
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    note: str = ""
    cover: float | None = None  # percent of the valid pixels that are cloud (`measured`)

    def measured(self, valid: np.ndarray) -> CloudMasks:
        """With `cover` from the cloud mask (None without one, or without valid pixels):
        the product's cloud cover where its metadata has none (band folders, stacks)."""
        n = int(np.count_nonzero(valid))
        if "cloud" not in self.masks or n == 0:
            return self
        cloud = int(np.count_nonzero(self.masks["cloud"] & valid))
        return replace(self, cover=100.0 * cloud / n)


def product_cloud_masks(product: SourceProduct, grid: Grid, valid: np.ndarray,
                        ard_path: str | Path) -> CloudMasks:
    """The masks of `product` (its ARD at `ard_path`, written on `grid`)."""
    if product.sensor != "S2":
        return CloudMasks(None, note="Sentinel-1: radar sees through clouds")
    files = product.cloud_masks
    if "SCL" in files:
        return _scl(files["SCL"], grid, valid)
    if "MSK_CLASSI" in files:
        return _msk_classi(files["MSK_CLASSI"], grid, valid)
    if "MSK_CLOUDS" in files:
        return _msk_clouds(files["MSK_CLOUDS"], grid, valid)
    return _detect(product, ard_path, valid)


def _scl(path: str, grid: Grid, valid: np.ndarray) -> CloudMasks:
    scl = read_on_grid(path, grid, "the L2A scene classification (SCL)")[0]
    masks = {name: np.isin(scl, classes) & valid for name, classes in S.S2_SCL_CLASSES.items()}
    return CloudMasks("SCL", masks, f"L2A scene classification {Path(path).name}")


def _msk_classi(path: str, grid: Grid, valid: np.ndarray) -> CloudMasks:
    bands = read_on_grid(path, grid, "the cloud mask MSK_CLASSI", count=3)
    b = S.S2_MSK_CLASSI_BANDS
    cloud = (bands[b["opaque"] - 1] == 1) | (bands[b["cirrus"] - 1] == 1)
    snow = bands[b["snow"] - 1] == 1
    return CloudMasks("MSK_CLASSI", {"cloud": cloud & valid, "snow": snow & valid},
                      f"cloud mask {Path(path).name} (opaque and cirrus)")


def _msk_clouds(path: str, grid: Grid, valid: np.ndarray) -> CloudMasks:
    try:
        data = read_bytes(path)
    except (OSError, KeyError) as exc:
        raise ProductReadError(f"cannot read the cloud mask {path}: {exc}; copy the product "
                               "again") from exc
    polygons, epsg = parse_cloud_gml(data, path)
    cloud = rasterise(polygons, epsg, grid.crs_wkt, grid.transform, (grid.height, grid.width))
    return CloudMasks("MSK_CLOUDS_GML", {"cloud": cloud & valid},
                      f"cloud polygons {Path(path).name} ({len(polygons)} polygons)")


def _detect(product: SourceProduct, ard_path: str | Path, valid: np.ndarray) -> CloudMasks:
    missing = [b for b in detector.DETECTOR_BANDS if b not in product.bands]
    if product.processing_level == "L2A" or (not missing and product.processing_level != "L1C"):
        level = product.processing_level or "unknown level"
        return CloudMasks(None, note=(
            f"no cloud mask in the product ({level}, no SCL or MSK_* file found), and the "
            "s2cloudless detector works on L1C top-of-atmosphere reflectance only"))
    if missing:
        return CloudMasks(None, note=(
            f"no cloud mask in the product, and the s2cloudless detector needs band(s) "
            f"{', '.join(missing)}, which it lacks"))
    try:
        model = detector.load_model()
    except MissingExtraError as exc:
        return CloudMasks(None, note=f"no cloud mask in the product, and {exc}")
    cloud = detector.detect_clouds(ard_path, list(product.bands), valid, model)
    return CloudMasks("s2cloudless", {"cloud": cloud},
                      "no cloud mask in the product: s2cloudless detector on the L1C bands")


def read_on_grid(path: str, grid: Grid, what: str, count: int = 1) -> np.ndarray:
    """The first `count` bands of a class raster on `grid` (nearest neighbour), as
    (count, height, width). It must be in the grid's CRS and cover its extent."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.transform import Affine, array_bounds

    try:
        with rasterio.open(path) as ds:
            if ds.count < count:
                raise ProductReadError(f"{what} {path} has {ds.count} band(s), expected "
                                       f"{count}: it is not a Sentinel-2 mask file")
            crs, bounds, res = ds.crs, tuple(ds.bounds), abs(ds.transform[0])
            data = ds.read(list(range(1, count + 1)), out_shape=(count, grid.height, grid.width),
                           resampling=Resampling.nearest)
    except rasterio.errors.RasterioIOError as exc:
        raise ProductReadError(
            f"cannot read {what} {path}: {exc}; the file is truncated or corrupt: copy the "
            "product again (or delete the file: eominer then uses the next source of "
            "clouds, see docs/ingest.md)") from exc
    if crs is None or crs != CRS.from_wkt(grid.crs_wkt):
        raise ProductReadError(f"{what} {path} is in {crs}, not in the CRS of the product's "
                               "bands: it belongs to another product; use the product's own file")
    want = array_bounds(grid.height, grid.width, Affine(*grid.transform))
    if any(abs(a - b) > res * 0.5 for a, b in zip(bounds, want)):
        raise ProductReadError(f"{what} {path} covers {bounds}, but the product's bands cover "
                               f"{tuple(want)}: it belongs to another product; use the "
                               "product's own file")
    return data
