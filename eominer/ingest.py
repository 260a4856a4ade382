"""Ingest: products on disk -> one ARD COG each + a product row + its patch grid.

All or nothing per product: the COG is written to a temporary name, the database rows in
one transaction, and the COG is renamed into place only after the commit. A product
already in the database with the same sources is skipped (idempotent).

Crops: datasets such as OSCD cut several scenes out of one granule, so two inputs can
carry the same product id with different extents. The first keeps the id; another crop
gets a short hash of its extent appended (`<id>_crop1a2b3c`). The same id with
the same extent but other files is refused: that is another copy, not another crop.
Another id with the same sensor, level, tile, acquisition time and extent (a SAFE and
its own IMG_DATA folder; for Sentinel-1, with no tile, the same platform: a SAFE and its
STAC item) is the same scene: reported as already ingested under the existing id,
nothing written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from shapely.geometry import box, shape

from eominer.domain import SourceProduct
from eominer.errors import EominerError, ProductReadError
from eominer.grid import DEFAULT_LEVELS, expected_patch_count, patch_grid
from eominer.io.clouds import CloudMasks, product_cloud_masks
from eominer.io.discover import discover
from eominer.io.parts import write_ard
from eominer.io.read import Grid, product_grid
from eominer.store.records import Product
from eominer.workspace import ard_dir, claim, settle

if TYPE_CHECKING:
    from eominer.store import Store


@dataclass(frozen=True)
class IngestResult:
    product_id: str
    sensor: str
    acquired: str
    patches: int
    status: str  # "ingested" | "already ingested"
    ard_path: str
    # set when the input is another copy of a product already ingested under another id
    # (a SAFE and its IMG_DATA folder): the input's own id; product_id is the existing one
    same_scene_as: str | None = None
    # where the patches' cloud fractions come from (products.cloud_mask; None: none) and
    # why (the reason when there is none)
    cloud_mask: str | None = None
    cloud_note: str = ""


def source_hash(product: SourceProduct) -> str:
    """Identity of the sources: band file names and sizes (not mtimes: copies keep it)."""
    h = hashlib.sha1()
    for name, src in sorted(product.bands.items()):
        label = src.path if src.path.startswith(("/vsicurl/", "/vsis3/")) else Path(src.path).name
        h.update(f"{name}:{label}:{src.index}:{_size(src.path)};".encode())
    return h.hexdigest()


def _size(path: str) -> int:
    """Size of a band file, also inside a zipped SAFE (/vsizip/archive.zip/inner)."""
    if path.startswith(("/vsicurl/", "/vsis3/")):
        return -1  # a remote asset: its URL (in the hash) is its identity
    if path.startswith("/vsizip/"):
        import zipfile

        rest = path.removeprefix("/vsizip/")
        archive, _, inner = rest.partition(".zip/")
        with zipfile.ZipFile(archive + ".zip") as z:
            return z.getinfo(inner).file_size
    return os.path.getsize(path)


def footprint_wkt(grid_crs: str, transform: Sequence[float], width: int, height: int) -> str:
    from rasterio.crs import CRS
    from rasterio.warp import transform_geom

    a, _, c, _, e, f = transform[:6]
    xs = (c, c + a * width)
    ys = (f, f + e * height)
    geom = box(min(xs), min(ys), max(xs), max(ys))
    wgs = transform_geom(CRS.from_wkt(grid_crs), "EPSG:4326", geom.__geo_interface__,
                         precision=7)
    return shape(wgs).wkt


def ingest_product(
    store: Store, product: SourceProduct, levels: Sequence[int] = DEFAULT_LEVELS,
    progress: Callable[[str], None] | None = None,
) -> IngestResult:
    """Ingest one product in this process (the ingest job runs the same steps as tasks:
    compute/ingest.py)."""
    target = resolve(store, product)
    if isinstance(target, IngestResult):
        if not target.same_scene_as:  # killed after its commit: the COG is still staged
            settle(Path(target.ard_path))
        return target
    product = target
    name = claim(ard_dir() / f"{product.product_id}.tif")
    try:
        grid, valid = write_ard(product, name.staged, progress)
        patches, clouds = product_patches(product, grid, valid, levels,
                                          store.next_patch_id(), name.staged)
        name.committing()
        store.add_product(product_record(product, grid, name.dest, clouds), patches)
        name.staged.replace(name.dest)
    finally:
        name.release()
    return ingested(product, patches.num_rows, name.dest, clouds)


def resolve(store: Store, product: SourceProduct) -> SourceProduct | IngestResult:
    """What ingesting `product` means given the database: the product to write (under a
    crop id when its id is taken by another extent), or the result when there is
    nothing to write (already ingested, or the same scene under another id)."""
    digest = source_hash(product)
    row = store.product(product.product_id)
    if row is not None:
        known = row.source_hash
        if known != digest and _extent(product) != _row_extent(row):
            return resolve(store, as_crop(product))
        if known != digest:
            raise ProductReadError(
                f"product {product.product_id} is already ingested from other files "
                f"({row.source_path}) with the same extent: that is another copy of it, "
                f"not a new product; ingest one copy only, or use another database (--db)"
            )
        return IngestResult(product.product_id, product.sensor, _acquired(product),
                            row.n_patches or 0, "already ingested", row.ard_path)
    twin = _same_scene(store, product)
    if twin is not None:
        return IngestResult(twin.product_id, product.sensor, _acquired(product),
                            twin.n_patches or 0, "already ingested", twin.ard_path,
                            same_scene_as=product.product_id)
    return product


def product_patches(product: SourceProduct, grid: Grid, valid: np.ndarray,
                    levels: Sequence[int], first_id: int,
                    ard: str | Path) -> tuple[pa.Table, CloudMasks]:
    """The product's patch rows, ids from `first_id`, with their cloud fractions (from
    the product's masks, or from its ARD at `ard`: eominer.io.clouds), and the masks'
    source. No database access: the ingest job computes them in a worker."""
    clouds = product_cloud_masks(product, grid, valid, ard).measured(valid)
    patches = patch_grid(grid.width, grid.height, grid.transform, grid.crs_wkt, valid,
                         levels, product.product_id, first_id, clouds.masks)
    assert patches.num_rows == expected_patch_count(grid.width, grid.height, levels)
    return patches, clouds


def product_record(product: SourceProduct, grid: Grid, dest: Path,
                   clouds: CloudMasks) -> Product:
    """The `products` row of a product written at `dest`. Its cloud cover is the
    metadata's; without metadata, the share its cloud mask measured (`clouds.cover`)."""
    columns = _metadata_columns(product)
    if columns.get("cloud_cover") is None and clouds.cover is not None:
        columns["cloud_cover"] = clouds.cover
    return Product.create(
        product_id=product.product_id, sensor=product.sensor,
        platform=product.platform, processing_level=product.processing_level,
        tile_id=product.tile_id, acquired=product.acquired, crs=grid.crs_wkt,
        footprint_wkt=footprint_wkt(grid.crs_wkt, grid.transform, grid.width, grid.height),
        source_path=str(Path(product.source_path).resolve())
        if not product.source_path.startswith("/vsi") else product.source_path,
        ard_path=str(dest), width=grid.width, height=grid.height,
        bands=list(product.bands), transform=grid.transform, source_hash=source_hash(product),
        cloud_mask=clouds.source, **columns,
    )


def ingested(product: SourceProduct, patches: int, dest: Path,
             clouds: CloudMasks) -> IngestResult:
    return IngestResult(product.product_id, product.sensor, _acquired(product), patches,
                        "ingested", str(dest), cloud_mask=clouds.source,
                        cloud_note=clouds.note)


def _acquired(product: SourceProduct) -> str:
    return product.acquired.isoformat(sep=" ") if product.acquired else ""


def _metadata_columns(product: SourceProduct) -> dict[str, object]:
    """The `products` columns of the product's S2 metadata, or an S1 SAFE's orbit (empty
    without either)."""
    mtd = product.s2_metadata
    if mtd is None:
        orbit = product.extra.get("relative_orbit")
        return {"relative_orbit": int(orbit), "orbit_direction": product.extra.get(
            "orbit_direction") or None} if orbit else {}
    return {
        "processing_baseline": mtd.processing_baseline, "cloud_cover": mtd.cloud_cover,
        "relative_orbit": mtd.relative_orbit, "orbit_direction": mtd.orbit_direction,
        "reflectance_offsets": {b: mtd.offset(b) for b in product.bands},
        "quantification": mtd.quantification, "sun_zenith": mtd.sun_zenith,
        "sun_azimuth": mtd.sun_azimuth,
    }


def ingest_paths(
    store: Store, paths: Sequence[str | Path], levels: Sequence[int] = DEFAULT_LEVELS,
    progress: Callable[[str], None] | None = None, bands: Sequence[str] | None = None,
) -> list[IngestResult]:
    """Plan every input first (so a bad path fails before anything is written), then
    ingest the products one by one. `bands` names the bands of multi-band GeoTIFF
    inputs in their file order (`--bands`; see eominer.io.discover)."""
    return [ingest_product(store, prod, levels, progress)
            for prod in plan_products(paths, bands)]


def plan_products(paths: Sequence[str | Path],
                  bands: Sequence[str] | None = None) -> list[SourceProduct]:
    """The products found under `paths`, crops of one granule under their own ids; two
    inputs that are the same product (same id and extent, other files) are refused."""
    products: list[SourceProduct] = []
    for p in paths:
        products.extend(discover(p, bands))
    seen: dict[str, SourceProduct] = {}
    unique: list[SourceProduct] = []
    for prod in products:
        other = seen.get(prod.product_id)
        if other is not None and other.source_path != prod.source_path:
            if _extent(other) == _extent(prod):
                raise EominerError(
                    f"two inputs are the same product {prod.product_id} (same extent): "
                    f"{other.source_path} and {prod.source_path}; ingest one of them"
                )
            prod = as_crop(prod)
        seen[prod.product_id] = prod
        unique.append(prod)
    return unique


def _same_scene(store: Store, product: SourceProduct) -> Product | None:
    """A product already ingested under another id that is this one (`same_scene`)."""
    scene = _scene(product)
    if scene is None:
        return None
    rows = [r for r in store.product_list() if _scene(r) == scene]
    if not rows:
        return None
    extent = _extent(product)
    return next((r for r in rows if _row_extent(r) == extent), None)


def same_scene(a: SourceProduct, b: SourceProduct) -> bool:
    """Two inputs are one scene: same sensor, level, tile, acquisition time and 10 m
    extent (a SAFE and its IMG_DATA folder, a product and its renamed band folder);
    never when they lack a tile or time."""
    scene = _scene(a)
    return scene is not None and scene == _scene(b) and _extent(a) == _extent(b)


def _scene(product: SourceProduct | Product) -> tuple | None:
    """What names a scene whatever the catalogue called it: an S2 granule by its MGRS
    tile, an S1 slice (no tile) by its platform, as one satellite starts one slice at a
    time (a SAFE and Planetary Computer's item of it, whose id drops the SAFE's CRC)."""
    if product.acquired is None:
        return None
    if product.tile_id:
        return product.sensor, product.processing_level, product.tile_id, product.acquired
    if product.sensor == "S1" and product.platform:
        return product.sensor, product.processing_level, product.platform, product.acquired
    return None


def _extent(product: SourceProduct) -> tuple[float, float, int, int]:
    """Upper-left corner and size of the product's 10 m grid."""
    g = product_grid(product)
    return round(g.transform[2], 3), round(g.transform[5], 3), g.width, g.height


def _row_extent(row: Product) -> tuple[float, float, int, int]:
    t = row.transform
    return round(t[2], 3), round(t[5], 3), row.width, row.height


def as_crop(product: SourceProduct) -> SourceProduct:
    """The product under a crop id: its id plus a short hash of its extent (corners in
    degrees or metres do not make readable, collision-free names)."""
    tag = hashlib.sha1(repr(_extent(product)).encode()).hexdigest()[:6]
    return replace(product, product_id=f"{product.product_id}_crop{tag}")
