"""`eominer search`: the patches most like some examples, inside an area, under a WHERE."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from eominer.cli import db_option, split_ids
from eominer.cli.output import render
from eominer.cli.sheet import sheet_options, write_sheet

if TYPE_CHECKING:
    import pyarrow as pa

    from eominer.learning.aoi import AOI
    from eominer.store import Store


def _ids(text: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as exc:
        raise click.BadParameter(f"expected patch ids like 1201,1305, got {text!r}") from exc


@click.command()
@click.option("--like", "like", required=True, metavar="ID,ID",
              help="Example patch ids (comma-separated).")
@click.option("--where", default=None, metavar="SQL",
              help="WHERE over the view scope_rows (docs/schema.md), e.g. \"acquired >= DATE "
                   "'2017-01-01' AND cloud_fraction < 0.1\"; read-only path.")
@click.option("--aoi", type=click.Path(exists=True, dir_okay=False), default=None,
              metavar="FILE", help="Area of interest (GeoJSON, GeoPackage, KML, shapefile).")
@click.option("--top", default=100, show_default=True, help="How many patches to return.")
@click.option("--features", "feature_sets", default=None, metavar="FS,FS",
              help="Feature set ids (default: every set with features for all the "
                   "examples, together, each once, each column standardised).")
@click.option("--level", type=int, default=None, help="Grid level (default: the examples').")
@click.option("--product", "products", multiple=True,
              help="Search only these products (comma-separated or repeated; default: "
              "all).")
@click.option("--archive", is_flag=True,
              help="Rank the whole archive through its nearest-neighbour index (eominer "
                   "index build); approximate, with the archive's standardisation.")
@click.option("--save", is_flag=True,
              help="Keep the result in search_results (join it in SQL; the id is printed).")
@click.option("--owner", default=None, help="User name stored with a saved search.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option("--timeout", default=60.0, show_default=True,
              type=click.FloatRange(0, min_open=True),
              help="Seconds before the WHERE is cancelled.")
@sheet_options
@db_option
def search(like: str, where: str | None, aoi: str | None, top: int, feature_sets: str | None,
           level: int | None, products: tuple[str, ...], archive: bool, save: bool,
           owner: str | None, fmt: str, timeout: float, sheet: str | None, false_colour: bool,
           context: float, db: str | None) -> None:
    """Rank the patches most like the examples (--like), among those the area of interest
    and the WHERE keep: prints rank, patch id, product, distance and similarity."""
    from eominer.learning.aoi import read_aoi
    from eominer.learning.search import save_search
    from eominer.learning.search import search as run_search
    from eominer.store import open_store

    area = read_aoi(aoi) if aoi else None
    fs = split_ids(feature_sets) or None
    products = tuple(split_ids(products))
    drawn = (sheet, false_colour, context)
    if archive:
        _archive(like, where, area, top, fs, level, products, save, fmt, db, timeout, drawn)
        return
    with open_store(db) as store:
        r = run_search(store, _ids(like), top=top, where=where, aoi=area, feature_set_ids=fs,
                       level=level, product_ids=list(products) or None, timeout_s=timeout)
        if save:
            r = save_search(store, r, owner)
        table = r.table()
        _draw(store, table, *drawn)
    click.echo(render(table, fmt))
    by = " and ".join(w for w, on in (("the area of interest", area is not None),
                                       ("the WHERE", bool(where))) if on)
    click.echo(f"{r.n_candidates} patches " + (f"kept by {by} " if by else "searched ")
               + f"at level {r.level}"
               + (f", {r.n_missing} without features (not ranked; {r.missing_hint})"
                  if r.n_missing else "")
               + f"; feature sets {', '.join(r.feature_set_ids)}", err=True)
    if r.search_id:
        click.echo(f"saved as search {r.search_id}: SELECT * FROM search_results JOIN "
                   f"scope_rows USING (patch_id) WHERE search_id = '{r.search_id}' "
                   "ORDER BY rank", err=True)


def _draw(store: Store, table: pa.Table, sheet: str | None, false_colour: bool,
          context: float) -> None:
    """The results as a contact sheet (`--sheet`), captioned with their similarity."""
    if sheet and table.num_rows:
        write_sheet(store, Path(sheet), table["patch_id"].to_numpy(),
                    table["similarity"].to_numpy(), false_colour, context)
        click.echo(f"sheet: {sheet} ({table.num_rows} patches, by rank)", err=True)


def _archive(like: str, where: str | None, area: AOI | None, top: int, fs: list[str] | None,
             level: int | None, products: tuple[str, ...], save: bool, fmt: str,
             db: str | None, timeout: float, drawn: tuple[str | None, bool, float]) -> None:
    from eominer.learning.ann import search_archive
    from eominer.store import open_store

    if save:
        raise click.UsageError("--archive results are not saved: --save is for the exact "
                               "search (leave out --archive)")
    if not fs or len(fs) != 1:
        raise click.UsageError("--archive needs the one indexed feature set: --features FS")
    with open_store(db) as store:
        m = search_archive(store, _ids(like), fs[0], top=top, level=level, where=where,
                           aoi=area, product_ids=list(products) or None, timeout_s=timeout)
        table = m.table(store)
        _draw(store, table, *drawn)
    click.echo(render(table, fmt))
    by = " and ".join(w for w, on in (("the area of interest", area is not None),
                                       ("the WHERE", bool(where)),
                                       ("--product", bool(products))) if on)
    click.echo(f"{m.n_indexed:,} patches indexed at level {m.level} in {m.feature_set_id} "
               "(approximate nearest neighbours)" + (f"; among those kept by {by}" if by else ""),
               err=True)
