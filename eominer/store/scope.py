"""SQL of scopes and searches: the analyst's WHERE over the view `scope_rows` (run on the
read-only user-SQL path), patch boxes for an area of interest, and saved search results.

The WHERE is the only user text that reaches SQL unbound: it goes through
`check_read_only` as part of the whole statement and runs on the reader (rolled back,
timed out, no file access on DuckDB). Everything else is a bound parameter.
Importable on Python 3.10 (the monetdbe side environment).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from eominer.errors import ReadOnlySQLError, UserSQLError
from eominer.store.base import SYNTAX_ERROR, StoreBase, _strip_strings, check_read_only
from eominer.store.schema import SCOPE_ROWS_COLUMNS, SCOPE_ROWS_PRODUCT_COLUMNS

BOX_COLUMNS = ("patch_id", "product_id", "min_lon", "min_lat", "max_lon", "max_lat")


def check_where(where: str) -> str:
    """The text of a scope WHERE (no `WHERE` keyword), or a UserSQLError saying what is
    wrong with it. Its statement is checked again as a whole by `check_read_only`."""
    text = (where or "").strip()
    if text.lower().startswith("where "):
        text = text[6:].strip()
    if not text:
        raise UserSQLError("empty WHERE: give a condition over scope_rows, e.g. "
                           "\"cloud_fraction < 0.1\" (columns: docs/schema.md)")
    bare = _strip_strings(text)
    if "?" in bare:
        raise UserSQLError("the WHERE has a '?' parameter marker: write the values in it, "
                           "e.g. acquired >= DATE '2017-01-01'")
    depth = 0
    for ch in bare:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            break
    if depth:
        raise UserSQLError(f"unbalanced parentheses in the WHERE {text!r}: close each '('")
    return text


def _marks(n: int) -> str:
    return ", ".join("?" for _ in range(n))


class ScopeMixin(StoreBase):
    def where_patch_ids(self, where: str, level: int, product_ids: Sequence[str] | None = None,
                        timeout_s: float = 60.0) -> np.ndarray:
        """Sorted ids of the patches of `level` (in `product_ids`, or all products) for
        which the user's `where` over `scope_rows` holds, on the read-only path."""
        cond = check_where(where)
        sql = "SELECT patch_id FROM scope_rows WHERE level = ?"
        params: list[Any] = [int(level)]
        if product_ids is not None:
            if not product_ids:
                return np.empty(0, np.int64)
            sql += f" AND product_id IN ({_marks(len(product_ids))})"
            params += list(product_ids)
        # own lines: a `--` comment in the user's text cannot swallow the parenthesis
        sql += f" AND (\n{cond}\n) ORDER BY patch_id"
        try:
            text = check_read_only(sql)
            t = self.read_only_arrow(text, params, timeout_s)
        except (ReadOnlySQLError, UserSQLError) as exc:
            if isinstance(exc, UserSQLError) and SYNTAX_ERROR.search(str(exc)):
                # the parenthesis around the condition is then in the message ("near
                # ')'"), which the user never typed: the condition alone says where (on
                # one line: the messages keep their first line only)
                try:
                    self.read_only_arrow(f"SELECT COUNT(*) FROM scope_rows WHERE {cond}",
                                         (), timeout_s)
                except UserSQLError as own:
                    exc = own
            # the view's columns from the schema, not from a query: after a failed
            # statement MonetDB refuses any other until the transaction is rolled back
            names = ", ".join((*SCOPE_ROWS_COLUMNS, *SCOPE_ROWS_PRODUCT_COLUMNS))
            raise type(exc)(f"the WHERE {cond!r} over scope_rows (columns: {names}; "
                            f"docs/schema.md): {exc}") from exc
        return t.column(0).to_numpy().astype(np.int64) if t.num_rows else np.empty(0, np.int64)

    def lonlat_boxes(self, level: int, product_ids: Sequence[str] | None = None,
                    bbox: tuple[float, float, float, float] | None = None) -> pa.Table:
        """patch_id, product_id and the WGS84 box of the patches of `level` (in
        `product_ids`, or all), ordered by patch_id; with `bbox` (lon/lat), only those whose
        box meets it (the cheap prefilter before an exact polygon test)."""
        sql = f"SELECT {', '.join(BOX_COLUMNS)} FROM patches WHERE level = ?"
        params: list[Any] = [int(level)]
        if product_ids is not None:
            if not product_ids:
                sql += " AND 1 = 0"
            else:
                sql += f" AND product_id IN ({_marks(len(product_ids))})"
                params += list(product_ids)
        if bbox is not None:
            x0, y0, x1, y1 = (float(v) for v in bbox)
            # CAST: monetdbe types a bare marker from the column; keep it DOUBLE everywhere;
            # a box across the antimeridian runs past 180 and meets the area shifted back
            sql += (" AND max_lat >= CAST(? AS DOUBLE) AND min_lat <= CAST(? AS DOUBLE)"
                    " AND ((max_lon >= CAST(? AS DOUBLE) AND min_lon <= CAST(? AS DOUBLE))"
                    " OR (max_lon > 180 AND max_lon - 360 >= CAST(? AS DOUBLE)"
                    " AND min_lon - 360 <= CAST(? AS DOUBLE)))")
            params += [y0, y1, x0, x1, x0, x1]
        return self.query_arrow(sql + " ORDER BY patch_id", params)

    def patch_levels_of(self, patch_ids: Sequence[int]) -> dict[int, int]:
        """patch_id -> level, for the ids that exist."""
        ids = [int(i) for i in patch_ids]
        if not ids:
            return {}
        rows = self.query(f"SELECT patch_id, level FROM patches WHERE patch_id IN "
                          f"({_marks(len(ids))})", ids)
        return {int(p): int(lv) for p, lv in rows}

    # ---- saved searches ------------------------------------------------------------
    def insert_search(self, search_id: str, *, owner: str | None, level: int,
                      feature_set_ids: str, like_ids: str, where_sql: str | None,
                      aoi_wkt: str | None, top: int, n_candidates: int, created: dt.datetime,
                      patch_ids: np.ndarray, distances: np.ndarray,
                      similarities: np.ndarray) -> None:
        """One search and its ranked rows, in one transaction (JSON lists as text)."""
        rows = pa.table({
            "search_id": pa.array([search_id] * len(patch_ids), pa.string()),
            "rank": pa.array(np.arange(1, len(patch_ids) + 1, dtype=np.int32)),
            "patch_id": pa.array(np.asarray(patch_ids, np.int64)),
            "distance": pa.array(np.asarray(distances, np.float64)),
            "similarity": pa.array(np.asarray(similarities, np.float64)),
        })
        with self.transaction():
            self.execute(
                "INSERT INTO searches (search_id, owner, level, feature_set_ids, like_ids, "
                "where_sql, aoi_wkt, top, n_candidates, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (search_id, owner, int(level), feature_set_ids, like_ids, where_sql, aoi_wkt,
                 int(top), int(n_candidates), created))
            self.insert_arrow("search_results", rows)

    def search_results(self, search_id: str) -> pa.Table:
        """A saved search's rows, best first: rank, patch_id, product_id, distance,
        similarity."""
        return self.query_arrow(
            "SELECT r.rank, r.patch_id, p.product_id, r.distance, r.similarity "
            "FROM search_results r JOIN patches p ON p.patch_id = r.patch_id "
            "WHERE r.search_id = ? ORDER BY r.rank", (search_id,))
