"""`eominer demo`: the main job on the embedded default, end to end."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from eominer.cli import db_option

SAMPLE = Path(__file__).resolve().parents[1] / "sample" / "IMG_DATA"


@click.command()
@db_option
@click.option("--serve/--no-serve", default=True, help="Start the app after extraction.")
@click.option("--port", default=5006, show_default=True, type=click.IntRange(1, 65535))
@click.option("--features", default="spectral,gabor,wld", show_default=True,
              help="Descriptors to extract for the sample.")
@click.pass_context
def demo(ctx: click.Context, db: str | None, serve: bool, port: int, features: str) -> None:
    """Ingest the bundled Sentinel-2 sample, extract its descriptors, serve the app."""
    from eominer.cli.ingest import ingest, products

    click.echo(f"1. ingest the bundled sample ({SAMPLE})")
    ctx.invoke(ingest, paths=(str(SAMPLE),), db=db, levels="32,64,128")
    ctx.invoke(products, db=db, fmt="table")
    if importlib.util.find_spec("compute.extract") is not None:
        from eominer.cli.extract import extract

        click.echo(f"2. extract descriptors: {features}")
        ctx.invoke(extract, db=db, features=features)
    if serve and importlib.util.find_spec("eominer.cli.serve") is not None:
        from eominer.cli.serve import serve as serve_cmd

        click.echo(f"3. serve the app on http://127.0.0.1:{port}")
        ctx.invoke(serve_cmd, db=db, port=port)
