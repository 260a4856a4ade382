"""SQL for the `models` table: trained models (the encoder) and their training metadata."""

from __future__ import annotations

import json
from typing import Any

from eominer.store.base import StoreBase, utcnow


class ModelsMixin(StoreBase):
    def add_model(self, model_id: str, kind: str, path: str, params: dict[str, Any],
                  metrics: dict[str, Any], trained_on: list[str]) -> None:
        with self.transaction():
            self.execute(
                "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?)",
                (model_id, kind, path, json.dumps(params, sort_keys=True, default=str),
                 json.dumps(metrics, sort_keys=True, default=str), json.dumps(trained_on),
                 utcnow()),
            )

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
