"""`eominer index`: the archive-wide nearest-neighbour index behind `search --archive`."""

from __future__ import annotations

import click

from eominer.cli import (
    db_option,
    ray_address_for,
    ray_address_option,
    split_ids,
    workers_option,
)


@click.group()
def index() -> None:
    """Nearest-neighbour indexes of a feature set over the whole archive."""


@index.command("build")
@click.argument("feature_set")
@click.option("--level", type=int, required=True, help="Grid level to index.")
@click.option("--products", "products", multiple=True, metavar="IDS",
              help="Only these products (comma-separated or repeated; default: all with "
                   "features).")
@click.option("--rebuild", is_flag=True,
              help="Recompute the standardisation over the archive and rebuild every shard.")
@ray_address_option()
@click.option("--num-cpus", type=click.IntRange(1), default=None, help="CPUs of the local Ray.")
@workers_option
@click.option("--progress-log", type=click.Path(dir_okay=False), default=None,
              help="Also append one JSON line per committed task to this file.")
@db_option
def build(feature_set: str, level: int, products: tuple[str, ...], rebuild: bool,
          ray_address: str | None, num_cpus: int | None, workers: int | None,
          progress_log: str | None, db: str | None) -> None:
    """Build the index of FEATURE_SET (its id, or its name when one set has it) at
    --level: one shard per product, as runner tasks.
    Run it again after new products are extracted: only their shards are built."""
    from compute.index import run_index
    from compute.progress import job_progress
    from eominer.learning.ann import index_dir
    from eominer.store import open_store

    ids = split_ids(products)
    with open_store(db) as store, job_progress("index", progress_log) as bar:
        feature_set = store.require_feature_set(feature_set).feature_set_id  # or its name
        report = run_index(store, feature_set, level, product_ids=ids or None,
                           rebuild=rebuild,
                           address=ray_address_for(workers == 0, ray_address),
                           num_cpus=num_cpus,
                           num_workers=workers, on_start=bar.on_start, on_task=bar.on_task, on_finish=bar.on_finish)
        bar.print(f"{report.tasks_done} shard(s) built, {report.tasks_skipped} already there, "
                  f"{len(report.failed)} failed; {report.patches_written:,} vectors in "
                  f"{report.seconds:.1f} s; index in {index_dir(store, feature_set, level)}")
        for note in report.notes:
            bar.print(f"note: {note}")
        report.raise_for_failures()
