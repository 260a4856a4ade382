"""Exports of a session's result: GeoJSON / GeoPackage of patch polygons with label and
score, a COG score map per product, and STAC Items carrying the model's provenance.
Dissolved result polygons (area, patch count, mean score) in GeoJSON, GeoPackage,
GeoParquet and FlatGeobuf with their STAC Item: `export_polygons` (polygon_export.py).

Polygons are the patch boxes in WGS84 (lon/lat, EPSG:4326, as GeoJSON requires; a box
across 180 degrees is cut there into two parts, and a STAC bbox across it has west >
east: eominer/antimeridian.py). The
score map has one pixel per patch of the session's level, on the product's grid (its
transform scaled by the patch size); nodata -1 where a patch is outside the scope.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer import antimeridian
from eominer.errors import SessionError
from eominer.learning.polygon_export import POLYGON_FORMATS, export_polygons
from eominer.workspace import replaced_whole, scratch_path

__all__ = ["POLYGON_FORMATS", "export_cogs", "export_geojson", "export_gpkg", "export_polygons",
           "export_stac", "patch_columns", "write_geojson", "write_gpkg"]

if TYPE_CHECKING:
    from eominer.learning.session import Session
    from eominer.store import Product


def _result(session: Session, threshold: float | None = None) -> dict[str, Any]:
    """Scores, positives (at `threshold`, default the session's publish threshold, as
    `publish` decides them), sources and patch rows of the session's result."""
    from eominer.learning.publish import decide

    scores, positive, source = decide(session, threshold)
    t = session.store.scope_patches(session.product_ids, session.level)
    at = np.searchsorted(t["patch_id"].to_numpy(), session.patch_ids)
    return {"scores": scores, "positive": positive, "source": source,
            "patches": t.take(at), "version": session.model_version()}


def patch_columns(session: Session, min_score: float, threshold: float | None,
                  ) -> dict[str, Any]:
    """The patches scoring at least `min_score`, column by column: `patch_id`,
    `product_id`, `score` (rounded to 6 decimals), `positive`, `source`, `bbox` (n x 4
    lon/lat), and the scalars `label`, `session_id`, `model_version`."""
    r = _result(session, threshold)
    keep = np.flatnonzero(np.asarray(r["scores"], np.float64) >= min_score)
    p = r["patches"].take(keep)
    return {
        "patch_id": session.patch_ids[keep].astype(np.int64),
        "product_id": np.asarray(p["product_id"].to_pylist(), dtype=object),
        "score": [round(v, 6) for v in r["scores"][keep].tolist()],
        "positive": np.asarray(r["positive"][keep], bool),
        "source": np.asarray(r["source"][keep], dtype=object),
        "bbox": np.column_stack([p[k].to_numpy().astype(np.float64) for k in
                                 ("min_lon", "min_lat", "max_lon", "max_lat")]).reshape(-1, 4),
        "label": session.concept, "session_id": session.session_id,
        "model_version": r["version"]}


def _product(session: Session, product_id: str) -> Product:
    meta = session.store.product(product_id)
    if meta is None:
        raise SessionError(f"product {product_id} of session {session.session_id} is no "
                           f"longer in {session.store.url}: re-ingest it to export")
    return meta


def _shapes(b: np.ndarray) -> list[Any]:
    """Patches' lon/lat boxes (n x 4) as shapely polygons (vectorised); a box past 180
    degrees (grid.py) cut there."""
    import shapely

    out = list(shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3]))
    for i in _across_180(b):
        out[i] = antimeridian.cut(out[i])
    return out


def _across_180(b: np.ndarray) -> np.ndarray:
    return np.flatnonzero((b[:, 0] < -180) | (b[:, 2] > 180))


# one feature of the GeoJSON, written by string formatting: json.dumps of a dict per
# patch took 2.5 s for a tile's 117,649 patches at 32 px, this 1 s; the same text
# (floats are repr() in both, strings escaped once per distinct value by json.dumps)
_FEATURE = ('{"type": "Feature", "id": %d, "properties": {"patch_id": %d, "product_id": %s, '
            '"label": %s, "score": %r, "positive": %s, "source": %s, "session_id": %s, '
            '"model_version": %s}, "geometry": %s}')
_RING = ('{"type": "Polygon", "coordinates": '
         '[[[%r, %r], [%r, %r], [%r, %r], [%r, %r], [%r, %r]]]}')


def export_geojson(session: Session, path: str | Path, min_score: float = 0.0,
                   threshold: float | None = None) -> Path:
    """FeatureCollection of patch polygons (WGS84) with label, score, positive (score at
    least `threshold`, default the session's publish threshold; or the analyst's answer)
    and provenance, for the patches scoring at least `min_score`."""
    return write_geojson(patch_columns(session, min_score, threshold), path)


def write_geojson(c: dict[str, Any], path: str | Path) -> Path:
    """`export_geojson`'s file from its `patch_columns` (no store: a worker thread may
    write it)."""
    from shapely.geometry import mapping

    q = {v: json.dumps(v) for v in {*c["product_id"].tolist(), *c["source"].tolist()}}
    label, sid, version = (json.dumps(c[k]) for k in ("label", "session_id", "model_version"))
    b = c["bbox"]
    geoms = [_RING % (x0, y0, x1, y0, x1, y1, x0, y1, x0, y0)
             for x0, y0, x1, y1 in b.tolist()]
    for i in _across_180(b):  # the parts of a box past 180 degrees
        geoms[i] = json.dumps(mapping(_shapes(b[i:i + 1])[0]))
    feats = [_FEATURE % (pid, pid, q[prod], label, score, "true" if pos else "false", q[src],
                         sid, version, geom)
             for pid, prod, score, pos, src, geom in zip(
                 c["patch_id"].tolist(), c["product_id"].tolist(), c["score"],
                 c["positive"].tolist(), c["source"].tolist(), geoms)]
    path = Path(path)
    with replaced_whole(path) as partial:  # an earlier export stays whole until then
        partial.write_text('{"type": "FeatureCollection", "features": [' + ", ".join(feats)
                           + "]}")
    return path


def export_gpkg(session: Session, path: str | Path, min_score: float = 0.0,
                threshold: float | None = None) -> Path:
    """GeoPackage layer `<concept>` with the same polygons and fields (via pyogrio)."""
    c = patch_columns(session, min_score, threshold)
    if not len(c["patch_id"]):
        raise SessionError(f"no patch scores >= {min_score}: nothing to export")
    return write_gpkg(c, path)


def write_gpkg(c: dict[str, Any], path: str | Path) -> Path:
    """`export_gpkg`'s file from its `patch_columns` (no store: a worker thread may
    write it)."""
    import pyogrio.raw
    from shapely import to_wkb

    n = len(c["patch_id"])
    shapes = _shapes(c["bbox"])
    kind = antimeridian.geometry_type(shapes)
    geoms = np.asarray(to_wkb(antimeridian.as_type(shapes, kind)), dtype=object)
    fields = ["patch_id", "product_id", "label", "score", "positive", "source",
              "session_id", "model_version"]
    data = [c["patch_id"], c["product_id"], np.full(n, c["label"], dtype=object),
            np.asarray(c["score"], np.float64), c["positive"].astype(np.int32), c["source"],
            np.full(n, c["session_id"], dtype=object),
            np.full(n, c["model_version"], dtype=object)]
    path = Path(path)
    with replaced_whole(path) as partial:
        pyogrio.raw.write(str(partial), geoms, data, fields, crs="EPSG:4326",
                          geometry_type=kind, driver="GPKG", layer=c["label"])
    return path


def export_cogs(session: Session, folder: str | Path) -> dict[str, Path]:
    """One float32 COG score map per product: {product_id: path}."""
    import rasterio
    import rasterio.shutil
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    r = _result(session)
    p = r["patches"]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prods = np.asarray(p["product_id"].to_pylist(), dtype=object)
    x_off, y_off = p["x_off"].to_numpy(), p["y_off"].to_numpy()
    size = session.level
    out: dict[str, Path] = {}
    for pid in session.product_ids:
        sel = prods == pid
        if not sel.any():
            continue
        meta = _product(session, pid)
        a, b, c, d, e, f = meta.transform
        h, w = meta.height // size, meta.width // size
        grid = np.full((h, w), -1.0, np.float32)
        grid[y_off[sel] // size, x_off[sel] // size] = r["scores"][sel]
        dest = folder / f"{pid}-{session.concept}-{session.session_id}.tif"  # as its STAC Item
        tmp = scratch_path(dest, "tmp")
        profile = {"driver": "GTiff", "width": w, "height": h, "count": 1,
                   "dtype": "float32", "nodata": -1.0, "crs": CRS.from_wkt(meta.crs),
                   "transform": Affine(a * size, b * size, c, d * size, e * size, f)}
        with replaced_whole(dest) as partial:
            try:
                with rasterio.open(tmp, "w", **profile) as ds:
                    ds.write(grid, 1)
                    ds.update_tags(label=session.concept, session_id=session.session_id,
                                   model_version=r["version"], patch_size_px=str(size))
                # DEFLATE: the score maps leave eominer, for any GIS's GDAL
                rasterio.shutil.copy(str(tmp), str(partial), driver="COG", compress="DEFLATE")
            finally:
                tmp.unlink(missing_ok=True)
        out[pid] = dest
    return out


def export_stac(session: Session, folder: str | Path, cogs: dict[str, Path] | None = None) -> list[Path]:
    """One STAC Item per product with the label, the score map asset and provenance
    (session, model version, labels used, feature sets); validated before writing."""
    import pystac
    from shapely import wkt

    folder = Path(folder)
    cogs = cogs if cogs is not None else export_cogs(session, folder)
    ids, y = session.labels()
    version = session.model_version()
    last = session.rounds()[-1]
    paths = []
    for pid in session.product_ids:
        meta = _product(session, pid)
        geom = wkt.loads(meta.footprint_wkt)
        item = pystac.Item(
            id=f"{pid}-{session.concept}-{session.session_id}",
            geometry=geom.__geo_interface__, bbox=antimeridian.bbox(geom),
            datetime=meta.acquired, properties={
                "eominer:label": session.concept, "eominer:session_id": session.session_id,
                "eominer:session_name": session.record.name,
                "eominer:model_version": version, "eominer:model_kind": last.model_kind,
                "eominer:labels_used": int(len(ids)),
                "eominer:labels_positive": int((y == 1).sum()),
                "eominer:feature_sets": session.feature_set_ids,
                "eominer:patch_size_px": session.level, "eominer:source_product": pid,
            },
        )
        if pid in cogs:
            item.add_asset("scores", pystac.Asset(
                href=cogs[pid].name, media_type=pystac.MediaType.COG,
                roles=["data"], title=f"{session.concept} score per patch (0-1, nodata -1)"))
        dest = folder / f"{item.id}.json"
        item.set_self_href(str(dest.resolve()))
        item.validate()
        item.save_object(include_self_link=False, dest_href=str(dest))
        paths.append(dest)
    return paths
