"""`eominer ingest` and `eominer products`."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click
import pyarrow as pa

from eominer.cli import (
    catalogue,
    catalogue_options,
    db_option,
    ray_address_for,
    ray_address_option,
    split_ids,
)
from eominer.cli.output import render

if TYPE_CHECKING:
    from compute.ingest import IngestPlan
    from eominer.domain import SourceProduct
    from eominer.ingest import IngestResult
    from eominer.removal import Removal
    from eominer.store import Store


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@db_option
@click.option("--levels", default="32,64,128", show_default=True,
              help="Patch sizes of the grid levels, in 10 m pixels.")
@click.option("--bands", default=None, metavar="B02,B03,...",
              help="Bands of a multi-band GeoTIFF, in the file's order (ids like B02, B2, B8A "
                   "or ESA names like blue, nir, red edge 1). Needed when the file's band "
                   "descriptions do not name the bands; at least 3.")
@ray_address_option(note="; its nodes must mount the workspace at the same path")
@click.option("--num-cpus", type=click.IntRange(1), default=None,
              help="CPUs of the local Ray (default: all cores).")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Worker processes; 0: ingest in this process. Default: one per CPU of "
              "the Ray cluster, or this process for small inputs (under 100 Mpx of bands "
              "in all, where starting Ray would cost more than it saves).")
@click.option("--retries", type=click.IntRange(0, 10), default=2, show_default=True,
              help="Retries of a failed task before its product is reported.")
@click.option("--progress-log", type=click.Path(dir_okay=False), default=None,
              help="Also append one JSON line per committed task to this file.")
def ingest(paths: tuple[str, ...], db: str | None, levels: str, bands: str | None,
           ray_address: str | None, num_cpus: int | None, workers: int | None, retries: int,
           progress_log: str | None) -> None:
    """Ingest Sentinel-1/2 products: per-band folders, .SAFE (folder or zip), multi-band
    GeoTIFF/COG, S1 VV/VH folders, STAC Item or ItemCollection JSON. Prints one line per
    product, and for a multi-band GeoTIFF the bands it was read as. Large inputs run as a
    job on Ray, one task per band (or row block of a 10 m band, or of an S1 SAFE's
    polarisation); interrupted, run the same command again: finished parts are kept."""
    from compute.ingest import plan_ingest, use_runner
    from eominer.errors import EominerError
    from eominer.grid import parse_levels
    from eominer.ingest import plan_products
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
    ray_address = ray_address_for(workers == 0, ray_address)
    if workers == 0 and ray_address:
        raise click.BadParameter("0 ingests in this process: drop --ray-address, or give "
                                 "the cluster's workers a number", param_hint="--workers")
    products = plan_products(paths, bands)
    with open_store(db) as store:
        plan = plan_ingest(store, products, lv)
        if use_runner(plan, workers, ray_address):
            _on_runner(store, plan, products, ray_address, num_cpus, workers, retries,
                       progress_log)
        else:
            _in_process(store, products, lv)


def _in_process(store: Store, products: list[SourceProduct], levels: tuple[int, ...]) -> None:
    """Product after product in this process, a bar per product counting its bands."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from eominer.ingest import ingest_product

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} bands"),
        TimeElapsedColumn(), transient=True, disable=None,
    ) as bar:
        for prod in products:
            task = bar.add_task(f"{prod.product_id}", total=len(prod.bands))
            res = ingest_product(store, prod, levels, progress=lambda _b, t=task: bar.advance(t))
            bar.remove_task(task)
            for line in _result_lines(res, prod):
                bar.console.print(line, soft_wrap=True, highlight=False)


def _on_runner(store: Store, plan: IngestPlan, products: list[SourceProduct],
               address: str | None, num_cpus: int | None, workers: int | None, retries: int,
               log: str | None) -> None:
    """The ingest job on Ray: one bar of tasks; a line per product as it is committed."""
    from compute.ingest import run_ingest
    from compute.progress import job_progress

    by_id = {p.product_id: p for p in products} | {j.product_id: j.product for j in plan.jobs}
    with job_progress("ingest", log) as bar:

        def show(res: IngestResult) -> None:
            for line in _result_lines(res, by_id.get(res.same_scene_as or res.product_id)):
                bar.print(line)

        for res in plan.skipped:
            show(res)
        report = run_ingest(
            store, plan, address=address, num_cpus=num_cpus, num_workers=workers,
            retries=retries, on_start=bar.on_start, on_task=bar.on_task, on_finish=bar.on_finish, on_product=show,
        )
        bar.print(
            f"{report.tasks_done} task(s) run on {report.workers} worker(s), "
            f"{report.tasks_skipped} already done, {len(report.failed)} failed; "
            f"{len(report.results)} product(s) in {report.seconds:.1f} s; "
            f"worker peak memory {report.peak_rss_mb:,.0f} MB"
        )
        report.raise_for_failures()


def _result_lines(res: IngestResult, prod: SourceProduct | None) -> list[str]:
    """What a user reads about one product: its line, where its cloud fractions come
    from (a new S2 product), and a stack's band order."""
    note = "" if res.status == "ingested" else f"  ({res.status}, nothing changed)"
    if res.same_scene_as:
        same = "platform, start" if res.sensor == "S1" else "tile, date"
        note = (f"  (already ingested: {res.same_scene_as} is the same scene, same "
                f"{same} and extent; nothing changed)")
    lines = [f"{res.product_id}  {res.sensor}  {res.acquired or '-'}  {res.patches} patches{note}"]
    if res.status == "ingested" and res.sensor == "S2":
        clouds = (f"{res.cloud_mask} ({res.cloud_note})" if res.cloud_mask else
                  f"none: {res.cloud_note}; cloud fractions stay NULL")
        lines.append(f"  clouds: {clouds}")
    if prod is not None and _is_stack(prod):
        lines.append(f"  bands read as: {', '.join(_stack_bands(prod))}")
    return lines


def _is_stack(prod: SourceProduct) -> bool:
    """One multi-band file holds every band of the product."""
    return prod.sensor == "S2" and len({s.path for s in prod.bands.values()}) == 1


def _stack_bands(prod: SourceProduct) -> list[str]:
    """The product's bands in the file's band order."""
    return [b for b, _ in sorted(prod.bands.items(), key=lambda kv: kv[1].index)]


@click.group(invoke_without_command=True)
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@catalogue_options()
@click.option("--features", "with_features", is_flag=True,
              help="Add the feature sets extracted for each product: a name alone covers "
              "all its patches; 'gabor 40%' a part (what `eominer extract` has left).")
@click.pass_context
def products(ctx: click.Context, db: str | None, fmt: str, tiles: tuple[str, ...],
             sensor: str | None, since: dt.datetime | None, until: dt.datetime | None,
             max_cloud: float | None, with_features: bool) -> None:
    """List ingested products: platform, level, processing baseline, tile, date, cloud
    cover (%), the cloud mask the patches were measured with, relative orbit and
    direction, size and patch counts; those of some tiles, dates, sensor or cloud cover
    with the options. `eominer products remove PID` takes one out."""
    from eominer.store import open_store

    if ctx.invoked_subcommand is not None:
        return
    with open_store(db) as store:
        t = catalogue(store, tiles, sensor, since, until, max_cloud)
        if not t.num_rows and (tiles or sensor or since or until or max_cloud is not None):
            _say_what_there_is(store)
        sets = _feature_sets_of(store, t) if with_features else None
    cols = ["product_id", "sensor", "platform", "processing_level", "processing_baseline",
            "tile_id", "acquired", "cloud_cover", "cloud_mask", "relative_orbit",
            "orbit_direction",
            "width", "height", "patches"]
    out = t.select(cols) if t.num_rows else pa.table({c: [] for c in cols})
    if sets is not None:
        out = out.append_column("feature_sets", pa.array(sets, pa.string()))
    click.echo(render(out, fmt, title="products"))


def _say_what_there_is(store: Store) -> None:
    """No product matched: what the catalogue holds, so the next filter can."""
    everything = store.products()
    if not everything.num_rows:
        click.echo("note: no product is ingested yet (eominer ingest PATH)", err=True)
        return
    tiles = sorted({t for t in everything["tile_id"].to_pylist() if t})
    days = [d for d in everything["acquired"].to_pylist() if d]
    span = f", acquired {min(days):%Y-%m-%d} to {max(days):%Y-%m-%d}" if days else ""
    click.echo(f"note: none of the {everything.num_rows} products matches; tiles "
               f"{', '.join(tiles) or 'none'}{span}", err=True)


def _feature_sets_of(store: Store, table: pa.Table) -> list[str]:
    """Per product: the feature sets with rows for its patches, by name (by id where two
    share a name); a set covering part of the patches with its share."""
    ids, patches = table["product_id"].to_pylist(), table["patches"].to_pylist()
    sets = {fs.feature_set_id: fs for fs in store.feature_sets()}
    names = [fs.name for fs in sets.values()]
    label = {fid: fs.name if names.count(fs.name) == 1 else fid for fid, fs in sets.items()}
    coverage = store.feature_coverage(ids, None)
    out = []
    for pid, n in zip(ids, patches):
        have = [(label[fid], per[pid]) for fid, per in coverage.items() if per.get(pid)]
        out.append(", ".join(name if k >= n else f"{name} {k / n:.0%}" for name, k in have))
    return out


@products.command("remove")
@click.argument("product_ids", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@db_option
@click.pass_context
def remove(ctx: click.Context, product_ids: tuple[str, ...], yes: bool, dry_run: bool,
           db: str | None) -> None:
    """Remove products from the workspace: their rows, patches, features, annotations,
    saved-search rows and pairs, their nearest-neighbour index shards, their ARD files
    and pair layers, and the feature sets computed from their pixels for other
    products' patches (a change pair's sets on its first date, a time series' sets);
    of a fused, archive change or both-dates set only the rows computed from them,
    computed again from another partner or pair where one is left. Refused while a
    session's scope holds one, or a session uses such a set (nothing is removed).
    Before asking, it says what would go (--dry-run: only that). Ingest the product
    again to have it back."""
    from eominer.removal import remove_products
    from eominer.store import open_store

    ids = split_ids(product_ids)
    db = db or ctx.parent.params.get("db")
    with open_store(db) as store:
        if dry_run or not yes:
            for r in remove_products(store, ids, dry_run=True):
                _say_removal(r, dry_run=True)
            if dry_run:
                return
            click.confirm(f"Remove {len(ids)} product(s) ({', '.join(ids)}) and all of the "
                          "above?", abort=True)
        for r in remove_products(store, ids):
            _say_removal(r)


def _say_removal(r: Removal, dry_run: bool = False) -> None:
    """What `products remove` took out (or, `dry_run`, would take)."""
    from eominer.removal import describe

    for line in describe(r, dry_run):
        click.echo(line)
