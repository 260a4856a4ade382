"""Products and patches: the catalogue of what was ingested."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from eominer.store.base import StoreBase, utcnow

PRODUCT_COLUMNS = (
    "product_id", "sensor", "platform", "processing_level", "tile_id", "acquired", "crs",
    "footprint_wkt", "source_path", "ard_path", "width", "height", "bands", "transform",
    "source_hash", "ingested",
)


class CatalogMixin(StoreBase):
    def product_exists(self, product_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM products WHERE product_id = ?", (product_id,)))

    def product_hash(self, product_id: str) -> str | None:
        rows = self.query("SELECT source_hash FROM products WHERE product_id = ?", (product_id,))
        return rows[0][0] if rows else None

    def add_product(self, product: dict[str, Any], patches: pa.Table) -> None:
        """Record a product and its patch grid atomically (all rows or none)."""
        row = dict(product, ingested=utcnow())
        with self.transaction():
            self.execute(
                f"INSERT INTO products ({', '.join(PRODUCT_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in PRODUCT_COLUMNS)})",
                [row[c] for c in PRODUCT_COLUMNS],
            )
            self.insert_arrow("patches", patches)

    def delete_product(self, product_id: str) -> None:
        with self.transaction():
            self.execute("DELETE FROM patches WHERE product_id = ?", (product_id,))
            self.execute("DELETE FROM products WHERE product_id = ?", (product_id,))

    def next_patch_id(self) -> int:
        rows = self.query("SELECT MAX(patch_id) FROM patches")
        return int(rows[0][0] or 0) + 1

    def products(self) -> pa.Table:
        return self.query_arrow(
            "SELECT p.product_id, p.sensor, p.platform, p.processing_level, p.tile_id, "
            "p.acquired, p.width, p.height, p.crs, p.ard_path, p.source_path, p.bands, "
            "p.footprint_wkt, p.transform, "
            "(SELECT COUNT(*) FROM patches q WHERE q.product_id = p.product_id) AS patches "
            "FROM products p ORDER BY p.acquired, p.product_id"
        )

    def product(self, product_id: str) -> dict[str, Any] | None:
        t = self.query_arrow("SELECT * FROM products WHERE product_id = ?", (product_id,))
        return t.to_pylist()[0] if t.num_rows else None

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

    def patch_ids(self, product_ids: list[str], level: int) -> np.ndarray:
        ids: list[np.ndarray] = []
        for pid in product_ids:
            t = self.query_arrow(
                "SELECT patch_id FROM patches WHERE product_id = ? AND level = ? ORDER BY patch_id",
                (pid, level),
            )
            ids.append(t["patch_id"].to_numpy().astype(np.int64))
        return np.concatenate(ids) if ids else np.empty(0, np.int64)
