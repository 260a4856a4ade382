"""Results as polygons: positive patches dissolved into polygons, with their area in
hectares, patch count and mean score.

Which patches: those a session's current ranking scores at or above a threshold (the
model's scores, as in the patch exports), or those a session published positive
(`annotations.positive`, where the analyst's answers win), or published with a score at
or above a threshold.

How: the patches of one product and level lie on one grid, so they are dissolved in pixel
space, where every coordinate is an integer and the union is exact: edge-adjacent patches
form one polygon (4-connectivity, `scipy.ndimage.label`; patches that only touch at a
corner stay apart), unioned with `shapely.coverage_union_all`, then mapped through the
product's affine transform into its own CRS. Area: in a projected CRS, pixel count x the
pixel's area (|det| of the transform, in the CRS's unit, m²), which is the polygon's planar
area; in a geographic CRS (OSCD's rasters are EPSG:4326), the geodesic area on the WGS84
ellipsoid (pyproj.Geod). Patches of different products are never merged (their CRS and
dates differ): overlapping products give overlapping polygons.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from eominer.errors import ExportError, require

if TYPE_CHECKING:
    from pyproj import CRS, Transformer
    from shapely.geometry import Polygon
    from shapely.geometry.base import BaseGeometry

    from eominer.learning.session import Session
    from eominer.store import Product, Store


@dataclass(frozen=True)
class Positives:
    """Positive patches (geometry columns of `patches`) with their scores, and where they
    came from."""

    patches: pa.Table  # patch_id, product_id, x_off, y_off, size_px
    scores: np.ndarray
    source: str  # 'ranking' or 'published'
    model_version: str
    threshold: float | None


@dataclass(frozen=True)
class ResultPolygon:
    product_id: str
    crs: str  # the product's CRS (WKT or EPSG code)
    geometry: Polygon  # in the product's CRS
    patch_ids: tuple[int, ...]
    patch_count: int
    area_ha: float
    mean_score: float


def session_positives(session: Session, threshold: float) -> Positives:
    """Patches of `session` whose score in its result (the current ranking with every
    answer over it, `Session.result_scores`) is >= `threshold`."""
    scores = session.result_scores().astype(np.float64)
    keep = scores >= float(threshold)
    if not keep.any():
        raise ExportError(
            f"no patch of session {session.session_id} scores >= {threshold:g} (highest "
            f"{scores.max():.3f}): lower --threshold; nothing was written")
    t = session.store.patches_by_id(session.patch_ids[keep])
    return Positives(t, scores[keep], "ranking", session.model_version(), float(threshold))


def published_positives(store: Store, session_id: str, label: str,
                        threshold: float | None = None) -> Positives:
    """Patches `session_id` published as `label`: positive ones, or those whose published
    score is >= `threshold` when one is given."""
    t = store.published_annotations(session_id, label)
    if t.num_rows == 0:
        raise ExportError(f"session {session_id} has published no {label!r} annotation: "
                          "publish it first (eominer session publish); nothing was written")
    scores = t["score"].to_numpy().astype(np.float64)
    keep = t["positive"].to_numpy(zero_copy_only=False).astype(bool) if threshold is None \
        else scores >= float(threshold)
    if not keep.any():
        what = "positive" if threshold is None else f"scoring >= {threshold:g}"
        raise ExportError(f"no published {label!r} patch of session {session_id} is {what} "
                          f"(highest score {scores.max():.3f}); nothing was written")
    ids = t["patch_id"].to_numpy().astype(np.int64)[keep]
    return Positives(store.patches_by_id(ids), scores[keep], "published",
                     str(t["model_version"][0].as_py()), threshold)


def dissolve(positives: Positives, products: dict[str, Product]) -> list[ResultPolygon]:
    """One polygon per 4-connected group of positive patches, per product and level."""
    from scipy import ndimage

    require("pyproj", "export", "result polygons (their CRS and areas)")

    t = positives.patches
    prods = np.asarray(t["product_id"].to_pylist(), dtype=object)
    x_off, y_off = t["x_off"].to_numpy(), t["y_off"].to_numpy()
    size = t["size_px"].to_numpy()
    ids = t["patch_id"].to_numpy().astype(np.int64)
    out: list[ResultPolygon] = []
    for pid in sorted(set(prods.tolist())):
        meta = products[pid]
        for s in sorted(set(size[prods == pid].tolist())):
            sel = np.flatnonzero((prods == pid) & (size == s))
            r, c = y_off[sel] // s, x_off[sel] // s
            grid = np.zeros((r.max() + 1, c.max() + 1), bool)
            grid[r, c] = True
            labels, n = ndimage.label(grid)  # default structure: edges, not corners
            comp = labels[r, c] - 1
            for k in range(n):
                members = sel[comp == k]
                out.append(_polygon(meta, ids[members], x_off[members], y_off[members],
                                    int(s), positives.scores[members]))
    return out


def _polygon(meta: Product, ids: np.ndarray, x_off: np.ndarray, y_off: np.ndarray,
             size: int, scores: np.ndarray) -> ResultPolygon:
    import shapely

    pixel = shapely.coverage_union_all(shapely.box(x_off, y_off, x_off + size, y_off + size))
    if _geographic(meta.crs):
        # a vertex at every patch corner: each geodesic edge is one patch side, so the
        # polygon's geodesic area is the sum of its patches'
        pixel = shapely.segmentize(pixel, size)
    a, b, c, d, e, f = meta.transform
    geom = shapely.transform(pixel, lambda p: np.column_stack(
        (a * p[:, 0] + b * p[:, 1] + c, d * p[:, 0] + e * p[:, 1] + f)))
    n_px = len(x_off) * size * size
    return ResultPolygon(meta.product_id, meta.crs, geom, tuple(ids.tolist()), len(x_off),
                         _area_ha(geom, meta.crs, n_px * abs(a * e - b * d)),
                         float(np.mean(scores)))


def _geographic(crs: str) -> bool:
    return bool(_crs(crs).is_geographic)


def _area_ha(geom: Polygon, crs: str, planar: float) -> float:
    from pyproj import Geod

    ref = _crs(crs)
    if ref.is_geographic:
        return abs(Geod(ellps="WGS84").geometry_area_perimeter(to_lonlat(geom, crs))[0]) / 1e4
    unit = ref.axis_info[0].unit_conversion_factor if ref.axis_info else 1.0  # to metres
    return planar * unit * unit / 1e4


def to_lonlat(geom: BaseGeometry, crs: str) -> BaseGeometry:
    """`geom` from `crs` to EPSG:4326 (lon, lat)."""
    import shapely

    t = _lonlat_transformer(crs)
    if t is None:
        return geom
    return shapely.transform(geom, lambda p: np.column_stack(t.transform(p[:, 0], p[:, 1])))


# Parsing a CRS and building its transformer took 0.5 ms a polygon, 4 of the 6.8 s of
# a tile's 3,846 result polygons; each thread keeps its own (a pyproj Transformer is
# not to be shared between threads)
_local = threading.local()


def _crs(crs: str) -> CRS:
    from pyproj import CRS

    cache = _local.__dict__.setdefault("crs", {})
    if crs not in cache:
        cache[crs] = CRS.from_user_input(crs)
    return cache[crs]


def _lonlat_transformer(crs: str) -> Transformer | None:
    """crs -> EPSG:4326 (x = lon); None when `crs` is already WGS84 lon/lat."""
    from pyproj import CRS, Transformer

    cache = _local.__dict__.setdefault("to_lonlat", {})
    if crs not in cache:
        src = _crs(crs)
        cache[crs] = (None if src.equals(CRS.from_epsg(4326), ignore_axis_order=True) else
                      Transformer.from_crs(src, "EPSG:4326", always_xy=True))
    return cache[crs]
