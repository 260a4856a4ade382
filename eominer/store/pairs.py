"""SQL for product pairs (see eominer/store/schema.py, table `product_pairs`).

A change pair is two products of one place; its map (a COG, `layer_path`) is an overlay
the app draws, and its per-patch scores are a feature set on the first product's patches
(`params.feature_set_id` names it), so SQL and relevance feedback can use them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

from eominer.errors import StoreError
from eominer.store.base import StoreBase, utcnow

CHANGE_PAIR_KIND = "change"  # a change map's pair (`eominer change`)
# the parameters of a change pair's sets that name its dates (a fused pair's S1 dates too)
PAIR_KEYS = ("first", "second", "s1_first", "s1_second")

def pair_id(kind: str, first_id: str, second_id: str, method: str = "") -> str:
    """Stable id of a pair: same products, kind and method give the same row."""
    digest = hashlib.sha1(f"{kind}|{first_id}|{second_id}|{method}".encode()).hexdigest()
    return f"{kind}_{digest[:16]}"


class PairsMixin(StoreBase):
    def record_pair(
        self, kind: str, first_id: str, second_id: str, *, days_apart: float | None = None,
        overlap_fraction: float | None = None, layer_path: str | None = None,
        params: dict[str, Any] | None = None, method: str = "",
    ) -> str:
        """Insert or replace the pair's row; returns its pair_id."""
        for pid in (first_id, second_id):
            if not self.query("SELECT 1 FROM products WHERE product_id = ?", (pid,)):
                raise StoreError(
                    f"product {pid} is not in {self.url}: ingest it before recording a pair"
                )
        pid = pair_id(kind, first_id, second_id, method)
        row = pa.table({
            "pair_id": pa.array([pid], pa.string()),
            "kind": pa.array([kind], pa.string()),
            "first_id": pa.array([first_id], pa.string()),
            "second_id": pa.array([second_id], pa.string()),
            "days_apart": pa.array([days_apart], pa.float64()),
            "overlap_fraction": pa.array([overlap_fraction], pa.float64()),
            "layer_path": pa.array([layer_path], pa.string()),
            "params": pa.array([json.dumps(params or {}, sort_keys=True, default=str)],
                               pa.string()),
            "created": pa.array([utcnow()], pa.timestamp("us")),
        })
        self.upsert_arrow("product_pairs", row, keys=["pair_id"])
        return pid

    def pair(self, pair_id: str) -> dict[str, Any] | None:
        t = self.query_arrow("SELECT * FROM product_pairs WHERE pair_id = ?", (pair_id,))
        if not t.num_rows:
            return None
        row = t.to_pylist()[0]
        row["params"] = json.loads(row["params"])
        return row

    def pairs(self, kind: str | None = None, product_id: str | None = None) -> pa.Table:
        """Pairs, newest first; filtered by kind and by a product on either side."""
        where, params = [], []
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if product_id is not None:
            where.append("(first_id = ? OR second_id = ?)")
            params += [product_id, product_id]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return self.query_arrow(
            f"SELECT * FROM product_pairs{clause} ORDER BY created DESC, pair_id", params
        )

    def delete_pair(self, pair_id: str) -> None:
        self.execute("DELETE FROM product_pairs WHERE pair_id = ?", (pair_id,))

    def changed_patches(
        self, pair_id: str, level: int, min_share: float = 0.0, min_valid: float = 0.5,
    ) -> pa.Table:
        """Patches of the pair's first product at `level` whose changed share exceeds
        `min_share`, most changed first, with their bounding boxes, every column of the
        pair's change set (3 in sets of version 1, 5 since) and, when the pair has them,
        its index tails (`diff_tails`, change/tails.py)."""
        row = self.pair(pair_id)
        if row is None:
            raise StoreError(f"pair {pair_id} is not in {self.url}: run `eominer change` first")
        fid = row["params"].get("feature_set_id")
        fs = self.feature_set(fid) if fid else None  # type: ignore[attr-defined]
        if fs is None:
            raise StoreError(
                f"pair {pair_id} has no per-patch change scores: re-run `eominer change` "
                "on the two ingested products"
            )
        cols = "".join(f", f.{c}" for c in fs.columns)  # registered names: identifiers
        tid = row["params"].get("tails_feature_set_id")
        tails = self.feature_set(tid) if tid else None  # type: ignore[attr-defined]
        join = ""
        if tails is not None:
            cols += "".join(f", t.{c}" for c in tails.columns)
            join = f" LEFT JOIN {tails.table_name} t ON t.patch_id = f.patch_id"
        return self.query_arrow(
            f"SELECT p.patch_id, p.level, p.x_off, p.y_off, p.size_px, p.min_lon, p.min_lat, "
            f"p.max_lon, p.max_lat{cols} "
            f"FROM {fs.table_name} f JOIN patches p ON p.patch_id = f.patch_id{join} "
            # CAST: monetdbe binds a marker typed REAL (from the column) wrongly; DuckDB
            # compares REAL with a DOUBLE parameter in DOUBLE anyway, so its result is unchanged
            f"WHERE p.product_id = ? AND p.level = ? AND f.change_share > CAST(? AS DOUBLE) "
            f"AND f.change_valid >= CAST(? AS DOUBLE) ORDER BY f.change_share DESC, p.patch_id",
            (row["first_id"], level, min_share, min_valid),
        )
