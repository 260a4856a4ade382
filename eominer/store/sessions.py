"""SQL for the mining tables: taxonomy, sessions, labels, rounds, annotations.

Every label is written in its own transaction the moment it is made (a crash loses
nothing that was clicked). Portable SQL only (DuckDB and MonetDB); importable on 3.10.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from eominer.errors import StoreError
from eominer.store.base import StoreBase, utcnow
from eominer.store.records import (
    SESSION_STATUSES,
    Label,
    RoundRecord,
    SessionParams,
    SessionRecord,
    dumps,
)

SESSION_COLUMNS = (
    "session_id", "name", "owner", "concept", "level", "product_ids", "feature_set_ids",
    "feature_signature", "model_kind", "strategy", "params", "status", "created", "updated",
)
ROUND_COLUMNS = (
    "session_id", "round", "model_kind", "strategy", "params", "n_labels", "n_positive",
    "n_negative", "seconds", "ranking_change", "precision_estimate", "queried", "created",
    "verify_threshold", "precision_low", "precision_high", "recall_estimate", "recall_low",
    "recall_high", "verified_n", "positives_estimate",
)
# what a round's quality check writes (schema version 5)
VERIFY_COLUMNS = ("verify_threshold", "precision_estimate", "precision_low", "precision_high",
                  "recall_estimate", "recall_low", "recall_high", "verified_n",
                  "positives_estimate")


def _marks(n: int) -> str:
    return ", ".join("?" for _ in range(n))


_SCOPE_COLUMNS = ("patch_id", "product_id", "parent_id", "x_off", "y_off", "size_px", "min_x",
                  "min_y", "max_x", "max_y", "min_lon", "min_lat", "max_lon", "max_lat",
                  "cloud_fraction")
_GRID_COLUMNS = ("row", "col")  # on request only: the cells of the level's grid


class SessionsMixin(StoreBase):
    # ---- taxonomy --------------------------------------------------------------
    def taxonomy(self) -> list[dict[str, Any]]:
        t = self.query_arrow(
            "SELECT label_name, parent, level, title, description, created_by FROM taxonomy "
            "ORDER BY level, label_name"
        )
        return t.to_pylist()

    def taxonomy_label(self, name: str) -> dict[str, Any] | None:
        t = self.query_arrow("SELECT * FROM taxonomy WHERE label_name = ?", (name,))
        return t.to_pylist()[0] if t.num_rows else None

    def put_taxonomy(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert or replace taxonomy entries (keyed by label_name), all or none."""
        if not rows:
            return 0
        cols = ("label_name", "parent", "level", "title", "description", "created_by")
        table = pa.table({
            "label_name": pa.array([r["label_name"] for r in rows], pa.string()),
            "parent": pa.array([r.get("parent") for r in rows], pa.string()),
            "level": pa.array([int(r["level"]) for r in rows], pa.int32()),
            "title": pa.array([r["title"] for r in rows], pa.string()),
            "description": pa.array([r.get("description") for r in rows], pa.string()),
            "created_by": pa.array([r.get("created_by") for r in rows], pa.string()),
        })
        return self.upsert_arrow("taxonomy", table.select(list(cols)), keys=["label_name"])

    # ---- sessions --------------------------------------------------------------
    def insert_session(self, record: SessionRecord) -> None:
        row = record.to_row()
        with self.transaction():
            self.execute(
                f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) "
                f"VALUES ({_marks(len(SESSION_COLUMNS))})",
                [row[c] for c in SESSION_COLUMNS],
            )

    def session(self, session_id: str) -> SessionRecord | None:
        """The session `session_id`, or None."""
        t = self.query_arrow("SELECT * FROM sessions WHERE session_id = ?", (session_id,))
        return SessionRecord.from_row(t.to_pylist()[0]) if t.num_rows else None

    def session_list(self, owner: str | None = None) -> list[SessionRecord]:
        """Sessions (of `owner`, or everyone's), oldest first."""
        t = self.query_arrow(
            "SELECT * FROM sessions" + (" WHERE owner = ?" if owner else "")
            + " ORDER BY created, session_id",
            (owner,) if owner else (),
        )
        return [SessionRecord.from_row(r) for r in t.to_pylist()]

    def session_activity(self) -> dict[str, tuple[int, int, Any]]:
        """Per session: (labels, rounds, last label time or None)."""
        rows = self.query(
            "SELECT s.session_id, "
            "(SELECT COUNT(*) FROM labels l WHERE l.session_id = s.session_id), "
            "(SELECT COUNT(*) FROM rounds r WHERE r.session_id = s.session_id), "
            "(SELECT MAX(l.labelled_at) FROM labels l WHERE l.session_id = s.session_id) "
            "FROM sessions s"
        )
        return {r[0]: (int(r[1]), int(r[2]), r[3]) for r in rows}

    def update_session(
        self, session_id: str, *, name: str | None = None, status: str | None = None,
        feature_signature: str | None = None, model_kind: str | None = None,
        strategy: str | None = None, params: SessionParams | None = None,
    ) -> None:
        """Change the given columns (and `updated`)."""
        if status is not None and status not in SESSION_STATUSES:
            raise ValueError(f"session status must be one of {SESSION_STATUSES}, "
                             f"got {status!r}")
        values: dict[str, Any] = {
            "name": name, "status": status, "feature_signature": feature_signature,
            "model_kind": model_kind, "strategy": strategy,
            "params": None if params is None else dumps(params.to_dict()),
        }
        names = sorted(k for k, v in values.items() if v is not None)
        sets = "".join(f"{k} = ?, " for k in names) + "updated = ?"
        with self.transaction():
            self.execute(
                f"UPDATE sessions SET {sets} WHERE session_id = ?",
                [values[k] for k in names] + [utcnow(), session_id],
            )

    def delete_session(self, session_id: str) -> dict[str, int]:
        """Delete a session with its labels, rounds and published annotations, in one
        transaction; returns the rows deleted per table. Saved models keep their rows
        (their training labels are stored with them)."""
        counts: dict[str, int] = {}
        with self.transaction():
            for table in ("labels", "rounds", "annotations", "sessions"):
                counts[table] = int(self.query(
                    f"SELECT COUNT(*) FROM {table} WHERE session_id = ?", (session_id,))[0][0])
                self.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
        return counts

    def _require_session(self, session_id: str) -> None:
        """Inside a write's transaction: a session deleted meanwhile (from another window
        or the CLI) takes no more rows, which nothing would ever read."""
        if not self.query("SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)):
            raise StoreError(f"session {session_id} is not in {self.url}: it was deleted "
                             "(eominer session delete, or the app's Sessions tab); nothing "
                             "was saved: open another session")

    # ---- labels ----------------------------------------------------------------
    def put_label(
        self, session_id: str, patch_id: int, user: str, label: int, round_no: int,
        purpose: str = "train", at: dt.datetime | None = None,
    ) -> dt.datetime:
        """One label, in its own transaction; a user's new label replaces their old one."""
        when = at or utcnow()
        with self.transaction():
            self._require_session(session_id)
            self.execute(
                "DELETE FROM labels WHERE session_id = ? AND patch_id = ? AND user_name = ?",
                (session_id, int(patch_id), user),
            )
            self.execute(
                "INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session_id, int(patch_id), user, int(label), int(round_no), purpose, when),
            )
            self.execute("UPDATE sessions SET updated = ? WHERE session_id = ?",
                         (when, session_id))
        return when

    def put_labels(
        self, session_id: str, patch_ids: Sequence[int], user: str, label: int,
        round_no: int, purpose: str = "train", at: dt.datetime | None = None,
    ) -> dt.datetime:
        """The same answer for many patches (a bulk correction), in one transaction:
        all of them are saved or none. A user's new label replaces their old one."""
        when = at or utcnow()
        ids = np.unique(np.asarray(patch_ids, np.int64))
        with self.transaction():
            self._require_session(session_id)
            for start in range(0, len(ids), 1000):  # bound parameters, in chunks
                chunk = [int(i) for i in ids[start:start + 1000]]
                self.execute(
                    "DELETE FROM labels WHERE session_id = ? AND user_name = ? AND patch_id IN ("
                    + ", ".join("?" * len(chunk)) + ")", (session_id, user, *chunk))
            n = len(ids)
            self.insert_arrow("labels", pa.table({
                "session_id": pa.array([session_id] * n, pa.string()),
                "patch_id": pa.array(ids, pa.int64()),
                "user_name": pa.array([user] * n, pa.string()),
                "label": pa.array(np.full(n, label, np.int16), pa.int16()),
                "round": pa.array(np.full(n, round_no, np.int32), pa.int32()),
                "purpose": pa.array([purpose] * n, pa.string()),
                "labelled_at": pa.array([when] * n, pa.timestamp("us")),
            }))
            self.execute("UPDATE sessions SET updated = ? WHERE session_id = ?",
                         (when, session_id))
        return when

    def delete_label(self, session_id: str, patch_id: int, user: str) -> None:
        with self.transaction():
            self.execute(
                "DELETE FROM labels WHERE session_id = ? AND patch_id = ? AND user_name = ?",
                (session_id, int(patch_id), user),
            )

    def session_labels(self, session_id: str) -> pa.Table:
        """All labels of a session, oldest first (columns of the `labels` table)."""
        return self.query_arrow(
            "SELECT patch_id, user_name, label, round, purpose, labelled_at FROM labels "
            "WHERE session_id = ? ORDER BY labelled_at, patch_id, user_name",
            (session_id,),
        )

    def last_label(self, session_id: str, user: str) -> Label | None:
        """`user`'s most recent label in the session, or None."""
        t = self.query_arrow(
            "SELECT patch_id, user_name, label, round, purpose, labelled_at FROM labels "
            "WHERE session_id = ? AND user_name = ? ORDER BY labelled_at DESC, patch_id DESC "
            "LIMIT 1",
            (session_id, user),
        )
        return Label.from_row(t.to_pylist()[0], session_id) if t.num_rows else None

    # ---- rounds ----------------------------------------------------------------
    def insert_round(self, record: RoundRecord) -> None:
        row = record.to_row()
        with self.transaction():
            self._require_session(record.session_id)
            self.execute(
                f"INSERT INTO rounds ({', '.join(ROUND_COLUMNS)}) "
                f"VALUES ({_marks(len(ROUND_COLUMNS))})",
                [row[c] for c in ROUND_COLUMNS],
            )
            self.execute("UPDATE sessions SET updated = ? WHERE session_id = ?",
                         (row["created"], row["session_id"]))

    def set_round_verification(self, session_id: str, round_no: int,
                               values: dict[str, Any]) -> None:
        """Store the quality check of a round (precision, recall, their intervals...; the
        keys of VERIFY_COLUMNS, missing ones become NULL) in one transaction."""
        unknown = set(values) - set(VERIFY_COLUMNS)
        if unknown:
            raise ValueError(f"not a verification column of rounds: {sorted(unknown)}; "
                             f"expected some of {VERIFY_COLUMNS}")
        cells = [None if values.get(c) is None else
                 (int(values[c]) if c == "verified_n" else float(values[c]))
                 for c in VERIFY_COLUMNS]
        with self.transaction():
            self.execute(
                "UPDATE rounds SET " + ", ".join(f"{c} = ?" for c in VERIFY_COLUMNS)
                + " WHERE session_id = ? AND round = ?",
                [*cells, session_id, int(round_no)])

    def round_count(self, session_id: str) -> int:
        """How many rounds the session has: what a label click and a new round need,
        without reading and parsing every round's row."""
        (n,), = self.query("SELECT COUNT(*) FROM rounds WHERE session_id = ?", (session_id,))
        return int(n)

    def session_rounds(self, session_id: str) -> list[RoundRecord]:
        """The session's rounds, first first."""
        t = self.query_arrow(
            "SELECT * FROM rounds WHERE session_id = ? ORDER BY round", (session_id,)
        )
        return [RoundRecord.from_row(r) for r in t.to_pylist()]

    # ---- scope -----------------------------------------------------------------
    def scope_patches(self, product_ids: Sequence[str], level: int,
                      columns: Sequence[str] | None = None) -> pa.Table:
        """Patch geometry (and cloud fraction) of a session's scope, ordered by patch_id;
        `columns`: only these (of the default list, or `row`/`col`, the grid cells; a
        10M-patch scope's full rows are ~1 GB)."""
        cols = list(_SCOPE_COLUMNS) if columns is None else [
            c for c in (*_SCOPE_COLUMNS, *_GRID_COLUMNS) if c in set(columns)]
        if not product_ids:
            return self.query_arrow(f"SELECT {', '.join(cols)} FROM patches WHERE 1 = 0")
        # sorted here, not by ORDER BY: the rows mostly come in patch_id order already
        # (DuckDB keeps the insertion order), and the sort of 10M rows costs 1.3-4.5 s of
        # CPU against 0.3-0.6 s for the scan
        t = self.query_arrow(
            f"SELECT {', '.join(cols)} FROM patches "
            f"WHERE level = ? AND product_id IN ({_marks(len(product_ids))})",
            [int(level), *product_ids],
        )
        ids = t["patch_id"].to_numpy()
        if len(ids) > 1 and not bool((ids[1:] > ids[:-1]).all()):
            t = t.take(pa.array(np.argsort(ids, kind="stable")))
        return t

    def patch_levels(self, product_ids: Sequence[str]) -> list[int]:
        if not product_ids:
            return []
        rows = self.query(
            f"SELECT DISTINCT level FROM patches WHERE product_id IN ({_marks(len(product_ids))}) "
            "ORDER BY level",
            list(product_ids),
        )
        return [int(r[0]) for r in rows]

    # ---- annotations -----------------------------------------------------------
    def write_annotations(
        self, session_id: str, label_name: str, patch_ids: np.ndarray, scores: np.ndarray,
        positive: np.ndarray, model_version: str, source: Sequence[str] | np.ndarray,
    ) -> int:
        """Replace this session's annotations for `label_name` in one transaction. Rows
        that `eominer apply` wrote (source 'apply': other products scored by the saved
        model) are kept, except for the patches written here."""
        n = len(patch_ids)
        now = utcnow()
        table = pa.table({
            "patch_id": pa.array(np.asarray(patch_ids, np.int64)),
            "label_name": pa.array([label_name] * n, pa.string()),
            "session_id": pa.array([session_id] * n, pa.string()),
            "score": pa.array(np.asarray(scores, np.float32)),
            "positive": pa.array(np.asarray(positive, bool)),
            "model_version": pa.array([model_version] * n, pa.string()),
            "source": pa.array(list(source), pa.string()),
            "created": pa.array([now] * n, pa.timestamp("us")),
        })
        with self.transaction():
            self.execute(
                "DELETE FROM annotations WHERE session_id = ? AND label_name = ? "
                "AND source <> 'apply'", (session_id, label_name),
            )
            applied = self.query(
                "SELECT COUNT(*) FROM annotations WHERE session_id = ? AND label_name = ?",
                (session_id, label_name))[0][0]
            if applied:
                self.upsert_arrow("annotations", table,
                                  keys=["patch_id", "label_name", "session_id"])
            else:
                self.insert_arrow("annotations", table)
        return n

    def annotated_patches(
        self, label_name: str, min_score: float = 0.0,
        acquired_after: dt.datetime | None = None,
    ) -> pa.Table:
        """Patches annotated with `label_name` above `min_score` (optionally by date)."""
        sql = (
            "SELECT a.patch_id, a.score, a.session_id, a.model_version, p.product_id, "
            "p.level, pr.acquired FROM annotations a "
            "JOIN patches p ON p.patch_id = a.patch_id "
            "JOIN products pr ON pr.product_id = p.product_id "
            # CAST: monetdbe binds a marker typed REAL (from the column) wrongly; DuckDB
            # compares REAL with a DOUBLE parameter in DOUBLE anyway, so its result is unchanged
            "WHERE a.label_name = ? AND a.score > CAST(? AS DOUBLE)"
        )
        params: list[Any] = [label_name, float(min_score)]
        if acquired_after is not None:
            sql += " AND pr.acquired > ?"
            params.append(acquired_after)
        return self.query_arrow(sql + " ORDER BY a.score DESC, a.patch_id", params)

    def published_annotations(self, session_id: str, label: str) -> pa.Table:
        """patch_id, score, positive, model_version of what `session_id` published as
        `label`, by patch_id."""
        return self.query_arrow(
            "SELECT patch_id, score, positive, model_version FROM annotations "
            "WHERE session_id = ? AND label_name = ? ORDER BY patch_id", (session_id, label))

    def last_published(self, session_id: str, label: str) -> tuple[str, Any] | None:
        """(model version, when) of the session's latest annotations of `label`, its
        own publish or `eominer apply` of its model; None when it never published."""
        rows = self.query(
            "SELECT model_version, MAX(created) AS t FROM annotations WHERE session_id = ? "
            "AND label_name = ? GROUP BY model_version ORDER BY t DESC LIMIT 1",
            (session_id, label))
        return (str(rows[0][0]), rows[0][1]) if rows else None

    def positive_annotations(self, session_id: str) -> np.ndarray:
        """Patch ids a session published as positive (the cascade carries these down)."""
        t = self.query_arrow(
            "SELECT patch_id FROM annotations WHERE session_id = ? AND positive "
            "ORDER BY patch_id", (session_id,),
        )
        return t["patch_id"].to_numpy().astype(np.int64)

