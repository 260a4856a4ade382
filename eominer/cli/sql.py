"""`eominer sql`: read-only SQL on the feature database."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pyarrow as pa

from eominer.cli import db_option
from eominer.cli.output import render

# what `--to` writes, by the file's suffix
FILE_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json"}


@click.command()
@click.argument("query")
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option("--limit", default=None, type=click.IntRange(min=1),
              help="Maximum rows returned (default: 10000 printed; every row with --to).")
@click.option("--timeout", default=60.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Seconds before the query is cancelled.")
@click.option("--to", "to", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the rows to FILE instead: .parquet (typed, columnar: features and "
              "labels for another tool), .csv or .json. Written whole or not at all.")
def sql(query: str, db: str | None, fmt: str, limit: int | None, timeout: float,
        to: str | None) -> None:
    """Run one read-only SQL query (SELECT/WITH/DESCRIBE/SHOW). Schema: docs/schema.md."""
    from eominer.store import open_store

    target = _target(to) if to else None  # a bad FILE is refused before the query runs
    limit = limit or (10**12 if target else 10_000)
    with open_store(db) as store:
        result = store.user_query(query, limit=limit, timeout_s=timeout)
    if target is None:
        click.echo(render(result.table, fmt))
    else:
        _write(result.table, target)
        t = result.table
        click.echo(f"wrote {t.num_rows:,} rows x {t.num_columns} columns to {target}")
    if result.truncated:
        click.echo(f"(first {limit} rows {'written' if target else 'shown'}; raise --limit "
                   "or add LIMIT/WHERE)", err=True)


def _target(to: str) -> Path:
    path = Path(to)
    if path.suffix.lower() not in FILE_FORMATS:
        raise click.BadParameter(f"{to}: name a .parquet, .csv or .json file",
                                 param_hint="'--to'")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise click.BadParameter(f"cannot write in {path.parent}: give a folder that exists "
                                 "and you can write to", param_hint="'--to'")
    return path


def _write(table: pa.Table, path: Path) -> None:
    """Beside the target first, then renamed: an interrupted write leaves the old file
    (or none), never a truncated one."""
    kind = FILE_FORMATS[path.suffix.lower()]
    part = path.with_name(f".{path.name}.part")
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, part)
        else:
            part.write_text(render(table, kind) + "\n", encoding="utf-8")
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
