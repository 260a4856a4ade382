"""Lon/lat shapes across the antimeridian, as the files eominer writes want them.

Inside eominer a shape across 180 degrees keeps continuous longitudes (179.9 .. 180.1:
grid.py, learning/aoi.py), so it stays one polygon with its true area and neighbours.
GeoJSON (RFC 7946, 3.1.9 and 5.2), STAC, GeoParquet and lon/lat readers in general want
longitudes in [-180, 180]: such a shape is written cut at the meridian into parts, and
its bbox runs from its west edge to its east edge, west > east when it crosses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry


def continuous(geom: BaseGeometry) -> BaseGeometry:
    """`geom` with longitudes that run on past 180 where its vertices span more than 180
    degrees (a transform that wrapped its eastern vertices to -179.x): the short way
    round, as every shape eominer makes is (a patch, a product, a result polygon)."""
    lon = shapely.get_coordinates(geom)[:, 0]
    if not len(lon) or np.ptp(lon) <= 180:
        return geom
    return shapely.transform(geom, lambda xy: np.column_stack(
        [np.where(xy[:, 0] < 0, xy[:, 0] + 360, xy[:, 0]), xy[:, 1]]))


def cut(geom: BaseGeometry) -> BaseGeometry:
    """A polygonal `geom` with longitudes in [-180, 180]: a shape across 180 becomes a
    MultiPolygon of its parts on either side (RFC 7946, 3.1.9); any other is returned
    as it is."""
    g = continuous(geom)
    x0, _, x1, _ = g.bounds
    if g.is_empty or (x0 >= -180 and x1 <= 180):
        return geom
    parts: list[Polygon] = []
    for shift in (-360.0, 0.0, 360.0):  # the part that lands in [-180, 180] moved by it
        piece = shapely.intersection(g, box(-180 - shift, -90, 180 - shift, 90))
        moved = shapely.transform(piece, lambda xy, s=shift: xy + [s, 0])
        parts += [p for p in shapely.get_parts(moved) if isinstance(p, Polygon)
                  and not p.is_empty]
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def bbox(geoms: BaseGeometry | Sequence[BaseGeometry]) -> list[float]:
    """[west, south, east, north] of the shapes (RFC 7946, 5.2): the shortest span of
    longitude that holds every vertex, so west > east when it crosses 180."""
    shapes = [geoms] if isinstance(geoms, BaseGeometry) else list(geoms)
    xy = shapely.get_coordinates(shapes)
    if not len(xy):
        raise ValueError("no coordinates: an empty shape has no bbox")
    lon = xy[:, 0] - 360 * np.floor((xy[:, 0] + 180) / 360)  # in [-180, 180)
    lon = np.unique(np.where((xy[:, 0] >= -180) & (xy[:, 0] < 180), xy[:, 0], lon))
    gaps = np.diff(np.r_[lon, lon[0] + 360])  # after each longitude, to the next one
    k = int(np.argmax(gaps))  # the widest stretch without a vertex lies outside
    west, east = (lon[0], lon[-1]) if k == len(lon) - 1 else (lon[k + 1], lon[k])
    if east == -180.0 and west > east:  # ends on the meridian from the west: 180
        east = 180.0
    return [float(west), float(xy[:, 1].min()), float(east), float(xy[:, 1].max())]


def bbox_polygon(b: Sequence[float]) -> BaseGeometry:
    """The shape of a [west, south, east, north] bbox, cut at 180 when west > east."""
    west, south, east, north = b
    return cut(box(west, south, east + 360 if east < west else east, north))


def geometry_type(geoms: Sequence[BaseGeometry]) -> str:
    """"MultiPolygon" when any of the polygonal `geoms` is one (cut, or dissolved into
    parts), else "Polygon": the layer type a file declares."""
    return "MultiPolygon" if any(isinstance(g, MultiPolygon) for g in geoms) else "Polygon"


def as_type(geoms: Sequence[BaseGeometry], kind: str) -> list[BaseGeometry]:
    """`geoms` as `kind`: polygons wrapped into one-part MultiPolygons for a
    MultiPolygon layer (a GeoPackage layer holds one type)."""
    if kind != "MultiPolygon":
        return list(geoms)
    return [g if isinstance(g, MultiPolygon) else MultiPolygon([g]) for g in geoms]
