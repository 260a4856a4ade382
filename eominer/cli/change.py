"""`eominer change`: change map between two dates (or many pairs, on Ray)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click

from eominer.cli import (
    catalogue,
    catalogue_options,
    db_option,
    ray_address_for,
    ray_address_option,
    split_ids,
    workers_option,
)

if TYPE_CHECKING:
    from eominer.change.run import ChangeRun
    from eominer.store import Store

# = eominer.change.maps.ALL_METHODS and S1_METHODS (not imported: this module loads
# without numpy; tests/cli/test_change.py checks they agree)
ALL_METHODS = ("encoder", "cva", "irmad", "selftrain", "selftrain_encoder", "regression",
               "selftrain_regression", "logratio", "rom")
S1_METHODS = ("logratio", "rom")


def _line(before: str, after: str, run: ChangeRun) -> str:
    text = (
        f"{before} -> {after}  {run.method}  changed {run.changed_fraction:.2%} "
        f"(threshold {run.threshold:.3f}, {run.threshold_rule})  valid {run.valid_fraction:.1%}  "
        f"cloud {run.cloud_fraction:.2%}\n  map {run.probability_path}\n"
        f"  binary {run.binary_path}"
    )
    if run.reprojected:
        text += "\n  second date reprojected onto the first date's grid"
    if run.pair_id:
        text += (f"\n  pair {run.pair_id}: {run.patches_scored} patch scores in feature set "
                 f"{run.feature_set_id}")
        if run.tails_feature_set_id:
            text += (f"\n  tails and spreads of the differences (diff_tails) in feature set "
                     f"{run.tails_feature_set_id}")
    for note in run.warnings:
        text += f"\n  warning: {note}"
    return text


def _consecutive(store: Store, tiles: tuple[str, ...], sensor: str | None,
                 since: dt.datetime | None, until: dt.datetime | None,
                 max_cloud: float | None) -> list[tuple[str, str]]:
    """The pairs of consecutive dates of the chosen products, said before they run."""
    from eominer.change.consecutive import consecutive_pairs

    rows = catalogue(store, tiles, sensor, since, until, max_cloud).to_pylist()
    found = consecutive_pairs(rows)
    for note in found.notes:
        click.echo(f"note: {note}", err=True)
    if not found.pairs:
        raise click.UsageError(
            f"no two dates of one place among the {len(rows)} product(s) chosen: "
            "--consecutive pairs each product with the next date of its S2 tile's grid or "
            "S1 orbit (`eominer products` lists them; ingest another date)")
    places = ", ".join(f"{name}: {n}" for name, n in found.places.items())
    click.echo(f"note: {len(found.pairs)} pair(s) of consecutive dates ({places})", err=True)
    return found.pairs


def _check_dates(store: Store, names: tuple[str, ...], pairs: list[tuple[str, str]]) -> list:
    """The sets of `--features`, checked before any map is computed: ingested products
    on one grid, each date with rows of each set (eominer.change.dates)."""
    from eominer.change.dates import check_sources

    wanted = split_ids(names)
    if not wanted:
        return []
    paths = [p for pair in pairs for p in pair if not store.product_exists(p)]
    if paths:
        raise click.UsageError(f"--features needs ingested products; {paths[0]} is not one "
                               "(`eominer ingest` it first)")
    sets = [store.require_feature_set(fid) for fid in store.resolve_feature_sets(wanted)]
    check_sources(store, sets, pairs)
    return sets


def _write_dates(store: Store, sources: list, pairs: list[tuple[str, str]]) -> None:
    """`--features`: the features of both dates of each pair, one transaction a pair."""
    from eominer.change.dates import register, write_pair

    if not sources or not pairs:
        return
    for fs in sources:
        dates, rows = register(store, fs), 0
        for first, second in pairs:
            with store.transaction():
                rows += write_pair(store, dates, first, second)
        click.echo(f"features of both dates: {dates.feature_set_id} ({len(dates.columns)} "
                   f"columns: {fs.name} at date 1, date 2 and their difference), {rows:,} "
                   f"patch rows of {len(pairs)} pair(s)")


@click.command()
@click.argument("before", required=False)
@click.argument("after", required=False)
@click.option("--method", type=click.Choice(list(ALL_METHODS)), default=None,
              help="Sentinel-2 pairs: selftrain_regression (selftrain seeded and guided by "
              "the cross-date regression's residual; the default), selftrain_encoder (the "
              "same guided by an encoder learned on the pair), regression, encoder, cva, irmad "
              "or selftrain. Sentinel-1 pairs: rom (ratio of means; the default) or logratio.")
@click.option("--fuse", nargs=2, metavar="BEFORE AFTER", default=None,
              help="A pair of the other sensor over the same place: S1 + S2 fused map "
              "(mean of the two probabilities; the S2 pair's grid).")
@click.option("--s1-method", type=click.Choice(list(S1_METHODS)), default=None,
              help="With --fuse: the Sentinel-1 method (default rom).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Probability COG path (the binary map goes beside it as *_binary.tif); "
              "default: $EOMINER_HOME/layers/change_<method>_<before>__<after>.tif.")
@click.option("--pairs", "pairs_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="File of 'BEFORE AFTER' lines: every pair as a Ray "
              "task; a re-run skips the pairs an earlier run finished.")
@click.option("--consecutive", is_flag=True,
              help="Instead of --pairs: each ingested product with the next date of its "
              "place (an S2 tile's grid; an S1 relative orbit and pass, overlapping), "
              "optionally of some tiles, sensor, dates or cloud cover (the options below, "
              "as `eominer products` takes them). Runs like --pairs.")
@catalogue_options(within="With --consecutive")
@ray_address_option("address", ", with --pairs")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None,
              help="CPUs of a local Ray (with --pairs).")
@workers_option
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-cloud-mask", is_flag=True,
              help="Score clouded pixels like clear ones (the default masks them); the "
              "run's feature sets get ids of their own.")
@click.option("--features", "dates_of", multiple=True, metavar="SETS",
              help="Also the features of both dates of these extracted sets (e.g. "
              "spectral,gabor): per patch of the first date, the set's columns at date 1, "
              "date 2 and their difference, in the set dates_<name> (every pair's rows; "
              "ingested products on one grid; a pair done earlier only gets them).")
@click.option("--progress-log", type=click.Path(dir_okay=False), default=None,
              help="With --pairs: also append one JSON line per finished pair to this file.")
@db_option
def change(
    before: str | None, after: str | None, method: str | None, fuse: tuple[str, str] | None,
    s1_method: str | None, out: str | None,
    pairs_file: str | None, consecutive: bool, tiles: tuple[str, ...], sensor: str | None,
    since: dt.datetime | None, until: dt.datetime | None, max_cloud: float | None,
    address: str | None, num_cpus: int | None, workers: int | None, seed: int,
    no_cloud_mask: bool, dates_of: tuple[str, ...], progress_log: str | None,
    db: str | None,
) -> None:
    """Change map between BEFORE and AFTER: ingested product ids or product paths of the
    same place, both Sentinel-2 or both Sentinel-1 (same orbit). Writes a
    change-probability COG and a binary COG (S2: Otsu threshold; S1: Kittler-Illingworth
    with a CFAR guard); for ingested products also records the pair and its per-patch
    change scores. --fuse adds a pair of the other sensor: the S1 + S2 fused map."""
    import warnings

    from eominer.change.align import PairWarning
    from eominer.change.run import detect_change, read_pairs_file
    from eominer.store import open_store

    many = "--consecutive" if consecutive else "--pairs FILE" if pairs_file else None
    if consecutive and pairs_file:
        raise click.UsageError("give --pairs FILE or --consecutive, not both")
    if many is None and (before is None or after is None):
        raise click.UsageError("give BEFORE and AFTER, --pairs FILE or --consecutive")
    if many and (before or after or out or fuse):
        raise click.UsageError(f"{many} replaces BEFORE AFTER, --out and --fuse")
    if many is None and workers is not None:
        raise click.UsageError("--workers goes with --pairs FILE or --consecutive (one pair "
                               "runs in this process)")
    if not consecutive and (tiles or sensor or since or until or max_cloud is not None):
        raise click.UsageError("--tile, --sensor, --since, --until and --max-cloud choose "
                               "the products of --consecutive")
    warnings.simplefilter("ignore", PairWarning)  # reported in the output lines instead
    with open_store(db) as store:
        if many:
            pairs = read_pairs_file(pairs_file) if pairs_file else _consecutive(
                store, tiles, sensor, since, until, max_cloud)
            dated = _check_dates(store, dates_of, pairs)

            finished = []

            def log_row(row: dict) -> None:  # --progress-log: what the app's job list reads
                if progress_log:
                    import json

                    with open(progress_log, "a", encoding="utf-8") as log:
                        log.write(json.dumps(row) + "\n")

            def show(i: int, run: ChangeRun, resumed: bool) -> None:
                a, b = pairs[i]
                click.echo(_line(a, b, run) + ("\n  (done by an earlier run)" if resumed else ""))
                finished.append(i)
                log_row({"pair": [a, b], "done": len(finished), "of": len(pairs)})

            def said(line: str) -> None:  # a pair's step (`task_says`)
                click.echo(line, err=True)
                log_row({"said": line})

            from compute.change import run_pairs
            from compute.runner import says_to

            with says_to(said):
                report = run_pairs(pairs, method, store, seed,
                                   address=ray_address_for(workers == 0, address, "address"),
                                   num_cpus=num_cpus, on_pair=show,
                                   mask_clouds=not no_cloud_mask, num_workers=workers)
            done = sum(r is not None for r in report.runs)
            click.echo(f"{done} of {len(pairs)} pair(s) done ({report.resumed} by an earlier "
                       f"run), {len(report.failed)} failed", err=True)
            for note in report.notes:
                click.echo(f"note: {note}", err=True)
            _write_dates(store, dated, [p for p, r in zip(pairs, report.runs) if r is not None])
            report.raise_for_failures()
            return
        assert before is not None and after is not None
        dated = _check_dates(store, dates_of, [(before, after)])
        run = detect_change(before, after, method, out, store, seed,
                            mask_clouds=not no_cloud_mask,
                            progress=lambda msg: click.echo(msg, err=True),
                            fuse=tuple(fuse) if fuse else None, s1_method=s1_method)
        click.echo(_line(before, after, run))
        _write_dates(store, dated, [(before, after)])
