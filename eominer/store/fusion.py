"""SQL for S1/S2 fusion: the Sentinel-2 / Sentinel-1 product pairs (`product_pairs`,
kind 's1s2'; first_id = the S2 product, second_id = the S1 product, layer_path = the S1
backscatter resampled onto the S2 grid)."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from eominer.store.base import StoreBase, utcnow

FUSION_PAIR_KIND = "s1s2"
FUSED_SENSOR = "S1+S2"  # the `sensor` of a fused set (eominer.fusion.featureset)


class FusionMixin(StoreBase):
    def put_fusion_pair(
        self, pair_id: str, s2_id: str, s1_id: str, days_apart: float,
        overlap_fraction: float, layer_path: str, params: dict[str, Any],
    ) -> None:
        """Record (or replace) one S2/S1 pair; re-pairing the same products is idempotent."""
        table = pa.table({
            "pair_id": pa.array([pair_id], pa.string()),
            "kind": pa.array([FUSION_PAIR_KIND], pa.string()),
            "first_id": pa.array([s2_id], pa.string()),
            "second_id": pa.array([s1_id], pa.string()),
            "days_apart": pa.array([float(days_apart)], pa.float64()),
            "overlap_fraction": pa.array([float(overlap_fraction)], pa.float64()),
            "layer_path": pa.array([layer_path], pa.string()),
            "params": pa.array([json.dumps(params, sort_keys=True, default=str)], pa.string()),
            "created": pa.array([utcnow()], pa.timestamp("us")),
        })
        self.upsert_arrow("product_pairs", table, keys=["pair_id"])

    def fusion_pairs(self, s2_id: str | None = None) -> list[dict[str, Any]]:
        """The recorded S2/S1 pairs (optionally of one S2 product), oldest first."""
        sql = (
            "SELECT pair_id, first_id, second_id, days_apart, overlap_fraction, layer_path, "
            "params, created FROM product_pairs WHERE kind = ?"
        )
        params: list[Any] = [FUSION_PAIR_KIND]
        if s2_id is not None:
            sql += " AND first_id = ?"
            params.append(s2_id)
        rows = self.query(sql + " ORDER BY first_id, second_id", params)
        return [
            {"pair_id": r[0], "s2_id": r[1], "s1_id": r[2], "days_apart": r[3],
             "overlap_fraction": r[4], "layer_path": r[5], "params": json.loads(r[6]),
             "created": r[7]}
            for r in rows
        ]

    def delete_fusion_pair(self, pair_id: str) -> None:
        self.execute("DELETE FROM product_pairs WHERE pair_id = ? AND kind = ?",
                     (pair_id, FUSION_PAIR_KIND))

    def patch_boxes(self, product_id: str, level: int) -> pa.Table:
        """Patch windows and boxes of one product level (for matching co-located patches)."""
        return self.query_arrow(
            "SELECT patch_id, x_off, y_off, size_px, min_x, min_y, max_x, max_y, "
            "valid_fraction, cloud_fraction FROM patches WHERE product_id = ? AND level = ? "
            "ORDER BY patch_id",
            (product_id, level),
        )
