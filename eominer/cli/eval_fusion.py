"""`eominer eval fusion`: cross-validated S2 / S1 / fused land-cover classification."""

from __future__ import annotations

import click


@click.command()
@click.option("--data", "data_root", required=True, type=click.Path(exists=True),
              help="BigEarthNet folder (v1 GeoTIFF folders and/or v2 LMDB), any size.")
@click.option("--folds", "k", default=3, show_default=True)
@click.option("--repeats", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--no-cloudy", is_flag=True, help="Skip the clouded-S2 rows.")
@click.option("--network", is_flag=True,
              help="Also train and score the two-branch network per fold (slow: minutes).")
@click.option("--epochs", default=30, show_default=True, help="Network epochs per fold.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
def fusion(data_root: str, k: int, repeats: int, seed: int, no_cloudy: bool, network: bool,
           epochs: int, fmt: str) -> None:
    """Micro/macro F1 and mAP (mean ± std over folds) for S2 alone, S1 alone, feature fusion
    and decision fusion, with the caveats the sample size imposes."""
    import json

    import pyarrow as pa

    from eominer.cli.output import render
    from eominer.evaluation import bigearthnet
    from eominer.evaluation.fusion import default_methods, evaluate, network_methods
    from eominer.evaluation.provenance import environment, footer

    data = bigearthnet.load(data_root)
    methods = default_methods(include_cloudy=not no_cloudy)
    if network:
        methods += network_methods(include_cloudy=not no_cloudy)
    report = evaluate(data, k=k, repeats=repeats, seed=seed, methods=methods,
                      network_epochs=epochs)
    rows = report.summary()
    env = environment()
    if fmt == "json":  # each row names where it ran, as `eval learning`'s rows do
        click.echo(json.dumps([{**r, "environment": env} for r in rows], indent=1))
    else:
        click.echo(render(pa.Table.from_pylist(rows), fmt,
                          title=f"S1/S2 fusion, {report.n_patches} patches, {k}-fold x {repeats}"))
    if fmt == "table":
        if report.unpaired:
            click.echo(f"({report.unpaired} patches without a partner were skipped)")
        click.echo("labels (positives): " + ", ".join(
            f"{n} ({c})" for n, c in report.label_counts.items()))
        click.echo("caveats:")
        for c in report.caveats():
            click.echo(f"- {c}")
        click.echo(footer(env))
