"""Areas of interest: a polygon in EPSG:4326 that selects patches by their geometry.

An AOI comes from a file (GeoJSON, GeoPackage, KML, a shapefile: every layer, every
polygon, read with pyogrio), from WKT, or from a shapely geometry (taken as lon/lat). It is
reprojected to EPSG:4326 (densified first, so a projected edge stays the same line on the
ground) and dissolved into one (multi)polygon.

A patch is inside when its WGS84 box (`patches.min_lon .. max_lat`) intersects the polygon,
exactly (shapely's `intersects`, vectorised over the boxes; touching counts), not when the
polygon's bounding box does. Stored with a session as WKT rounded to 1e-7 degrees (~1 cm);
the scope is always computed from the stored text, so a reopened session has the same.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import AOIError, require

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

# sessions.params is VARCHAR(10000) on MonetDB: the AOI's WKT keeps within this
MAX_WKT_CHARS = 6000
WKT_DECIMALS = 7
_WKT_HEADS = ("POLYGON", "MULTIPOLYGON", "GEOMETRYCOLLECTION")


@dataclass(frozen=True)
class AOI:
    """An area of interest: a valid (multi)polygon in EPSG:4326 and where it came from."""

    geometry: BaseGeometry
    source: str = "WKT"
    note: str | None = None  # what was done to it (simplified to fit the store...)

    @property
    def wkt(self) -> str:
        import shapely

        return shapely.to_wkt(self.geometry, rounding_precision=WKT_DECIMALS, trim=True)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return tuple(float(v) for v in self.geometry.bounds)  # type: ignore[return-value]


def as_aoi(value: Any) -> AOI | None:
    """An AOI from a file path, WKT text, a shapely geometry (lon/lat) or an AOI."""
    if value is None or isinstance(value, AOI):
        return value
    import shapely

    if isinstance(value, shapely.Geometry):
        return _polygonal(value, "geometry")
    text = str(value).strip()
    if text.upper().startswith(_WKT_HEADS):
        try:
            geom = shapely.from_wkt(text)
        except shapely.errors.GEOSException as exc:
            raise AOIError(f"cannot read the area of interest as WKT: {exc}") from exc
        return _polygonal(geom, "WKT")
    return read_aoi(text)


def read_aoi(path: str | Path) -> AOI:
    """Every polygon of every layer of a vector file, in EPSG:4326, dissolved."""
    pyogrio = require("pyogrio", "export", "reading an area of interest")
    import shapely

    path = Path(path)
    if not path.exists():
        raise AOIError(f"area of interest {path} not found: give a GeoJSON, GeoPackage, "
                       "KML or shapefile")
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio's DataSourceError and GDAL's own
        raise AOIError(f"cannot read the area of interest {path}: {exc}; expected GeoJSON, "
                       "GeoPackage, KML or a shapefile") from exc
    parts, others = [], Counter()
    for layer in layers:
        meta, _, wkb, _ = pyogrio.raw.read(path, layer=layer, read_geometry=True, columns=[])
        geoms = [g for g in shapely.from_wkb(wkb) if g is not None and not g.is_empty] \
            if wkb is not None else []
        polys = []
        for g in geoms:
            for part in shapely.get_parts(_flatten(g)):
                if part.geom_type == "Polygon":
                    polys.append(part)
                else:
                    others[part.geom_type] += 1
        if polys:
            parts.append(_to_lonlat(shapely.union_all(shapely.make_valid(np.asarray(polys))),
                                    meta.get("crs"), path))
    if not parts:
        found = ", ".join(f"{n} {k}" for k, n in sorted(others.items())) or "no geometry"
        raise AOIError(f"the area of interest {path} has no polygon ({found}): draw or save "
                       "an area (Polygon or MultiPolygon), not points or lines")
    return _polygonal(shapely.union_all(parts), path.name)


def _flatten(geom: BaseGeometry) -> BaseGeometry:
    """Collections of collections become one flat collection of their parts."""
    import shapely

    if geom.geom_type == "GeometryCollection":
        return shapely.GeometryCollection(
            [p for g in geom.geoms for p in shapely.get_parts(_flatten(g))])
    return geom


def _to_lonlat(geom: BaseGeometry, crs: str | None, path: Path) -> BaseGeometry:
    import shapely

    pyproj = require("pyproj", "export", "reprojecting an area of interest")
    CRS, Transformer = pyproj.CRS, pyproj.Transformer

    x0, y0, x1, y1 = geom.bounds
    if crs is None:
        if _lonlat_like(geom.bounds):
            return geom  # no CRS, lon/lat numbers: taken as EPSG:4326 (docs/learning.md)
        raise AOIError(
            f"the area of interest {path} has no CRS (a shapefile without its .prj?) and its "
            f"coordinates ({x0:.6g}, {y0:.6g}) are not longitude/latitude: put the .prj beside "
            "the .shp, or save the area as GeoJSON in EPSG:4326")
    src = CRS.from_user_input(crs)
    if src.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        return geom
    # densify in the source CRS: a straight projected edge bends in lon/lat
    step = max(x1 - x0, y1 - y0) / 100 or 1.0
    dense = shapely.segmentize(geom, step)
    to_ll = Transformer.from_crs(src, "EPSG:4326", always_xy=True)

    def lonlat(xy: np.ndarray) -> np.ndarray:
        lon, lat = to_ll.transform(xy[:, 0], xy[:, 1])
        if np.ptp(lon) > 180:  # across the antimeridian: continuous, past 180
            lon = np.where(lon < 0, lon + 360, lon)
        return np.column_stack([lon, lat])

    return shapely.make_valid(shapely.transform(dense, lonlat))


def _lonlat_like(bounds: tuple[float, float, float, float]) -> bool:
    """Longitudes and latitudes, those of an area across the antimeridian included:
    continuous past 180 (or -180), less than a turn wide."""
    x0, y0, x1, y1 = bounds
    return -360 <= x0 <= x1 <= 360 and x1 - x0 <= 360 and -90 <= y0 <= y1 <= 90


def _wrapped(geom: BaseGeometry) -> BaseGeometry:
    """An area given past +-180 (179.5 .. 180.5) cut at the antimeridian into parts
    within -180 .. 180, as GeoJSON (RFC 7946) draws it."""
    import shapely
    from shapely.affinity import translate

    parts = [translate(geom.intersection(shapely.box(west, -90, west + 360, 90)), xoff=shift)
             for west, shift in ((-540, 360), (-180, 0), (180, -360))]
    return shapely.union_all([p for p in parts if not p.is_empty])


def _polygonal(geom: BaseGeometry, source: str) -> AOI:
    import shapely

    polys = [p for p in shapely.get_parts(_flatten(shapely.make_valid(geom)))
             if p.geom_type == "Polygon" and p.area > 0]
    if not polys:
        raise AOIError(f"the area of interest ({source}) has no polygon with an area: draw "
                       "an area (Polygon or MultiPolygon)")
    merged = shapely.union_all(polys)
    if _lonlat_like(merged.bounds) and not -180 <= merged.bounds[0] <= merged.bounds[2] <= 180:
        merged = _wrapped(merged)
    x0, y0, x1, y1 = merged.bounds
    if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise AOIError(f"the area of interest ({source}) is not in longitude/latitude "
                       f"(bounds {x0:.6g}, {y0:.6g}, {x1:.6g}, {y1:.6g}): give a file with "
                       "its CRS, or coordinates in EPSG:4326")
    return AOI(merged, source)


def stored_aoi(aoi: AOI) -> AOI:
    """The AOI as a session or a search keeps it: WKT rounded to 1e-7 degrees, simplified
    (topology kept, tolerance doubled from ~1 m) until the text fits MAX_WKT_CHARS; the note
    says by how much. The scope is computed from this geometry, never from the original."""
    import shapely

    geom = shapely.from_wkt(aoi.wkt)
    note, tol = aoi.note, 1e-5
    while len(shapely.to_wkt(geom, rounding_precision=WKT_DECIMALS, trim=True)) > MAX_WKT_CHARS:
        n0 = shapely.get_num_coordinates(aoi.geometry)
        geom = shapely.from_wkt(shapely.to_wkt(
            aoi.geometry.simplify(tol, preserve_topology=True),
            rounding_precision=WKT_DECIMALS, trim=True))
        note = (f"area of interest simplified from {n0} to {shapely.get_num_coordinates(geom)} "
                f"vertices (tolerance {tol:g} degrees, ~{tol * 111_000:.0f} m) to be stored")
        tol *= 2
    return AOI(_polygonal(geom, aoi.source).geometry, aoi.source, note)


def boxes_in_aoi(min_lon: np.ndarray, min_lat: np.ndarray, max_lon: np.ndarray,
                 max_lat: np.ndarray, geometry: BaseGeometry) -> np.ndarray:
    """Which WGS84 boxes intersect the AOI polygon (exact, vectorised). A patch box
    across the antimeridian runs past 180 (grid.py): its part east of it is tested at
    -180 too, where the AOI (within -180 .. 180) has it."""
    import shapely

    if len(min_lon) == 0:
        return np.zeros(0, bool)
    x0, x1 = np.asarray(min_lon, np.float64), np.asarray(max_lon, np.float64)
    y0, y1 = np.asarray(min_lat, np.float64), np.asarray(max_lat, np.float64)
    shapely.prepare(geometry)
    hit = shapely.intersects(geometry, shapely.box(x0, y0, x1, y1))
    across = x1 > 180
    if across.any():
        hit[across] |= shapely.intersects(
            geometry, shapely.box(x0[across] - 360, y0[across], x1[across] - 360, y1[across]))
    return hit


def no_patch_message(aoi: AOI, n: int, bounds: tuple[float, float, float, float] | None,
                     where: str) -> str:
    x0, y0, x1, y1 = aoi.bounds
    extent = "" if bounds is None else (
        f" (they cover lon {bounds[0]:.4f}..{bounds[2]:.4f}, lat {bounds[1]:.4f}.."
        f"{bounds[3]:.4f})")
    return (f"the area of interest ({aoi.source}, lon {x0:.4f}..{x1:.4f}, lat {y0:.4f}..{y1:.4f})"
            f" intersects none of the {n} patches {where}{extent}: draw it over the products, "
            "or choose other products")
