"""The cloud polygons of an L1C product before baseline 04.00 (`MSK_CLOUDS_B00.gml`),
rasterised onto the product's 10 m grid.

The file (PSD S2-PDGS-TAS-DI-PSD, "cloud masks") is a GML 3.2 `eop:Mask` whose
`eop:MaskFeature`s carry an `eop:maskType` (OPAQUE or CIRRUS) and a `gml:Polygon`
(exterior and interior rings as `gml:posList`, x y pairs in the tile's CRS, named by an
`srsName` such as `urn:ogc:def:crs:EPSG:8.7:32631`). A mask without features is a product
without clouds: every pixel clear (fraction 0), not unknown. Elements are matched by their
local names, so the older GML namespace (`http://www.opengis.net/gml`) reads the same.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from shapely.geometry import Polygon

from eominer import sensors as S
from eominer.errors import ProductReadError

_EPSG_RE = re.compile(r"EPSG(?::[\d.]*)?:+(\d+)$|EPSG/\d+/(\d+)$|epsg\.xml#(\d+)$", re.I)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_bytes(path: str) -> bytes:
    """A file's bytes from a local path or a `/vsizip/archive.zip/inner` path."""
    if path.startswith("/vsizip/"):
        archive, _, inner = path.removeprefix("/vsizip/").partition(".zip/")
        with zipfile.ZipFile(archive + ".zip") as z:
            return z.read(inner)
    return Path(path).read_bytes()


def _coords(pos_list: ET.Element, where: str) -> list[tuple[float, float]]:
    dim = int(pos_list.get("srsDimension") or 2)
    try:
        values = [float(v) for v in (pos_list.text or "").split()]
    except ValueError as exc:
        raise ProductReadError(f"{where}: a posList holds something else than numbers "
                               f"({exc}); the file is corrupt: copy the product again") from exc
    if dim < 2 or len(values) % dim:
        raise ProductReadError(f"{where}: a posList of {len(values)} numbers does not split "
                               f"into {dim}-D points; the file is corrupt: copy the product again")
    return [(values[i], values[i + 1]) for i in range(0, len(values), dim)]


def _ring(el: ET.Element, where: str) -> list[tuple[float, float]]:
    pos = next((e for e in el.iter() if _local(e.tag) == "posList"), None)
    return _coords(pos, where) if pos is not None else []


def parse_cloud_gml(data: bytes, where: str) -> tuple[list[Polygon], int | None]:
    """(OPAQUE and CIRRUS polygons, EPSG code of their CRS or None) of a MSK_CLOUDS GML."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ProductReadError(
            f"cloud mask {where} is not valid XML ({exc}): the file is truncated or corrupt; "
            "copy the product again (or delete the file: eominer then uses its cloud detector)"
        ) from exc
    if _local(root.tag) != "Mask":
        raise ProductReadError(f"{where} is not a Sentinel-2 cloud mask: expected an eop:Mask "
                               f"document, got <{_local(root.tag)}>")
    epsg = None
    polygons: list[Polygon] = []
    for el in root.iter():
        srs = el.get("srsName")
        if srs and epsg is None and (m := _EPSG_RE.search(srs)):
            epsg = int(next(g for g in m.groups() if g))
        if _local(el.tag) != "MaskFeature":
            continue
        kind = next((e.text or "" for e in el.iter() if _local(e.tag) == "maskType"), "")
        if kind.strip().upper() not in S.S2_MSK_CLOUDS_TYPES:
            continue
        for poly in (e for e in el.iter() if _local(e.tag) == "Polygon"):
            outer = [_ring(e, where) for e in poly if _local(e.tag) == "exterior"]
            holes = [_ring(e, where) for e in poly if _local(e.tag) == "interior"]
            if outer and len(outer[0]) >= 3:
                polygons.append(Polygon(outer[0], [h for h in holes if len(h) >= 3]))
    return polygons, epsg


def rasterise(polygons: Sequence[Polygon], epsg: int | None, crs_wkt: str,
              transform: Sequence[float], shape: tuple[int, int]) -> np.ndarray:
    """Pixels of the grid whose centre lies in a polygon (bool, `shape`). Polygons in
    another CRS than the grid's are reprojected first."""
    from rasterio.crs import CRS
    from rasterio.features import rasterize
    from rasterio.transform import Affine
    from rasterio.warp import transform_geom

    if not polygons:
        return np.zeros(shape, dtype=bool)
    geoms = [p.__geo_interface__ for p in polygons]
    grid_crs = CRS.from_wkt(crs_wkt)
    if epsg is not None and CRS.from_epsg(epsg) != grid_crs:
        geoms = [transform_geom(CRS.from_epsg(epsg), grid_crs, g) for g in geoms]
    burnt = rasterize(((g, 1) for g in geoms), out_shape=shape,
                      transform=Affine(*transform[:6]), fill=0, dtype="uint8")
    return burnt.astype(bool)
