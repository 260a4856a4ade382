"""`eominer eval change`: change maps scored on OSCD-shaped labelled data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from eominer.evaluation.change import CityResult


@click.command()
@click.option("--data", "root", required=True, type=click.Path(exists=True, file_okay=False),
              help="OSCD-shaped folder: images/<city>/imgs_1|imgs_2, labels/<city>/cm/.")
@click.option("--cities", default=None,
              help="Comma-separated city names (default: every city with labels).")
@click.option("--methods", show_default=True,
              default="encoder,cva,irmad,selftrain,selftrain_encoder,regression,selftrain_regression")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the results as JSON to this file.")
def change(root: str, cities: str | None, methods: str, seed: int,
           json_out: str | None) -> None:
    """Precision, recall, F1, Cohen's kappa (binary map) and area under the
    precision-recall curve (probability map) per city and overall, for every method,
    with f1_bound: the best F1 any threshold of the probability gives (labels choose it;
    overall, one per city), which no threshold rule can pass. Then, with several cities
    and methods, each city scored with the method that did best on the other cities (an
    estimate for a city nobody tuned on)."""
    import json
    from dataclasses import asdict

    import pyarrow as pa

    from eominer.change.maps import DEFAULT_METHOD, GUIDES
    from eominer.cli.output import render
    from eominer.evaluation.change import chosen_elsewhere, evaluate
    from eominer.evaluation.provenance import environment

    env = environment()  # when it started, and with what
    chosen = [c.strip() for c in cities.split(",") if c.strip()] if cities else None
    ms = [m.strip() for m in methods.split(",") if m.strip()]

    def show(r: CityResult) -> None:
        click.echo(f"{r.city:12s} {r.method:8s} F1 {r.scores.f1:.3f}  ({r.seconds:.1f} s)",
                   err=True)

    results, overall = evaluate(root, chosen, ms, seed, progress=show)
    rows = [
        {"city": r.city, "method": r.method, "precision": r.scores.precision,
         "recall": r.scores.recall, "f1": r.scores.f1, "kappa": r.scores.kappa,
         "auprc": r.scores.auprc, "f1_bound": r.scores.f1_bound, "seconds": r.seconds}
        for r in results
    ] + [
        {"city": "overall", "method": m, "precision": s.precision, "recall": s.recall,
         "f1": s.f1, "kappa": s.kappa, "auprc": s.auprc, "f1_bound": s.f1_bound,
         "seconds": sum(r.seconds for r in results if r.method == m)}
        for m, s in overall.items()
    ]
    table = pa.table({k: [round(v, 3) if isinstance(v, float) else v for v in
                          (row[k] for row in rows)] for k in rows[0]})
    click.echo(render(table, "table", title="change detection"))
    lead = next((m for m in (DEFAULT_METHOD["S2"], *GUIDES, "selftrain", "encoder")
                 if m in overall), None)  # the method the others are compared with
    if lead is not None:
        for m, s in overall.items():
            if m != lead:
                click.echo(f"{lead} F1 - {m} F1 = {overall[lead].f1 - s.f1:+.3f} overall")
        for city in dict.fromkeys(r.city for r in results):
            by = {r.method: r.scores.f1 for r in results if r.city == city}
            worse = [m for m, f in by.items() if m != lead and f > by[lead]]
            if worse:
                click.echo(f"  {city}: {lead} F1 {by[lead]:.3f} below "
                           + ", ".join(f"{m} {by[m]:.3f}" for m in worse))
        b = overall[lead]
        click.echo(f"{lead}: F1 {b.f1:.3f} overall; with each city's threshold chosen on its "
                   f"labels at most {b.f1_bound:.3f} (the rest is the map's ranking)")
    held_out = None
    if len(ms) > 1 and len({r.city for r in results}) > 1:
        picks, s = chosen_elsewhere(results)
        held_out = {"methods": picks, **{k: v for k, v in asdict(s).items() if k != "auprc"}}
        click.echo("each city with the method of the best F1 on the other cities: "
                   + ", ".join(f"{c} {m}" for c, m in picks.items()))
        click.echo(f"  overall F1 {s.f1:.3f} (precision {s.precision:.3f}, recall "
                   f"{s.recall:.3f}): no method chosen on the city it is scored on")
    if json_out:
        with open(json_out, "w") as fh:
            json.dump({"rows": rows, "overall": {m: asdict(s) for m, s in overall.items()},
                       "chosen_elsewhere": held_out, "environment": env}, fh, indent=1)
