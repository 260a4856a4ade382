"""Writing result polygons: GeoJSON, GeoPackage, FlatGeobuf (pyogrio) and GeoParquet
(pyarrow, GeoParquet 1.1 metadata), and a STAC Item that describes the export.

CRS: GeoJSON is always EPSG:4326 (RFC 7946). The other formats keep the products' own CRS
when every polygon shares one (their areas can be measured on the file), else EPSG:4326.
In lon/lat a polygon across 180 degrees is cut there into parts (a MultiPolygon), and
the bboxes (GeoParquet's, the STAC Item's) run west > east across it
(eominer/antimeridian.py).
Every file has one feature per polygon with: polygon_id, product_id, label, level,
patch_count, area_ha, mean_score, session_id, model_version, source, threshold.
Nothing is written when there is no polygon (`polygons.py` says so first).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer import antimeridian
from eominer.errors import ExportError, require
from eominer.learning.polygons import (
    Positives,
    ResultPolygon,
    dissolve,
    published_positives,
    session_positives,
    to_lonlat,
)
from eominer.store.base import utcnow
from eominer.workspace import replaced_whole

if TYPE_CHECKING:
    from eominer.learning.session import Session

POLYGON_FORMATS = {  # name -> (suffix, GDAL driver or None for GeoParquet, media type)
    "geojson": (".geojson", "GeoJSON", "application/geo+json"),
    "gpkg": (".gpkg", "GPKG", "application/geopackage+sqlite3"),
    "parquet": (".parquet", None, "application/vnd.apache.parquet"),
    "fgb": (".fgb", "FlatGeobuf", "application/vnd.flatgeobuf"),
}
FIELDS = ("polygon_id", "product_id", "label", "level", "patch_count", "area_ha",
          "mean_score", "session_id", "model_version", "source", "threshold")


def export_polygons(session: Session, folder: str | Path,
                    formats: Sequence[str] = ("geojson", "gpkg", "parquet", "fgb"), *,
                    threshold: float | None = None, published: bool = False,
                    stac: bool = True) -> list[Path]:
    """Dissolve the session's positive patches (current ranking >= `threshold`, default
    the session's publish threshold; or, with `published`, its published positives) and
    write them in `formats` to `folder`, plus a STAC Item; returns the paths written."""
    bad = sorted(set(formats) - set(POLYGON_FORMATS))
    if bad:
        raise ExportError(f"unknown polygon format(s) {bad}: one of {list(POLYGON_FORMATS)}")
    if published:
        pos = published_positives(session.store, session.session_id, session.concept, threshold)
    else:
        pos = session_positives(session, session.params.publish_threshold
                                if threshold is None else threshold)
    products = {pid: session.store.product(pid) for pid in session.product_ids}
    missing = [pid for pid, meta in products.items() if meta is None]
    if missing:
        raise ExportError(f"products {missing} of session {session.session_id} are no longer "
                          f"in {session.store.url}: re-ingest them to export")
    polys = dissolve(pos, products)  # type: ignore[arg-type]
    records = _records(session, pos, polys)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{session.concept}-{session.session_id}-polygons"
    crs = _common_crs(polys)
    written: list[Path] = []
    for name in formats:
        suffix, driver, _ = POLYGON_FORMATS[name]
        path = folder / f"{stem}{suffix}"
        with replaced_whole(path) as partial:  # an earlier export stays whole until then
            if name == "geojson":
                geoms = [antimeridian.cut(to_lonlat(p.geometry, p.crs)) for p in polys]
                _write_ogr(partial, driver, geoms, records, "EPSG:4326", stem)
            elif driver is not None:
                _write_ogr(partial, driver, _in_crs(polys, crs), records, crs, stem)
            else:
                write_geoparquet(partial, _in_crs(polys, crs), records, crs)
        written.append(path)
    if stac:
        written.append(_stac_item(session, pos, polys, folder, stem, written))
    return written


def _records(session: Session, pos: Positives, polys: list[ResultPolygon],
             ) -> dict[str, np.ndarray]:
    n = len(polys)
    return {
        "polygon_id": np.arange(1, n + 1, dtype=np.int64),
        "product_id": np.asarray([p.product_id for p in polys], dtype=object),
        "label": np.asarray([session.concept] * n, dtype=object),
        "level": np.full(n, session.level, np.int32),
        "patch_count": np.asarray([p.patch_count for p in polys], np.int64),
        "area_ha": np.asarray([p.area_ha for p in polys], np.float64),
        "mean_score": np.asarray([p.mean_score for p in polys], np.float64),
        "session_id": np.asarray([session.session_id] * n, dtype=object),
        "model_version": np.asarray([pos.model_version] * n, dtype=object),
        "source": np.asarray([pos.source] * n, dtype=object),
        "threshold": np.full(n, np.nan if pos.threshold is None else pos.threshold),
    }


def _common_crs(polys: list[ResultPolygon]) -> str:
    from pyproj import CRS

    crss = {p.crs for p in polys}
    if len(crss) == 1:
        ref = CRS.from_user_input(next(iter(crss)))
        code = ref.to_epsg()
        return f"EPSG:{code}" if code else ref.to_wkt()
    return "EPSG:4326"


def _in_crs(polys: list[ResultPolygon], crs: str) -> list[Any]:
    """Native geometries when `crs` is the products' own, else lon/lat."""
    return [antimeridian.cut(to_lonlat(p.geometry, p.crs)) if crs == "EPSG:4326"
            else p.geometry for p in polys]


def _write_ogr(path: Path, driver: str, geoms: list[Any], records: dict[str, np.ndarray],
               crs: str, layer: str) -> None:
    pyogrio = require("pyogrio", "export", "writing polygons")
    import shapely

    kind = antimeridian.geometry_type(geoms)
    wkb = np.asarray(shapely.to_wkb(antimeridian.as_type(geoms, kind)), dtype=object)
    pyogrio.raw.write(str(path), wkb, list(records.values()), list(records), crs=crs,
                      geometry_type=kind, driver=driver, layer=layer)


def write_geoparquet(path: Path, geoms: list[Any], records: dict[str, np.ndarray],
                     crs: str) -> None:
    """GeoParquet 1.1: WKB in column `geometry`, the `geo` metadata with the CRS as
    PROJJSON (OGC:CRS84 for lon/lat), the geometry type and the bbox."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely
    from pyproj import CRS

    lonlat = crs == "EPSG:4326"
    ref = CRS.from_user_input("OGC:CRS84" if lonlat else crs)
    # across 180 degrees a geographic bbox runs west > east (GeoParquet 1.1, as RFC 7946)
    bounds = antimeridian.bbox(geoms) if lonlat else shapely.total_bounds(geoms).tolist()
    types = sorted({g.geom_type for g in geoms}) or ["Polygon"]
    geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": {
        "encoding": "WKB", "geometry_types": types, "crs": ref.to_json_dict(),
        "bbox": [float(v) for v in bounds]}}}
    cols = {k: pa.array(v.tolist() if v.dtype == object else v) for k, v in records.items()}
    cols["geometry"] = pa.array(shapely.to_wkb(geoms).tolist(), pa.binary())
    table = pa.table(cols)
    table = table.replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    pq.write_table(table, path)


def _stac_item(session: Session, pos: Positives, polys: list[ResultPolygon], folder: Path,
               stem: str, files: list[Path]) -> Path:
    """One STAC Item describing the export: what (label, polygons, area), from what
    (session, model version and kind, feature sets, threshold, products and their dates),
    when (created), and the files as assets. Validated before it is written."""
    import pystac

    bounds = antimeridian.bbox([to_lonlat(p.geometry, p.crs) for p in polys])
    dates = sorted(m.acquired for pid in session.product_ids
                   if (m := session.store.product(pid)) is not None and m.acquired)
    fitted = [r for r in session.rounds() if r.fitted]
    props: dict[str, Any] = {
        "created": utcnow().replace(tzinfo=dt.UTC).isoformat(),
        "eominer:label": session.concept, "eominer:session_id": session.session_id,
        "eominer:session_name": session.record.name,
        "eominer:model_version": pos.model_version,
        "eominer:model_kind": fitted[-1].model_kind if fitted else None,
        "eominer:feature_sets": session.feature_set_ids, "eominer:level": session.level,
        "eominer:source": pos.source, "eominer:threshold": pos.threshold,
        "eominer:products": session.product_ids, "eominer:polygons": len(polys),
        "eominer:patches": int(sum(p.patch_count for p in polys)),
        "eominer:area_ha": float(sum(p.area_ha for p in polys)),
    }
    start = dates[0] if dates else utcnow()
    end = dates[-1] if dates else start
    item = pystac.Item(
        id=stem, geometry=antimeridian.bbox_polygon(bounds).__geo_interface__, bbox=bounds,
        datetime=None,
        start_datetime=start.replace(tzinfo=dt.UTC),
        end_datetime=end.replace(tzinfo=dt.UTC), properties=props)
    for path in files:
        name = next(k for k, v in POLYGON_FORMATS.items() if v[0] == path.suffix)
        item.add_asset(name, pystac.Asset(
            href=path.name, media_type=POLYGON_FORMATS[name][2], roles=["data"],
            title=f"{session.concept} polygons ({name})"))
    dest = folder / f"{stem}.stac.json"
    item.set_self_href(str(dest.resolve()))
    item.validate()
    item.save_object(include_self_link=False, dest_href=str(dest))
    return dest
