"""SQL console: read-only SQL on the feature database, with a row limit and a timeout
(the store's `user_query`); results paged; download as CSV or Parquet; errors inline.
The result, the info line and the downloads always belong to the latest query: an
error clears the rows before it, and nothing is offered for download then."""

from __future__ import annotations

import asyncio
import html
import io
from typing import TYPE_CHECKING, Any

import panel as pn
import param
from panel.viewable import Viewer

from eominer.errors import StoreError
from eominer.ui.state import AppState
from eominer.ui.words import plural

if TYPE_CHECKING:
    from eominer.store import UserResult

EXAMPLE = """-- read-only: {statements}. Tables: docs/schema.md
SELECT a.label_name, a.session_id, COUNT(*) AS patches, AVG(a.score) AS mean_score
FROM annotations a
GROUP BY a.label_name, a.session_id
ORDER BY patches DESC"""


def example_sql(engine_name: str) -> str:
    """The editor's first text: DESCRIBE and SHOW are DuckDB's, so MonetDB's offers
    SELECT and WITH only (its error for DESCRIBE says how to list columns)."""
    statements = "SELECT / WITH" + (" / DESCRIBE / SHOW" if engine_name == "duckdb" else "")
    return EXAMPLE.format(statements=statements)


class SQLConsole(Viewer):
    state = param.ClassSelector(class_=AppState)
    limit = param.Integer(default=10_000, bounds=(1, 1_000_000), label="Row limit")
    timeout_s = param.Number(default=30.0, bounds=(1, 600), label="Timeout (s)")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._editor = pn.widgets.CodeEditor(value=example_sql(self.state.store.engine_name),
                                             language="sql", height=160,
                                             sizing_mode="stretch_width",
                                             css_classes=["eom-sql-editor"])
        self._run = pn.widgets.Button(label="Run query", color="primary",
                                      width=140, css_classes=["eom-sql-run"])
        self._run.on_click(self._on_run)
        self._info = pn.pane.HTML("", css_classes=["eom-sql-info"])
        self._table = pn.widgets.Tabulator(None, pagination="remote", page_size=25,
                                           disabled=True, sizing_mode="stretch_width",
                                           css_classes=["eom-sql-table"], show_index=False)
        self._result = None
        self._csv = pn.widgets.FileDownload(callback=self._as_csv, filename="query.csv",
                                            label="CSV", width=90, css_classes=["eom-sql-csv"],
                                            disabled=True)
        self._parquet = pn.widgets.FileDownload(callback=self._as_parquet,
                                                filename="query.parquet", label="Parquet",
                                                width=90, css_classes=["eom-sql-parquet"],
                                                disabled=True)

    def run(self, sql: str | None = None) -> None:
        """Run the editor's query (or `sql`) here and show its result or its error."""
        if sql is not None:
            self._editor.value = sql
        self._show(self._execute(self._editor.value))

    async def _on_run(self, _event: param.parameterized.Event) -> None:
        """The button: the query runs in a worker thread (for DuckDB on a connection of
        its own), so the server keeps answering this and every other session meanwhile."""
        self._run.disabled = self._run.loading = True
        self._info.object = '<span class="eom-sql-running">running…</span>'
        try:
            outcome = await asyncio.to_thread(self._execute, self._editor.value)
        finally:
            self._run.disabled = self._run.loading = False
        self._show(outcome)

    def _execute(self, text: str) -> UserResult | str:
        """The query's UserResult, or the error text to show inline."""
        try:
            return self.state.store.user_query(text, limit=self.limit, timeout_s=self.timeout_s)
        except StoreError as exc:  # UserSQLError, ReadOnlySQLError: shown inline
            return str(exc)
        except Exception as exc:  # the console must survive anything a query does
            return f"query failed: {exc}"

    def _show(self, outcome: UserResult | str) -> None:
        if isinstance(outcome, str):
            self._result = None
            self._table.value = None
            self._csv.disabled = self._parquet.disabled = True
            self._info.object = (f'<span style="color:#b3261e" class="eom-sql-error">'
                                 f"{html.escape(outcome)}</span>")
            return
        self._result = outcome.table
        self._table.value = outcome.table.to_pandas()
        self._csv.disabled = self._parquet.disabled = False
        n = outcome.table.num_rows
        self._info.object = (f'<span class="eom-sql-ok">{n} {plural(n, "row")}'
                             f"{self._cut_note(outcome)}</span>")

    def _cut_note(self, outcome: UserResult) -> str:
        if not outcome.truncated:
            return ""
        if outcome.limit >= self.param.limit.bounds[1]:  # the limit cannot go higher
            return f" (first {outcome.limit} rows, the most shown: add LIMIT or WHERE)"
        return f" (first {outcome.limit} rows: raise the limit or add LIMIT/WHERE)"

    def _as_csv(self) -> io.BytesIO:
        import pyarrow.csv as pcsv

        buf = io.BytesIO()
        if self._result is not None:
            pcsv.write_csv(self._result, buf)
        buf.seek(0)
        return buf

    def _as_parquet(self) -> io.BytesIO:
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        if self._result is not None:
            pq.write_table(self._result, buf)
        buf.seek(0)
        return buf

    def __panel__(self) -> pn.Column:
        return pn.Column(
            self._editor,
            pn.Row(self._run, pn.widgets.IntInput.from_param(self.param.limit, width=120),
                   pn.widgets.FloatInput.from_param(self.param.timeout_s, width=100,
                                                    css_classes=["eom-sql-timeout"]),
                   self._csv, self._parquet),
            self._info, self._table, sizing_mode="stretch_width")
