"""`eominer timeseries`: seasonal descriptors and the largest break of every patch over a
stack of >= 3 ingested Sentinel-2 products of one place, as feature sets."""

from __future__ import annotations

import click
import numpy as np

from eominer.cli import db_option, ray_address_for, ray_address_option, split_ids, workers_option


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
@ray_address_option()
@click.option("--num-cpus", type=click.IntRange(1), default=None,
              help="CPUs of the local Ray (default: all cores).")
@workers_option
@click.option("--progress-log", type=click.Path(dir_okay=False), default=None,
              help="Also append a JSON line to this file per committed band of rows.")
@db_option
def timeseries(products: tuple[str, ...], tile: str | None, on: str | None, index: str,
               levels: tuple[int, ...], min_size: float, ray_address: str | None,
               num_cpus: int | None, workers: int | None, progress_log: str | None,
               db: str | None) -> None:
    """Model the index series of every patch over a stack of products of one place:
    feature set `temporal` (level, trend per year, seasonal amplitude, peak day of year,
    clear dates) and `ts_breaks` (the largest break: date as a decimal year, size, F
    statistic, reason code 0 found / 1-2 too few clear dates / 3 none). Clouds are left
    out per pixel and date. One task per band of patch rows, here or on Ray once it
    pays off (--workers N: Ray; 0: here); interrupted, run the same command again. Both sets are ordinary
    feature sets: SQL, sessions, search. Docs: docs/change.md, "Time series of one
    place"."""
    from compute.progress import job_progress
    from compute.series import run_series
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
        with job_progress("timeseries", progress_log) as bar:
            r = run_series(store, ids, on=on, index=index, levels=levels or None,
                           min_size=min_size, address=ray_address_for(workers == 0, ray_address),
                           num_cpus=num_cpus, num_workers=workers, on_start=bar.on_start,
                           on_task=bar.on_task, on_finish=bar.on_finish)
            for note in r.notes:
                bar.print(f"note: {note}")
            r.raise_for_failures()
            plan = r.plan
            lines = [f"{len(plan.dates)} dates, {plan.dates[0][:10]} to "
                     f"{plan.dates[-1][:10]}; {index.upper()} on the patches of "
                     f"{plan.ref.product_id}"]
            for lv in plan.levels:  # what the sets hold now, this run's or an earlier one's
                _, brk = store.read_features([plan.breaks.feature_set_id],
                                             [plan.ref.product_id], lv)[:2]
                _, desc = store.read_features([plan.temporal.feature_set_id],
                                              [plan.ref.product_id], lv)[:2]
                short = int(np.count_nonzero(desc[:, 5] > 0))
                lines.append(f"level {lv}: {len(brk)} patches, "
                             f"{int(np.count_nonzero(brk[:, 3] == 0))} with a break"
                             + (f", {short} without a seasonal model (too few clear dates)"
                                if short else ""))
    for line in lines:
        click.echo(line)
    if plan.resampled:
        click.echo(f"note: resampled onto its grid: {', '.join(plan.resampled)}", err=True)
    click.echo(f"{plan.temporal.feature_set_id}  {', '.join(plan.temporal.columns)}")
    click.echo(f"{plan.breaks.feature_set_id}  {', '.join(plan.breaks.columns)}")
    click.echo(f"e.g. eominer sql \"SELECT patch_id, ts_break_year, ts_break_size FROM "
               f"{plan.breaks.table_name} WHERE ts_break_reason_code = 0 ORDER BY "
               "ts_break_size LIMIT 20\"", err=True)
