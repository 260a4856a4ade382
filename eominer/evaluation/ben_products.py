"""BigEarthNet patches as products the ingest accepts, for the mining evaluation.

BigEarthNet v2 (LMDB) patches carry no georeference, and the ingest refuses rasters
without one. Their names do carry it: `..._T33UUP_37_88` is patch column 37, row 88 of
the 120 px (1,200 m) grid of Sentinel-2 tile 33UUP, from the tile's upper-left corner.
The corner follows from the MGRS 100 km square the tile is named after (the tile spans
the square plus 9.8 km east and south; its top edge is the square's plus `TILE_TOP_M`,
40 m), so `patch_transform` places each patch. Checked against BigEarthNet v1, whose
patches are georeferenced GeoTIFFs: T29UPU patch 36_85 is at (643200, 5798040) in
EPSG:32629, and so are 4_55 of the same tile; the third v1 patch, T29SND 56_35, is
20 m east of its real place (that tile's corner is at 499,980 m, not 500,000 m:
Sentinel-2 tile corners are MGRS corners within tens of metres). So patches are placed
within tens of metres (tests/evaluation/test_ben_task.py); the mining task does not
depend on where they are, only on their pixels.

Each patch becomes one 12-band GeoTIFF (S2 L2A bands of BigEarthNet, named in the band
descriptions; DN = reflectance x 10000) named like the patch without its `_N9999_`
baseline field (which the ingest would read as a baseline >= 04.00 without metadata).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from eominer.errors import ProductReadError

PATCH_M = 1200.0
TILE_TOP_M = 40.0
# MGRS 100 km column letters by UTM zone mod 3 (1, 2, 0) and row letters (2,000 km cycle,
# odd zones start at A, even zones at F); latitude bands from 80 S, 8 degrees each
MGRS_COLUMNS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
MGRS_ROWS = "ABCDEFGHJKLMNPQRSTUV"
LAT_BANDS = "CDEFGHJKLMNPQRSTUVWX"
# BigEarthNet's 19 classes -> (task key, taxonomy label of eominer/taxonomy.json)
BEN19_TASKS: dict[str, tuple[str, str]] = {
    "Urban fabric": ("urban_fabric", "urban_fabric"),
    "Industrial or commercial units": ("industrial", "industrial_commercial_transport"),
    "Arable land": ("arable", "arable_land"),
    "Permanent crops": ("permanent_crops", "permanent_crops"),
    "Pastures": ("pastures", "pastures"),
    "Complex cultivation patterns": ("complex_cultivation", "heterogeneous_agriculture"),
    "Land principally occupied by agriculture, with significant areas of natural "
    "vegetation": ("agriculture_natural", "heterogeneous_agriculture"),
    "Agro-forestry areas": ("agroforestry", "heterogeneous_agriculture"),
    "Broad-leaved forest": ("broadleaved_forest", "forest"),
    "Coniferous forest": ("coniferous_forest", "forest"),
    "Mixed forest": ("mixed_forest", "forest"),
    "Natural grassland and sparsely vegetated areas": ("natural_grassland", "scrub_herbaceous"),
    "Moors, heathland and sclerophyllous vegetation": ("moors_heath", "scrub_herbaceous"),
    "Transitional woodland, shrub": ("woodland_shrub", "scrub_herbaceous"),
    "Beaches, dunes, sands": ("beaches", "open_spaces"),
    "Inland wetlands": ("inland_wetlands", "inland_wetlands"),
    "Coastal wetlands": ("coastal_wetlands", "coastal_wetlands"),
    "Inland waters": ("inland_waters", "inland_waters"),
    "Marine waters": ("marine_waters", "marine_waters"),
}
BASELINE_RE = re.compile(r"_N\d{4}_")
PATCH_RE = re.compile(r"_T(\d{2})([C-X])([A-HJ-NP-Z])([A-HJ-NP-V])_(\d+)_(\d+)$")


def tile_corner(zone: int, band: str, column: str, row: str) -> tuple[int, float, float]:
    """(EPSG code, x, y) of the upper-left corner of Sentinel-2 tile <zone><band><column
    ><row> (module docstring); northern hemisphere only."""
    from rasterio.warp import transform

    if band < "N":
        raise ProductReadError(f"tile {zone}{band}{column}{row}: southern-hemisphere tiles "
                               "are not placed (no check exists for them)")
    epsg = 32600 + zone
    east = (MGRS_COLUMNS[zone % 3 - 1].index(column) + 1) * 100_000.0
    r = (MGRS_ROWS.index(row) - (5 if zone % 2 == 0 else 0)) % 20
    south = LAT_BANDS.index(band) * 8 - 80
    centre = zone * 6 - 183
    _, (band_north,) = transform("EPSG:4326", f"EPSG:{epsg}", [centre], [south])
    north = r * 100_000.0
    while north + 100_000 <= band_north:  # the square reaches into its latitude band
        north += 2_000_000
    return epsg, east, north + 100_000 + TILE_TOP_M


def patch_transform(name: str) -> tuple[int, tuple[float, float]]:
    """(EPSG code, upper-left corner) of a BigEarthNet patch named `..._T<tile>_<col>_<row>`."""
    m = PATCH_RE.search(name)
    if not m:
        raise ProductReadError(f"{name}: not a BigEarthNet patch name ..._T<tile>_<col>_<row> "
                               "(e.g. S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_37_88)")
    zone, band, column, row, x, y = m.groups()
    epsg, ulx, uly = tile_corner(int(zone), band, column, row)
    return epsg, (ulx + int(x) * PATCH_M, uly - int(y) * PATCH_M)


def write_patch(name: str, s2: np.ndarray, bands: tuple[str, ...], folder: Path) -> Path:
    """One patch (bands, n, n) reflectance as a GeoTIFF in `folder`; returns its path."""
    import rasterio
    from rasterio.transform import from_origin

    from eominer.sensors import S2_REFLECTANCE_SCALE

    epsg, (x, y) = patch_transform(name)
    dn = np.clip(np.rint(s2 * S2_REFLECTANCE_SCALE), 0, 65535).astype(np.uint16)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (BASELINE_RE.sub("_", name) + ".tif")
    size = PATCH_M / s2.shape[2]
    with rasterio.open(path, "w", driver="GTiff", width=s2.shape[2], height=s2.shape[1],
                       count=len(bands), dtype="uint16", crs=f"EPSG:{epsg}", nodata=0,
                       transform=from_origin(x, y, size, size)) as ds:
        ds.write(dn)
        for i, b in enumerate(bands, 1):
            ds.set_band_description(i, b)
    return path
