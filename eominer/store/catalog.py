"""Products and patches: the catalogue of what was ingested."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from eominer.errors import StoreError
from eominer.store.base import StoreBase, utcnow
from eominer.store.records import PatchWindow, Product

PRODUCT_COLUMNS = (
    "product_id", "sensor", "platform", "processing_level", "tile_id", "acquired", "crs",
    "footprint_wkt", "source_path", "ard_path", "width", "height", "bands", "transform",
    "source_hash", "ingested", "processing_baseline", "cloud_cover", "relative_orbit",
    "orbit_direction", "reflectance_offsets", "quantification", "cloud_mask", "sun_zenith",
    "sun_azimuth",
)


ADD_PRODUCT_ATTEMPTS = 5


def _renumbered(patches: pa.Table, first: int) -> pa.Table:
    """`patches` with ids shifted to start at `first`, parents with them."""
    delta = first - int(patches["patch_id"].to_numpy().min())
    out = patches
    for name in ("patch_id", "parent_id"):  # NULL parents stay NULL
        i = out.schema.get_field_index(name)
        out = out.set_column(i, name, pc.add(out[name], pa.scalar(delta, out.schema[i].type)))
    return out


def _is_id_conflict(exc: Exception, product: Product) -> bool:
    """A concurrent ingest took the same patch ids (or MonetDB aborted the commit for
    it); not the product itself being there already."""
    msg = str(exc).lower()
    if product.product_id.lower() in msg:
        return False
    return "concurrency" in msg or ("patch" in msg and ("primary key" in msg or "constraint" in msg
                                                        or "duplicate key" in msg))


class CatalogMixin(StoreBase):
    def product_exists(self, product_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM products WHERE product_id = ?", (product_id,)))

    def existing_products(self, product_ids: Sequence[str]) -> set[str]:
        """Those of `product_ids` that are in the database."""
        ids = list(product_ids)
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out.update(r[0] for r in self.query(
                f"SELECT product_id FROM products WHERE product_id IN "
                f"({', '.join('?' for _ in chunk)})", chunk))
        return out

    def add_product(self, product: Product, patches: pa.Table) -> pa.Table:
        """Record a product and its patch grid atomically (all rows or none); returns the
        patches as stored.

        Patch ids are checked against the table inside the insert's transaction: when
        another process took the ids the grid was numbered with (two ingests at once on a
        MonetDB server), the grid is renumbered after the highest id, parents included.
        A commit that still collides (MonetDB's optimistic concurrency) is retried."""
        row = dict(product.to_row(), ingested=utcnow())
        for attempt in range(1, ADD_PRODUCT_ATTEMPTS + 1):
            try:
                with self.transaction():
                    stored = patches
                    if self._ids_taken(patches):
                        stored = _renumbered(patches, self.next_patch_id())
                    self.execute(
                        f"INSERT INTO products ({', '.join(PRODUCT_COLUMNS)}) "
                        f"VALUES ({', '.join('?' for _ in PRODUCT_COLUMNS)})",
                        [row[c] for c in PRODUCT_COLUMNS],
                    )
                    self.insert_arrow("patches", stored)
                return stored
            except Exception as exc:
                if attempt == ADD_PRODUCT_ATTEMPTS or not _is_id_conflict(exc, product):
                    raise
        raise AssertionError("unreachable")

    def _ids_taken(self, patches: pa.Table) -> bool:
        if not patches.num_rows:
            return False
        ids = patches["patch_id"].to_numpy()
        rows = self.query("SELECT COUNT(*) FROM patches WHERE patch_id BETWEEN ? AND ?",
                          (int(ids.min()), int(ids.max())))
        return bool(rows[0][0])

    def delete_product(self, product_id: str) -> None:
        with self.transaction():
            self.execute("DELETE FROM patches WHERE product_id = ?", (product_id,))
            self.execute("DELETE FROM products WHERE product_id = ?", (product_id,))

    def next_patch_id(self) -> int:
        rows = self.query("SELECT MAX(patch_id) FROM patches")
        return int(rows[0][0] or 0) + 1

    def products(self, *, tiles: Sequence[str] = (), sensor: str | None = None,
                 since: dt.datetime | None = None, before: dt.datetime | None = None,
                 max_cloud: float | None = None) -> pa.Table:
        """The catalogue as one Arrow table (columnar: tables, CLI output, SQL-like use),
        oldest first; optionally only `tiles`, one `sensor`, acquired in [since, before),
        and with cloud cover at most `max_cloud` % (Sentinel-1 has no clouds: kept; an
        optical product of unknown cover is left out)."""
        given = [(sql, v) for sql, v in (
            ("p.sensor = ?", sensor or None), ("p.acquired >= ?", since),
            ("p.acquired < ?", before),
            ("(p.sensor = 'S1' OR p.cloud_cover <= ?)",
             None if max_cloud is None else float(max_cloud))) if v is not None]
        where = [sql for sql, _ in given]
        params: list[Any] = [v for _, v in given]
        if tiles:
            where.append(f"p.tile_id IN ({', '.join('?' * len(tiles))})")
            params += list(tiles)
        return self.query_arrow(
            "SELECT p.product_id, p.sensor, p.platform, p.processing_level, p.tile_id, "
            "p.acquired, p.width, p.height, p.crs, p.ard_path, p.source_path, p.bands, "
            "p.footprint_wkt, p.transform, p.processing_baseline, p.cloud_cover, "
            "p.relative_orbit, p.orbit_direction, p.reflectance_offsets, p.quantification, "
            "p.cloud_mask, p.sun_zenith, p.sun_azimuth, "
            "(SELECT COUNT(*) FROM patches q WHERE q.product_id = p.product_id) AS patches "
            "FROM products p" + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY p.acquired, p.product_id", params)

    def product_count(self) -> int:
        """How many products the catalogue holds (one aggregate: cheap to poll)."""
        return int(self.query("SELECT COUNT(*) FROM products")[0][0])

    def product_list(self) -> list[Product]:
        """Every product, oldest acquisition first, with its patch count."""
        return [Product.from_row(r) for r in self._product_rows()]

    def product(self, product_id: str) -> Product | None:
        """The product `product_id`, or None."""
        rows = self._product_rows(product_id)
        return Product.from_row(rows[0]) if rows else None

    def _product_rows(self, product_id: str | None = None) -> list[dict[str, Any]]:
        where = " WHERE p.product_id = ?" if product_id is not None else ""
        return self.query_arrow(
            "SELECT p.*, (SELECT COUNT(*) FROM patches q WHERE q.product_id = p.product_id) "
            f"AS patches FROM products p{where} ORDER BY p.acquired, p.product_id",
            (product_id,) if product_id is not None else (),
        ).to_pylist()

    def patches(self, product_id: str | None = None, level: int | None = None) -> pa.Table:
        where, params = [], []
        if product_id is not None:
            where.append("product_id = ?")
            params.append(product_id)
        if level is not None:
            where.append("level = ?")
            params.append(level)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return self.query_arrow(f"SELECT * FROM patches{clause} ORDER BY patch_id", params)

    def patch_windows(self, patch_ids: Sequence[int]) -> list[PatchWindow]:
        """The pixel windows of `patch_ids`, in the order given; raises StoreError naming
        the ids that are not in the database."""
        ids = [int(i) for i in patch_ids]
        if not ids:
            return []
        found = {int(r["patch_id"]): PatchWindow(
            int(r["patch_id"]), r["product_id"], int(r["x_off"]), int(r["y_off"]),
            int(r["size_px"])) for r in self.patches_by_id(ids).to_pylist()}
        missing = [i for i in ids if i not in found]
        if missing:
            raise StoreError(f"patch(es) {missing[:5]} are not in {self.url}: ingest their "
                             "products first (eominer ingest PATH)")
        return [found[i] for i in ids]

    def patches_by_id(self, patch_ids: Sequence[int]) -> pa.Table:
        """patch_id, product_id, x_off, y_off, size_px of `patch_ids`, by patch_id (ids
        not in the database are left out)."""
        ids = sorted({int(i) for i in patch_ids})
        parts = [self.query_arrow(
            "SELECT patch_id, product_id, x_off, y_off, size_px FROM patches WHERE patch_id "
            f"IN ({', '.join('?' for _ in part)}) ORDER BY patch_id", part)
            for s in range(0, len(ids), 1000) if (part := ids[s:s + 1000])]
        if not parts:
            return self.query_arrow("SELECT patch_id, product_id, x_off, y_off, size_px "
                                    "FROM patches WHERE 1 = 0")
        return pa.concat_tables(parts)

    def products_of_patches(self, patch_ids: Sequence[int]) -> list[str]:
        """The products that `patch_ids` belong to (unknown ids: none), sorted."""
        return sorted(set(self.patches_by_id(patch_ids)["product_id"].to_pylist()))

    def cloudy_patches(self, product_ids: Sequence[str], level: int, max_cloud: float) -> int:
        """How many of the products' patches at `level` have a cloud fraction above
        `max_cloud` (those a session's `max_cloud` leaves out)."""
        if not product_ids:
            return 0
        marks = ", ".join("?" for _ in product_ids)
        # as REAL, the column's type: 0.2 stored is not above 0.2 given
        return int(self.query(
            f"SELECT COUNT(*) FROM patches WHERE level = ? AND product_id IN ({marks}) "
            "AND cloud_fraction > CAST(? AS REAL)",
            [int(level), *product_ids, float(max_cloud)])[0][0])

    def patch_ids(self, product_ids: list[str], level: int) -> np.ndarray:
        ids: list[np.ndarray] = []
        for pid in product_ids:
            t = self.query_arrow(
                "SELECT patch_id FROM patches WHERE product_id = ? AND level = ? ORDER BY patch_id",
                (pid, level),
            )
            ids.append(t["patch_id"].to_numpy().astype(np.int64))
        return np.concatenate(ids) if ids else np.empty(0, np.int64)
