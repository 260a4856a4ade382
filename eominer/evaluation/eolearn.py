"""The eo-learn `TestEOPatch` (ROOT/eolearn_testeopatch): a 101 x 100 px Sentinel-2 time
series over Slovenia (68 dates, 2015-07 to 2017-12) with cloud masks and a land-use
raster, as a mining task on the product's own path.

- **The product.** `REFERENCE_SCENES.npy` holds 5 of the 68 dates as 13-band L1C
  reflectance (0..1). Its NDVI equals `data/NDVI.npy` exactly at dates 2, 1, 4, 3 and 0;
  scene 4 is date 0 (2015-07-11), cloud-free (`CLM` is 0 everywhere) and at the peak of
  the season. `write_reference_product` writes it as a multi-band GeoTIFF that the normal
  ingest accepts: bands named B01..B12 in eo-learn's L1C order (ESA's order, B8A after
  B08), digital numbers = reflectance x 10000, EPSG:32633. The EOPatch was requested at
  10 m (`meta_info/size_x.json`); its bbox is 999.5 x 1009.7 m for 100 x 101 px (Sentinel
  Hub fitted 9.995 m pixels), so the file gets 10 m pixels from the bbox's top-left
  corner: the ingest's 10 m grid is then the arrays' grid, pixel for pixel (0.5 m off
  at the far edge).
- **The truth.** A patch's class is the majority of `mask_timeless/LULC` over its pixels
  (no data, 0, counts as a class: a patch mostly without data belongs to none; ties go
  to the smaller id).
- **The time series.** NDVI of the 68 dates, clear where `IS_VALID` and `CLM == 0`: the
  `temporal` feature set (eominer.change.temporal).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eominer.errors import GridMismatchError, ProductReadError

if TYPE_CHECKING:
    from eominer.store import FeatureSet, Store

# Land-use ids of the EOPatch's LULC raster (eo-learn example data, data/README.md)
LULC_CLASSES: dict[int, str] = {
    1: "cultivated", 2: "forest", 3: "grassland", 4: "shrubland", 5: "water",
    6: "wetlands", 7: "tundra", 8: "artificial", 9: "bareland", 10: "snow"}
# ... and the taxonomy label each is mined as (eominer/taxonomy.json, CORINE-like)
LULC_CONCEPTS: dict[str, str] = {
    "cultivated": "arable_land", "forest": "forest", "grassland": "pastures",
    "shrubland": "scrub_herbaceous", "water": "inland_waters", "wetlands": "inland_wetlands",
    "tundra": "scrub_herbaceous", "artificial": "artificial_surfaces",
    "bareland": "open_spaces", "snow": "open_spaces"}
REFERENCE_SCENE = 4       # REFERENCE_SCENES[4] is the series' date 0, 2015-07-11, clear
REFERENCE_DATE = 0
PIXEL_M = 10.0
EPSG = 32633
REQUIRED = ("REFERENCE_SCENES.npy", "TestEOPatch/data/NDVI.npy", "TestEOPatch/mask/CLM.npy",
            "TestEOPatch/mask/IS_VALID.npy", "TestEOPatch/mask_timeless/LULC.npy",
            "TestEOPatch/bbox.geojson", "TestEOPatch/timestamps.json")


@dataclass(frozen=True, eq=False)
class EOPatch:
    """The arrays of the TestEOPatch that the task uses."""

    folder: Path
    ndvi: np.ndarray       # (dates, rows, cols) float32
    clear: np.ndarray      # (dates, rows, cols) bool: IS_VALID and not CLM
    dates: list[str]       # ISO timestamps, one per date
    lulc: np.ndarray       # (rows, cols) class ids
    scenes: np.ndarray     # (5, rows, cols, 13) L1C reflectance
    top_left: tuple[float, float]


def eolearn_folder(root: Path) -> Path:
    """`root` itself when it holds REFERENCE_SCENES.npy, else root/eolearn_testeopatch."""
    root = Path(root)
    return root if (root / "REFERENCE_SCENES.npy").exists() else root / "eolearn_testeopatch"


def read_eopatch(root: Path) -> EOPatch:
    """The TestEOPatch under `root`; a missing file or a misaligned array is one message
    naming it."""
    base = eolearn_folder(root)
    missing = [base / r for r in REQUIRED if not (base / r).exists()]
    if missing:
        raise ProductReadError(
            f"{missing[0]} missing: the eo-learn task needs a folder laid out as "
            f"eolearn_testeopatch/ (REFERENCE_SCENES.npy and the EOPatch folder TestEOPatch/ "
            f"with {', '.join(r.split('/', 1)[1] for r in REQUIRED[1:])})")
    eop = base / "TestEOPatch"
    ndvi = np.load(eop / "data" / "NDVI.npy")[..., 0]
    clear = (np.load(eop / "mask" / "IS_VALID.npy")[..., 0].astype(bool)
             & (np.load(eop / "mask" / "CLM.npy")[..., 0] == 0))
    lulc = np.load(eop / "mask_timeless" / "LULC.npy")[..., 0]
    scenes = np.load(base / "REFERENCE_SCENES.npy")
    dates = json.loads((eop / "timestamps.json").read_text())
    grid = ndvi.shape[1:]
    for name, shape in (("mask/IS_VALID.npy and mask/CLM.npy", clear.shape[1:]),
                        ("mask_timeless/LULC.npy", lulc.shape),
                        ("REFERENCE_SCENES.npy", scenes.shape[1:3])):
        if shape != grid:
            raise GridMismatchError(f"{eop.parent / name} is {shape[1]} x {shape[0]} px, "
                                    f"data/NDVI.npy {grid[1]} x {grid[0]}: the EOPatch's "
                                    "arrays must share one grid")
    if len(dates) != ndvi.shape[0] or clear.shape[0] != ndvi.shape[0]:
        raise GridMismatchError(f"{eop / 'timestamps.json'} has {len(dates)} dates, "
                                f"data/NDVI.npy {ndvi.shape[0]}, the cloud masks "
                                f"{clear.shape[0]}: one timestamp per date")
    if scenes.ndim != 4 or scenes.shape[-1] != 13:
        raise ProductReadError(f"{base / 'REFERENCE_SCENES.npy'} is {scenes.shape}: expected "
                               "(dates, rows, cols, 13 L1C bands)")
    box = json.loads((eop / "bbox.geojson").read_text())
    ring = np.asarray(box["coordinates"][0], dtype=np.float64)
    crs = box.get("crs", {}).get("properties", {}).get("name", "")
    if not crs.endswith(f":{EPSG}"):
        raise ProductReadError(f"{eop / 'bbox.geojson'} is in {crs or 'no CRS'}: expected "
                               f"EPSG:{EPSG} (UTM 33N), as the TestEOPatch")
    return EOPatch(base, ndvi, clear, dates, lulc, scenes,
                   (float(ring[:, 0].min()), float(ring[:, 1].max())))


def product_name(eop: EOPatch) -> str:
    """A file name the ingest reads the level (L1C) and the sensing time from."""
    t = eop.dates[REFERENCE_DATE].replace("-", "").replace(":", "")[:15]
    return f"TestEOPatch_MSIL1C_{t}.tif"


def write_reference_product(eop: EOPatch, folder: Path) -> Path:
    """REFERENCE_SCENES[REFERENCE_SCENE] as a 13-band GeoTIFF in `folder` (module
    docstring); returns its path."""
    import rasterio
    from rasterio.transform import from_origin

    from eominer.sensors import S2_BAND_ORDER, S2_REFLECTANCE_SCALE

    scene = eop.scenes[REFERENCE_SCENE]  # (rows, cols, 13), eo-learn's L1C band order
    dn = np.clip(np.rint(scene * S2_REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / product_name(eop)
    profile = {"driver": "GTiff", "width": dn.shape[1], "height": dn.shape[0], "count": 13,
               "dtype": "uint16", "crs": f"EPSG:{EPSG}", "nodata": 0,
               "transform": from_origin(*eop.top_left, PIXEL_M, PIXEL_M)}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.moveaxis(dn, -1, 0))
        for i, band in enumerate(S2_BAND_ORDER, 1):
            ds.set_band_description(i, band)
    return path


def majority_classes(lulc: np.ndarray, x_off: np.ndarray, y_off: np.ndarray,
                     size_px: np.ndarray) -> np.ndarray:
    """The majority LULC id of each patch window (0, no data, counts; ties: smaller id)."""
    n = int(lulc.max()) + 1
    out = np.empty(len(x_off), np.int64)
    for i, (x, y, s) in enumerate(zip(x_off, y_off, size_px, strict=True)):
        out[i] = np.bincount(lulc[y:y + s, x:x + s].ravel().astype(np.int64),
                             minlength=n).argmax()
    return out


def temporal_feature_set(store: Store, eop: EOPatch, product_id: str,
                         level: int) -> FeatureSet:
    """The `temporal` feature set of the EOPatch's NDVI series on the patches of the
    ingested reference product (eominer.change.temporal)."""
    from eominer.change.temporal import store_temporal

    return store_temporal(store, product_id, level, eop.ndvi, eop.clear, eop.dates,
                          index="NDVI", source=f"{eop.folder.name}/TestEOPatch",
                          mask="IS_VALID & CLM == 0")
