"""Rows for a Tabulator, typed the same with or without rows.

Panel's Tabulator chooses each column's formatter (dates, right-aligned numbers) from
the dtypes of the first frame it shows with those columns, and keeps it while the
columns stay the same. An empty frame's columns are all `object`: the dates of rows that
come later would show as epoch milliseconds. So the frame gets its dtypes even when
empty."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd


def table_frame(rows: Sequence[Sequence[Any]], columns: Sequence[str],
                dtypes: Mapping[str, str]) -> pd.DataFrame:
    """`rows` as a DataFrame; with no rows, `dtypes` (e.g. "datetime64[ns]", "int64")
    give the columns the types their rows would have."""
    frame = pd.DataFrame(list(rows), columns=list(columns))
    return frame if len(frame) else frame.astype(dict(dtypes))
