"""`eominer ingest` and `eominer products`."""

from __future__ import annotations

import click
import pyarrow as pa

from eominer.cli import db_option
from eominer.cli.output import render


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@db_option
@click.option("--levels", default="32,64,128", show_default=True,
              help="Patch sizes of the grid levels, in 10 m pixels.")
@click.option("--bands", default=None, metavar="B02,B03,...",
              help="Bands of a multi-band GeoTIFF, in the file's order (ids like B02, B2, B8A "
                   "or ESA names like blue, nir, red edge 1). Needed when the file's band "
                   "descriptions do not name the bands; at least 3.")
def ingest(paths: tuple[str, ...], db: str | None, levels: str, bands: str | None) -> None:
    """Ingest Sentinel-1/2 products: per-band folders, .SAFE (folder or zip), multi-band
    GeoTIFF/COG, S1 VV/VH folders, STAC Item JSON. Prints one line per product, and for a
    multi-band GeoTIFF the bands it was read as."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from eominer.errors import EominerError
    from eominer.grid import parse_levels
    from eominer.ingest import ingest_product, plan_products
    from eominer.io.discover import parse_band_list
    from eominer.store import open_store

    try:
        lv = parse_levels(levels)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--levels") from exc
    if bands is not None:
        try:
            parse_band_list(bands)
        except EominerError as exc:
            raise click.BadParameter(str(exc), param_hint="--bands") from exc
    products = plan_products(paths, bands)
    with open_store(db) as store, Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} bands"),
        TimeElapsedColumn(), transient=True, disable=None,
    ) as bar:
        for prod in products:
            task = bar.add_task(f"{prod.product_id}", total=len(prod.bands))
            res = ingest_product(store, prod, lv, progress=lambda _b, t=task: bar.advance(t))
            bar.remove_task(task)
            note = "" if res.status == "ingested" else f"  ({res.status}, nothing changed)"
            if res.same_scene_as:
                note = (f"  (already ingested: {res.same_scene_as} is the same scene, same "
                        "tile, date and extent; nothing changed)")
            bar.console.print(
                f"{res.product_id}  {res.sensor}  {res.acquired or '-'}  {res.patches} patches{note}",
                soft_wrap=True, highlight=False,
            )
            if res.status == "ingested" and prod.sensor == "S2":
                clouds = (f"{res.cloud_mask} ({res.cloud_note})" if res.cloud_mask else
                          f"none: {res.cloud_note}; cloud fractions stay NULL")
                bar.console.print(f"  clouds: {clouds}", soft_wrap=True, highlight=False)
            if _is_stack(prod):
                bar.console.print(f"  bands read as: {', '.join(_stack_bands(prod))}",
                                  soft_wrap=True, highlight=False)


def _is_stack(prod) -> bool:
    """One multi-band file holds every band of the product."""
    return prod.sensor == "S2" and len({s.path for s in prod.bands.values()}) == 1


def _stack_bands(prod) -> list[str]:
    """The product's bands in the file's band order."""
    return [b for b, _ in sorted(prod.bands.items(), key=lambda kv: kv[1].index)]


@click.command()
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
def products(db: str | None, fmt: str) -> None:
    """List ingested products: platform, level, processing baseline, tile, date, cloud
    cover (%), the cloud mask the patches were measured with, relative orbit and
    direction, size and patch counts."""
    from eominer.store import open_store

    with open_store(db) as store:
        t = store.products()
    cols = ["product_id", "sensor", "platform", "processing_level", "processing_baseline",
            "tile_id", "acquired", "cloud_cover", "cloud_mask", "relative_orbit",
            "orbit_direction",
            "width", "height", "patches"]
    out = t.select(cols) if t.num_rows else pa.table({c: [] for c in cols})
    click.echo(render(out, fmt, title="products"))
