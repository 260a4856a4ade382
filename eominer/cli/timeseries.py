"""`eominer timeseries`: seasonal descriptors and the largest break of every patch over a
stack of >= 3 ingested Sentinel-2 products of one place, as feature sets."""

from __future__ import annotations

import click

from eominer.cli import db_option, split_ids


@click.command()
@click.argument("products", nargs=-1)
@click.option("--tile", default=None, metavar="TILE",
              help="Every Sentinel-2 product of this MGRS tile (e.g. 33UUU) instead of ids.")
@click.option("--on", "on", default=None, metavar="PID",
              help="The product whose patches get the descriptors (default: the latest); "
                   "the others are resampled onto its grid where theirs differs.")
@click.option("--index", type=click.Choice(["ndvi", "ndbi", "ndwi"]), default="ndvi",
              show_default=True, help="The index whose series is modelled.")
@click.option("--level", "levels", type=int, multiple=True,
              help="Grid level(s) (px); default every level of --on.")
@click.option("--min-size", type=click.FloatRange(0.0, 2.0), default=0.2, show_default=True,
              help="Smallest step (index units) reported as a break.")
@db_option
def timeseries(products: tuple[str, ...], tile: str | None, on: str | None, index: str,
               levels: tuple[int, ...], min_size: float, db: str | None) -> None:
    """Model the index series of every patch over a stack of products of one place:
    feature set `temporal` (level, trend per year, seasonal amplitude, peak day of year,
    clear dates) and `ts_breaks` (the largest break: date as a decimal year, size, F
    statistic, reason code 0 found / 1-2 too few clear dates / 3 none). Clouds are left
    out per pixel and date. Both sets are ordinary feature sets: SQL, sessions,
    search. Docs: docs/change.md, "Time series of one place"."""
    from rich.console import Console
    from rich.progress import Progress

    from eominer.features.series import store_series
    from eominer.store import open_store

    ids = split_ids(products)
    if bool(ids) == bool(tile):
        raise click.UsageError("give the products' ids, or --tile for all of a tile's")
    with open_store(db) as store:
        if tile:
            ids = [p.product_id for p in store.product_list()
                   if p.sensor == "S2" and (p.tile_id or "").upper() == tile.upper()]
            if not ids:
                raise click.UsageError(f"no Sentinel-2 product of tile {tile} in {store.url}: "
                                       "`eominer products` lists the tiles")
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("time series", total=None)
            r = store_series(store, ids, on=on, index=index, levels=levels or None,
                             min_size=min_size,
                             progress=lambda done, of: bar.update(task, completed=done,
                                                                  total=of))
    click.echo(f"{len(r.dates)} dates, {r.dates[0][:10]} to {r.dates[-1][:10]}; "
               f"{index.upper()} on the patches of {r.on}")
    if r.resampled:
        click.echo(f"note: resampled onto its grid: {', '.join(r.resampled)}", err=True)
    for lv, (n, broken, short) in sorted(r.levels.items()):
        click.echo(f"level {lv}: {n} patches, {broken} with a break"
                   + (f", {short} without a seasonal model (too few clear dates)"
                      if short else ""))
    click.echo(f"{r.temporal.feature_set_id}  {', '.join(r.temporal.columns)}")
    click.echo(f"{r.breaks.feature_set_id}  {', '.join(r.breaks.columns)}")
    click.echo(f"e.g. eominer sql \"SELECT patch_id, ts_break_year, ts_break_size FROM "
               f"{r.breaks.table_name} WHERE ts_break_reason_code = 0 ORDER BY "
               "ts_break_size LIMIT 20\"", err=True)
