"""Printing tables for the terminal, CSV and JSON."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pyarrow as pa
from rich.console import Console
from rich.table import Table


def _cell(v: object, seconds: bool = False) -> str:
    """A value as text; `seconds`: times to the second (the terminal table; CSV keeps
    what the database holds)."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dt.datetime):
        return (v.replace(microsecond=0) if seconds else v).isoformat(sep=" ")
    return str(v)


def _is_id(column: str) -> bool:
    return column == "id" or column.endswith("_id")


def render(table: pa.Table, fmt: str, title: str | None = None) -> str:
    rows = table.to_pylist()
    cols = table.column_names
    if fmt == "json":
        return json.dumps(rows, default=str, indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        # "\n", not the csv module's "\r\n": output is read by shell pipelines (cut, awk,
        # `eominer session label $(...)`), where a trailing "\r" sticks to the last field
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        w.writerows([[_cell(r[c]) for c in cols] for r in rows])
        return buf.getvalue().rstrip("\n")
    t = Table(title=title, show_lines=False)
    cells = [[_cell(r[c], seconds=True) for c in cols] for r in rows]
    for i, c in enumerate(cols):
        # identifiers stay on one line, to be copied into the next command (a full
        # Sentinel-2 name is 60 characters), and times and numbers to be read right;
        # text and headers fold
        kind = table.schema.field(c).type
        keep = _is_id(c) or pa.types.is_temporal(kind) or pa.types.is_integer(kind) \
            or pa.types.is_floating(kind)
        whole = max((len(row[i]) for row in cells), default=0) if keep else None
        t.add_column(c, overflow="fold", min_width=whole, no_wrap=whole is not None)
    for row in cells:
        t.add_row(*row)
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(t)
    return console.export_text().rstrip("\n")
