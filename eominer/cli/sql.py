"""`eominer sql`: read-only SQL on the feature database."""

from __future__ import annotations

import click

from eominer.cli import db_option
from eominer.cli.output import render


@click.command()
@click.argument("query")
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option("--limit", default=10_000, show_default=True, type=click.IntRange(min=1),
              help="Maximum rows returned.")
@click.option("--timeout", default=60.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Seconds before the query is cancelled.")
def sql(query: str, db: str | None, fmt: str, limit: int, timeout: float) -> None:
    """Run one read-only SQL query (SELECT/WITH/DESCRIBE/SHOW). Schema: docs/schema.md."""
    from eominer.store import open_store

    with open_store(db) as store:
        result = store.user_query(query, limit=limit, timeout_s=timeout)
    click.echo(render(result.table, fmt))
    if result.truncated:
        click.echo(f"(first {limit} rows shown; raise --limit or add LIMIT/WHERE)", err=True)
