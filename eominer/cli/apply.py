"""`eominer apply`: score the archive with a saved classifier (a runner job: here, or on
Ray once it pays off)."""

from __future__ import annotations

import click

from eominer.cli import (
    db_option,
    ray_address_for,
    ray_address_option,
    split_ids,
    workers_option,
)


@click.command()
@click.argument("model_id")
@click.option("--products", "products", multiple=True, metavar="IDS",
              help="Product ids (comma-separated or repeated; default: every product with "
              "the model's features).")
@click.option("--where", default=None, metavar="SQL",
              help="Keep the patches for which this WHERE over the view scope_rows holds "
              "(docs/schema.md); runs on the read-only SQL path.")
@click.option("--aoi", type=click.Path(exists=True, dir_okay=False), default=None,
              metavar="FILE", help="Area of interest (GeoJSON, GeoPackage, KML, shapefile): "
              "keeps the patches whose lon/lat box intersects it.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="A patch is positive when its score is at least this (default: the "
              "model's threshold, the one its session was last published at; 0.5 if never).")
@ray_address_option()
@click.option("--num-cpus", type=click.IntRange(1), default=None,
              help="CPUs of the local Ray (default: all cores).")
@workers_option
@click.option("--block-patches", type=click.IntRange(1), default=65_536, show_default=True,
              help="Patches per task (the features of one block are read in one query).")
@click.option("--retries", type=click.IntRange(0, 10), default=2, show_default=True,
              help="Retries of a failed task before it is reported.")
@click.option("--rerun", is_flag=True,
              help="Score again the blocks a previous run of this model finished.")
@click.option("--progress-log", type=click.Path(dir_okay=False), default=None,
              help="Also append one JSON line per committed task to this file.")
@db_option
def apply(model_id: str, products: tuple[str, ...], where: str | None, aoi: str | None,
          threshold: float | None, ray_address: str | None, num_cpus: int | None,
          workers: int | None, block_patches: int, retries: int, rerun: bool,
          progress_log: str | None, db: str | None) -> None:
    """Score every selected patch with saved model MODEL_ID (see `eominer models`) and
    write the scores as annotations (source 'apply'). Interrupted? Run the same command
    again: finished blocks are kept."""
    from compute.apply import run_apply
    from compute.progress import job_progress
    from eominer.store import open_store

    with open_store(db) as store, job_progress("apply", progress_log) as bar:
        report = run_apply(
            store, model_id, split_ids(products) or None, where=where, aoi=aoi,
            threshold=threshold, address=ray_address_for(workers == 0, ray_address),
            num_cpus=num_cpus,
            num_workers=workers, block_patches=block_patches, retries=retries, rerun=rerun,
            on_start=bar.on_start, on_task=bar.on_task, on_finish=bar.on_finish,
        )
        for note in report.notes:
            bar.print(f"note: {note}")
        rate = report.patches_written / report.seconds if report.seconds else 0.0
        bar.print(
            f"{report.tasks_done} task(s) run {report.ran_on}, "
            f"{report.tasks_skipped} already done, {len(report.failed)} failed; "
            f"{report.patches_written} patches scored in {report.seconds:.1f} s "
            f"({rate:,.0f} patches/s)"
        )
        n, n_pos, _ = store.model_annotation_counts(model_id, "apply")
        bar.print(f"model {model_id}: {n} annotations from apply, {n_pos} positive "
                  f"(score >= {report.threshold:g}) in {len(report.products)} product(s)")
        report.raise_for_failures()
