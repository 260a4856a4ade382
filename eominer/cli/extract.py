"""`eominer extract`: patch descriptors for the ingested products (a runner job: here, or
on Ray once it pays off)."""

from __future__ import annotations

import click

from eominer.cli import (
    db_option,
    ray_address_for,
    ray_address_option,
    split_ids,
    workers_option,
)
from eominer.features.neighbours import MAX_REACH
from eominer.features.registry import DEFAULT_FEATURES, available


def parse_params(values: tuple[str, ...]) -> dict[str, dict]:
    """('mosaiks.n_filters=128', 'mosaiks.bands=["B02","B08"]') -> {'mosaiks': {...}};
    values are JSON where they parse as JSON, else strings."""
    import json

    out: dict[str, dict] = {}
    for text in values:
        key, sep, raw = text.partition("=")
        name, dot, param = key.strip().partition(".")
        if not sep or not dot or not name or not param:
            raise click.BadParameter(f"{text!r}: expected FEATURE.PARAM=VALUE, e.g. "
                                     "mosaiks.n_filters=128", param_hint="--param")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(name.lower(), {})[param] = value
    return out


@click.command()
@click.option("--features", default=None, metavar="NAMES",
              help=f"Comma-separated descriptors: {','.join(available())} (default: "
              f"{','.join(DEFAULT_FEATURES)}; encoder and ssl only once trained).")
@click.option("--products", "products", multiple=True, metavar="IDS",
              help="Product ids (comma-separated or repeated; default: all ingested).")
@click.option("--param", "params", multiple=True, metavar="FEATURE.PARAM=VALUE",
              help="A descriptor parameter (repeatable), e.g. mosaiks.n_filters=128, "
              "mosaiks.k=5, mosaiks.seed=1: other parameters make another feature set. "
              "ssl.model_id=ssl-v2 (or encoder.model_id=...) extracts with that trained "
              "model instead of the newest (`eominer encoder list`).")
@ray_address_option()
@click.option("--num-cpus", type=click.IntRange(1), default=None,
              help="CPUs of the local Ray (default: all cores).")
@workers_option
@click.option("--block-rows", type=click.IntRange(32), default=512, show_default=True,
              help="Raster rows per task (rounded to whole patches of every level).")
@click.option("--retries", type=click.IntRange(0, 10), default=2, show_default=True,
              help="Retries of a failed task before it is reported.")
@click.option("--progress-log", type=click.Path(dir_okay=False), default=None,
              help="Also append one JSON line per committed task to this file.")
@click.option("--neighbours", type=click.IntRange(1, MAX_REACH), default=None, metavar="R",
              help="Also write each set's neighbourhood set nbr_<set>: per patch, the "
              "set's mean over the patches within R grid cells (2: a 5 x 5 block), for "
              "classes that span many patches (forests, lakes, towns; docs/features.md).")
@db_option
def extract(features: str | None, products: tuple[str, ...], params: tuple[str, ...],
            ray_address: str | None,
            num_cpus: int | None, workers: int | None, block_rows: int, retries: int,
            progress_log: str | None, neighbours: int | None, db: str | None) -> None:
    """Compute descriptors for every patch, one task per product x feature set x block
    of rows: in this process, the rest on a local Ray once the first tasks show that its
    start-up pays off (--workers N: Ray; 0: here). Interrupted? Run the same command again: finished tasks are kept."""
    from compute.extract import run_extract
    from compute.progress import job_progress
    from eominer.features.neighbours import build_neighbour_set, catch_up
    from eominer.store import open_store

    with open_store(db) as store, job_progress("extract", progress_log) as bar:
        report = run_extract(
            store, features, split_ids(products) or None,
            address=ray_address_for(workers == 0, ray_address),
            num_cpus=num_cpus, num_workers=workers, block_rows=block_rows,
            retries=retries, on_start=bar.on_start, on_task=bar.on_task, on_finish=bar.on_finish,
            params=parse_params(params),
        )
        for note in report.notes:
            bar.print(f"note: {note}")
        for fid, _name in report.feature_sets:
            fs = store.require_feature_set(fid)
            bar.print(f"{fid}  {fs.dims} columns  {store.count_features(fs)} rows")
        rate = report.patches_written / report.seconds if report.seconds else 0.0
        bar.print(
            f"{report.tasks_done} task(s) run {report.ran_on}, "
            f"{report.tasks_skipped} already done, {len(report.failed)} failed; "
            f"{report.patches_written} patch rows in {report.seconds:.1f} s "
            f"({rate:,.0f} patches/s)"
        )
        report.raise_for_failures()
        chosen = split_ids(products) or None
        for fid, _name in report.feature_sets:
            if neighbours:
                out, n = build_neighbour_set(store, fid, neighbours, chosen)
                bar.print(f"{out.feature_set_id}  {out.dims} columns  {n} rows written "
                          f"(the mean of {fid} within {neighbours} "
                          f"cell{'s' if neighbours > 1 else ''})")
            # neighbourhood sets built before stay complete for the products added since
            for out, n, pids in catch_up(store, fid, chosen, (neighbours,)):
                bar.print(f"{out.feature_set_id}  {n} rows written for {len(pids)} "
                          f"product{'s' if len(pids) > 1 else ''} it lacked (reach "
                          f"{out.params['reach']})")
