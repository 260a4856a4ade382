"""`eominer models`: the trained models of the workspace (saved session classifiers,
the encoder, the fusion network)."""

from __future__ import annotations

import click
import pyarrow as pa

from eominer.cli import db_option
from eominer.cli.output import render

COLUMNS = ("model_id", "kind", "model", "concept", "feature_sets", "session", "labels",
           "ap_cv", "threshold", "created")


@click.command()
@click.option("--kind", default=None, help="Only this kind: classifier, encoder, fusion.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@db_option
def models(kind: str | None, fmt: str, db: str | None) -> None:
    """List saved models, oldest first. Classifiers (saved from a session, or by
    publishing it) are what `eominer apply MODEL_ID` takes."""
    from eominer.store import open_store

    with open_store(db) as store:
        rows = store.models(kind)
    out = []
    for m in rows:
        p, met = m["params"], m["metrics"]
        clf = m["kind"] == "classifier"
        out.append({
            "model_id": m["model_id"], "kind": m["kind"],
            "model": p.get("model_kind", "") if clf else "",
            "concept": p.get("concept", "") if clf else "",
            "feature_sets": ",".join(p.get("feature_set_ids", [])) if clf else "",
            "session": p.get("session_id", "") if clf else "",
            "labels": (f"{p.get('n_labels', 0)} ({p.get('n_positive', 0)}+ / "
                       f"{p.get('n_negative', 0)}-)") if clf else "",
            # three decimals: a cross-validated AP on tens of labels has no more
            "ap_cv": None if not clf or met.get("ap_cv") is None else round(met["ap_cv"], 3),
            # `eominer apply`'s default: where the session was last published
            "threshold": p.get("threshold") if clf else None,
            "created": m["created"],
        })
    table = pa.Table.from_pylist(out) if out else pa.table(
        {c: pa.array([], pa.string()) for c in COLUMNS})
    click.echo(render(table.select(list(COLUMNS)), fmt))
