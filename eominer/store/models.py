"""SQL for the `models` table (the encoder, the fusion net, saved session classifiers) and
for applying a saved classifier: its features read block by block, its scores written as
annotations.

Importable on Python 3.10 (the monetdbe side environment).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from eominer.store.base import StoreBase, utcnow


class ModelsMixin(StoreBase):
    def add_model(self, model_id: str, kind: str, path: str, params: dict[str, Any],
                  metrics: dict[str, Any], trained_on: list[Any]) -> None:
        with self.transaction():
            self.execute(
                "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?)",
                (model_id, kind, path, json.dumps(params, sort_keys=True, default=str),
                 json.dumps(metrics, sort_keys=True, default=str), json.dumps(trained_on),
                 utcnow()),
            )

    def update_model(self, model_id: str, params: dict[str, Any],
                     metrics: dict[str, Any]) -> None:
        """Replace a saved model's params and metrics (its threshold, republished)."""
        with self.transaction():
            self.execute("UPDATE models SET params = ?, metrics = ? WHERE model_id = ?",
                         (json.dumps(params, sort_keys=True, default=str),
                          json.dumps(metrics, sort_keys=True, default=str), model_id))

    def models(self, kind: str | None = None) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT model_id, kind, path, params, metrics, trained_on, created FROM models"
            + (" WHERE kind = ?" if kind else "") + " ORDER BY created, model_id",
            (kind,) if kind else (),
        )
        return [
            {"model_id": r[0], "kind": r[1], "path": r[2], "params": json.loads(r[3]),
             "metrics": json.loads(r[4]), "trained_on": json.loads(r[5]), "created": r[6]}
            for r in rows
        ]

    def latest_model(self, kind: str) -> dict[str, Any] | None:
        found = self.models(kind)
        return found[-1] if found else None

    def model(self, model_id: str) -> dict[str, Any] | None:
        return next((m for m in self.models() if m["model_id"] == model_id), None)

    # ---- applying a saved classifier ------------------------------------------------
    def feature_block(self, tables: Sequence[tuple[str, Sequence[str]]], product_id: str,
                      level: int, lo: int, hi: int) -> pa.Table:
        """patch_id and the feature columns of every table in `tables` ((table name,
        columns) each, names from the registry, never from users) for the patches of
        `product_id` at `level` with patch_id in [lo, hi] that have a row in every table.
        Rows in no particular order; columns named t<i>__<column>."""
        select = ", ".join(f"t{i}.{c} AS t{i}__{c}" for i, (_, cols) in enumerate(tables)
                           for c in cols)
        joins = " ".join(f"JOIN {name} t{i} ON t{i}.patch_id = t0.patch_id"
                         for i, (name, _) in enumerate(tables) if i)
        return self.query_arrow(
            f"SELECT t0.patch_id, {select} FROM {tables[0][0]} t0 {joins} "
            "JOIN patches p ON p.patch_id = t0.patch_id "
            "WHERE p.product_id = ? AND p.level = ? AND t0.patch_id >= ? AND t0.patch_id <= ? "
            "AND p.patch_id >= ? AND p.patch_id <= ?",  # both ranges: zone maps prune both
            (product_id, int(level), int(lo), int(hi), int(lo), int(hi)))

    def featured_patch_ids(self, table: str, product_id: str, level: int) -> np.ndarray:
        """Sorted ids of the patches of `product_id` at `level` with a row in `table`."""
        t = self.query_arrow(
            f"SELECT f.patch_id FROM {table} f JOIN patches p ON p.patch_id = f.patch_id "
            "WHERE p.product_id = ? AND p.level = ? ORDER BY f.patch_id",
            (product_id, int(level)))
        return t.column(0).to_numpy().astype(np.int64) if t.num_rows else np.empty(0, np.int64)

    def upsert_annotations(self, session_id: str, label_name: str, patch_ids: np.ndarray,
                           scores: np.ndarray, positive: np.ndarray, model_version: str,
                           source: str) -> int:
        """Insert or replace annotations (key patch, label, session) in bulk: a block
        written twice leaves one row per patch."""
        n = len(patch_ids)
        table = pa.table({
            "patch_id": pa.array(np.asarray(patch_ids, np.int64)),
            "label_name": pa.array([label_name] * n, pa.string()),
            "session_id": pa.array([session_id] * n, pa.string()),
            "score": pa.array(np.asarray(scores, np.float32)),
            "positive": pa.array(np.asarray(positive, bool)),
            "model_version": pa.array([model_version] * n, pa.string()),
            "source": pa.array([source] * n, pa.string()),
            "created": pa.array([utcnow()] * n, pa.timestamp("us")),
        })
        return self.upsert_arrow("annotations", table,
                                 keys=["patch_id", "label_name", "session_id"])

    def model_annotation_counts(self, model_version: str, source: str) -> tuple[int, int, int]:
        """(annotations, positive ones, products) written by `model_version` from
        `source` ('apply': `eominer apply`)."""
        n, n_pos, n_prod = self.query(
            # COUNT, not SUM: MonetDB sums to a 128-bit integer monetdbe cannot read
            "SELECT COUNT(*), COUNT(CASE WHEN a.positive THEN 1 END), "
            "COUNT(DISTINCT p.product_id) FROM annotations a JOIN patches p "
            "ON p.patch_id = a.patch_id WHERE a.model_version = ? AND a.source = ?",
            (model_version, source))[0]
        return int(n), int(n_pos), int(n_prod)
