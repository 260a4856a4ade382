"""`eominer session`: mining sessions from the terminal (the app uses the same API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np
import pyarrow as pa

from eominer.cli import db_option, split_ids, user_option
from eominer.cli.output import render
from eominer.cli.sheet import sheet_options, write_sheet
from eominer.store.records import BATCH_MAX, SPATIAL_CONTEXT_MAX

if TYPE_CHECKING:
    from eominer.learning.session import Session
    from eominer.store import Store


def _open(store: Store, session_id: str, accept: bool = False) -> Session:
    from eominer.learning.session import Session

    return Session.open(store, session_id, accept_feature_change=accept)


@click.group()
def session() -> None:
    """Relevance-feedback mining sessions: create, label, round, publish, export."""


@session.command("create")
@click.option("--name", required=True)
@user_option("--owner", help="User name of the analyst (the app's user without a log-in).")
@click.option("--concept", required=True, help="Taxonomy label, e.g. new_construction.")
@click.option("--product", "products", multiple=True,
              help="Product ids (comma-separated or repeated). Default: every product with "
                   "patches at the level (and features of --features), those the --aoi "
                   "touches when one is given, as the app ticks them.")
@click.option("--level", type=int, required=True, help="Patch size of the grid level (px).")
@click.option("--features", "feature_sets", multiple=True,
              help="Feature sets (comma-separated or repeated): ids, or names such as "
                   "spectral where one set has that name. Default: every set with features "
                   "for all the products at the level, as the app offers.")
@click.option("--model", "model_kind", default="auto", show_default=True,
              help="auto (rbf_svm up to 1M patches in the scope, logistic above: "
                   "docs/learning.md), logistic, linear_svm, rbf_svm, random_forest, "
                   "qbe_mean, qbe_knn.")
@click.option("--strategy", default="diverse", show_default=True,
              help="margin, entropy, random, most_relevant, diverse.")
@click.option("--batch", type=click.IntRange(1, BATCH_MAX), default=20, show_default=True,
              help=f"Questions per round (at most {BATCH_MAX}).")
@click.option("--max-cloud", type=click.FloatRange(0.0, 1.0), default=None, metavar="FRACTION",
              help="Leave out patches whose cloud_fraction is above this (e.g. 0.1); patches "
                   "with an unknown cloud fraction (S1, no cloud mask) stay in.")
@click.option("--aoi", type=click.Path(exists=True, dir_okay=False), default=None,
              metavar="FILE", help="Area of interest (GeoJSON, GeoPackage, KML, shapefile): "
              "keeps the patches whose lon/lat box intersects its polygons.")
@click.option("--where", default=None, metavar="SQL",
              help="Keep the patches for which this WHERE over the view scope_rows holds "
                   "(columns: docs/schema.md), e.g. \"acquired >= DATE '2017-01-01' AND "
                   "cloud_fraction < 0.1\". Runs on the read-only SQL path.")
@click.option("--spatial-context", type=click.FloatRange(0.0, SPATIAL_CONTEXT_MAX),
              default=0.0, show_default=True, metavar="A",
              help="Rank by each patch's score mixed with its touching patches' (A: the "
                   "neighbours' weight; 0.3 is the measured choice, docs/learning.md): for "
                   "objects that span several patches.")
@click.option("--spatial-weight", type=click.FloatRange(0.0), default=0.0,
              show_default=True, metavar="W",
              help="How far the diverse strategy spreads each batch on the map (patch "
                   "centres beside the features; 0: by features only; 1 helps forest a "
                   "little, measured in docs/learning.md).")
@click.option("--prior", default=None, metavar="COLUMN",
              help="Start the ranking from this feature column (e.g. change_prob_mean of a "
                   "change set, for new construction), fading as labels come "
                   "(docs/learning.md, \"A feature column as the prior\").")
@click.option("--prior-weight", type=float, default=4.0, show_default=True, metavar="W",
              help="The prior's weight in logit units with no label (negative: low values "
                   "rank first).")
@click.option("--prior-half", type=click.FloatRange(0.0), default=20.0, show_default=True,
              metavar="N", help="Labels at which the prior's weight has halved (0: never fades).")
@db_option
def create(name: str, owner: str, concept: str, products: tuple[str, ...], level: int,
           feature_sets: tuple[str, ...], model_kind: str, strategy: str, batch: int,
           max_cloud: float | None, aoi: str | None, where: str | None, spatial_context: float,
           spatial_weight: float, prior: str | None, prior_weight: float, prior_half: float,
           db: str | None) -> None:
    """Create a session and print its id."""
    from eominer.learning.aoi import read_aoi, stored_aoi
    from eominer.learning.session import Session
    from eominer.store import open_store

    area = stored_aoi(read_aoi(aoi)) if aoi else None
    products, feature_sets = split_ids(products), split_ids(feature_sets)
    with open_store(db) as store:
        named = bool(products)
        if not named:
            from eominer.learning.scope import scope_products

            products, how = scope_products(
                store, level, store.resolve_feature_sets(feature_sets) if feature_sets else (),
                area.wkt if area else None)
            click.echo(f"note: {len(products)} product{'s' if len(products) > 1 else ''} "
                       f"({how}; --product chooses)", err=True)
        if not feature_sets:
            missing = [p for p in products if not store.product_exists(p)]
            if missing:
                raise click.UsageError(f"product(s) {', '.join(missing)} are not in {store.url}: "
                                       "`eominer products` lists the ids")
            lacking = [p for p in products if level not in store.patch_levels([p])]
            if lacking:  # before "no feature set", which would send the user to extract
                raise click.UsageError(
                    f"no patches at level {level} in {', '.join(lacking)} (levels there: "
                    f"{store.patch_levels(lacking)}): choose --level among them")
            feature_sets = store.covering_feature_sets(products, level)
            if not feature_sets:
                raise click.UsageError(
                    f"no feature set has features for all of {', '.join(products)} at level "
                    f"{level}: run `eominer extract` for them, or give --features"
                    + ("" if named else " or --product"))
            click.echo(f"note: feature sets {', '.join(feature_sets)} (all those covering "
                       "the products; --features chooses)", err=True)
        s = Session.create(store, name, owner, concept, products, level,
                           feature_sets, model_kind=model_kind, strategy=strategy,
                           params={"batch_size": batch, "spatial_context": spatial_context,
                                   "spatial_weight": spatial_weight,
                                   "prior": prior, "prior_weight": prior_weight,
                                   "prior_half": prior_half},
                           max_cloud=max_cloud, aoi=area,
                           where=where)
        click.echo(s.session_id)
        if area is not None and area.note:
            click.echo(f"note: {area.note}", err=True)
        if area is not None or where:
            by = " and ".join(w for w, on in (("the area of interest", area is not None),
                                               ("the WHERE", bool(where))) if on)
            total = store.scope_patches(products, level).num_rows
            click.echo(f"note: {by} keep {s.data.n + s.missing} of the {total} patches at "
                       f"level {level}", err=True)
        if max_cloud is not None:
            n = store.cloudy_patches(products, level, max_cloud)
            click.echo(f"note: {n} patches with cloud_fraction > {max_cloud:g} left out",
                       err=True)
        if s.missing:
            click.echo(f"note: {s.missing} patches of the scope have no features", err=True)


@session.command("label")
@click.argument("session_id")
@click.argument("answers", nargs=-1, required=True)
@user_option(help="Who answers.")
@click.option("--verify", is_flag=True, help="Answers to a verification sample.")
@db_option
def label(session_id: str, answers: tuple[str, ...], user: str, verify: bool,
          db: str | None) -> None:
    """Record answers as PATCH_ID=+1 / PATCH_ID=-1 (also y/n)."""
    from eominer.errors import SessionError
    from eominer.store import open_store

    values = {"+1": 1, "1": 1, "y": 1, "yes": 1, "-1": -1, "n": -1, "no": -1}
    parsed = []
    for a in answers:
        pid, _, val = (part.strip() for part in a.partition("="))
        if not pid.isdigit() or val.lower() not in values:
            raise SessionError(f"cannot read answer {a!r}: expected PATCH_ID=+1 (or =y, "
                               "=yes) for yes, PATCH_ID=-1 (or =n, =no) for no, e.g. 237=y")
        parsed.append((int(pid), values[val.lower()]))
    with open_store(db) as store:
        s = _open(store, session_id)
        s.data.rows([pid for pid, _ in parsed])  # every patch in the scope before a write
        with store.transaction():  # all the answers, or none of them
            for pid, val in parsed:
                s.label(pid, val, user, purpose="verify" if verify else "train")
    click.echo(f"{len(parsed)} label(s) recorded")
    if verify:
        click.echo(f"note: `eominer session quality {session_id}` estimates precision and "
                   "recall from the answers", err=True)


@session.command("undo")
@click.argument("session_id")
@user_option(help="Whose most recent label goes.")
@db_option
def undo(session_id: str, user: str, db: str | None) -> None:
    """Remove the user's most recent label."""
    from eominer.store import open_store

    with open_store(db) as store:
        last = _open(store, session_id).undo_last_label(user)
    click.echo(f"removed label {last.label:+d} on patch {last.patch_id}" if last
               else "nothing to undo")


@session.command("round")
@click.argument("session_id")
@click.option("--n", type=click.IntRange(1, BATCH_MAX), default=None,
              help="Questions to ask (default: the session's batch).")
@click.option("--model", "model_kind", default=None,
              help="This round's model (default: the session's; auto as in session create).")
@click.option("--strategy", default=None)
@click.option("--accept-feature-change", is_flag=True)
@sheet_options
@db_option
def round_(session_id: str, n: int | None, model_kind: str | None, strategy: str | None,
           accept_feature_change: bool, sheet: str | None, false_colour: bool, context: float,
           db: str | None) -> None:
    """Fit, score every patch, and print the next patches to label."""
    from eominer.store import open_store

    with open_store(db) as store:
        s = _open(store, session_id, accept_feature_change)
        r = s.run_round(n, model_kind, strategy)
        if sheet and len(r.query_ids):
            write_sheet(store, Path(sheet), r.query_ids,
                        None if r.scores is None else r.scores[s.data.rows(r.query_ids)],
                        false_colour, context)
    click.echo(f"round {r.round}: {r.model_kind}/{r.strategy}, {r.n_labels} labels "
               f"({r.n_positive}+ / {r.n_negative}-) in {r.seconds * 1e3:.0f} ms")
    for note in r.notes:
        click.echo(f"note: {note}")
    q = r.quality
    if q.get("flip_rate") is not None:
        click.echo(f"ranking change: {q['flip_rate']:.2%} flipped, "
                   f"top-100 overlap {q['topk_overlap']:.0%}")
    click.echo(f"advice: {q.get('advice', '')}")
    click.echo("next: " + (" ".join(str(int(i)) for i in r.query_ids) if len(r.query_ids)
                           else "none (see the notes above)"))
    if sheet and len(r.query_ids):
        click.echo(f"sheet: {sheet} ({len(r.query_ids)} patches, in this order)")


@session.command("next")
@click.argument("session_id")
@sheet_options
@db_option
def next_(session_id: str, sheet: str | None, false_colour: bool, context: float,
          db: str | None) -> None:
    """Print the latest round's questions not answered yet (after a break, in another
    shell: what the app shows in Mine), without fitting again."""
    from eominer.store import open_store

    with open_store(db) as store:
        s = _open(store, session_id)
        ids = s.open_questions()
        fitted = any(r.fitted for r in s.rounds())
        if sheet and len(ids):
            write_sheet(store, Path(sheet), ids,
                        s.current_scores()[s.data.rows(ids)] if fitted else None,
                        false_colour, context)
        why = "no round yet: run `eominer session round`" if not s.rounds() else \
            "every question of the latest round is answered: run a round"
    click.echo("next: " + (" ".join(str(int(i)) for i in ids) if len(ids) else f"none ({why})"))
    if sheet and len(ids):
        click.echo(f"sheet: {sheet} ({len(ids)} patches, in this order)")


@session.command("verify")
@click.argument("session_id")
@click.option("--n", type=click.IntRange(1, None), default=40, show_default=True,
              help="Patches in the sample.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.5,
              show_default=True, help="Score of the current positives (a round keeps the "
              "threshold of its first sample).")
@sheet_options
@db_option
def verify(session_id: str, n: int, threshold: float, sheet: str | None, false_colour: bool,
           context: float, db: str | None) -> None:
    """Print a stratified verification sample of the latest round (the app's "Check
    quality"): answer it with `session label --verify`, then `session quality`. Its
    sheet has no scores, so that the model does not lead the answers."""
    from eominer.store import open_store

    with open_store(db) as store:
        s = _open(store, session_id)
        ids, t = s.quality_sample(threshold, n)
        r = s.rounds()[-1].round
        if sheet and len(ids):
            write_sheet(store, Path(sheet), np.asarray(ids, np.int64), None, false_colour,
                        context)
    click.echo(" ".join(str(int(i)) for i in ids))
    if sheet and len(ids):
        click.echo(f"sheet: {sheet} ({len(ids)} patches, in this order)", err=True)
    click.echo(f"note: round {r}, positives score >= {t:.2f}"
               + ("" if abs(t - threshold) < 1e-9 else " (the threshold of this round's "
                  "first sample)")
               + f"; answer with: eominer session label {session_id} ID=+1|-1 ... --verify "
               "--user NAME", err=True)


@session.command("quality")
@click.argument("session_id")
@db_option
def quality(session_id: str, db: str | None) -> None:
    """Precision and recall (95 % intervals) of the latest round's positives from the
    answers to its verification sample; stored with the round, as the app does."""
    from eominer.errors import SessionError
    from eominer.learning.quality_check import interval_text, strata
    from eominer.store import open_store

    with open_store(db) as store:
        s = _open(store, session_id)
        est = s.check_quality()
        r = s.rounds()[-1]
        if est is None:
            empty = [st.name for st in strata(s) if not st.answered]
            raise SessionError(
                f"round {r.round}: no estimate yet, the sample's strata {', '.join(empty)} "
                "have no answer: answer more of `eominer session verify` with "
                "`eominer session label --verify`")
    click.echo(f"round {r.round}, positives score >= {r.verify_threshold:.2f}, "
               f"{est.verified} answers")
    click.echo(f"precision {interval_text(est.precision, est.precision_low, est.precision_high)}")
    click.echo(f"recall {interval_text(est.recall, est.recall_low, est.recall_high)}")
    click.echo(f"positives in the scope: ~{est.positives:.0f} "
               f"({est.predicted_positive} scoring >= {r.verify_threshold:.2f})")


@session.command("publish")
@click.argument("session_id")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Score for 'positive' (default: the session's publish threshold, the "
                   "one it was last published at, 0.5 at first). It becomes the session's "
                   "publish threshold: the default of export, refine and apply.")
@db_option
def publish(session_id: str, threshold: float | None, db: str | None) -> None:
    """Write the result as annotations (queryable with `eominer sql`)."""
    from eominer.store import open_store

    with open_store(db) as store:
        s = _open(store, session_id)
        version = s.publish(threshold)
        n = len(store.positive_annotations(session_id))
        q = s.quality()
    click.echo(f"published {s.concept} as model {version}: {n} positive patches (score >= "
               f"{s.params.publish_threshold:g}, or answered yes)")
    # how far to trust what was written (the app shows it in the rounds summary)
    if q.get("precision") is not None:
        click.echo(f"verified precision {q['precision']:.0%} (95 % CI "
                   f"{q['precision_low']:.0%}-{q['precision_high']:.0%}, "
                   f"{q['n_verified']} answers)", err=True)
    if not q.get("stop") and q.get("advice"):
        click.echo(f"note: {q['advice']}", err=True)


@session.command("save-model")
@click.argument("session_id")
@db_option
def save_model_cmd(session_id: str, db: str | None) -> None:
    """Save the session's current classifier (a row of `models` and a file in the
    workspace) for `eominer apply`; prints its id, the model version."""
    from eominer.store import open_store

    with open_store(db) as store:
        s = _open(store, session_id)
        mid = s.save_model()
        m = store.model(mid)
    met = m["metrics"]
    ap = met.get("ap_cv")
    click.echo(mid)
    click.echo(f"saved {m['params']['model_kind']} classifier of {s.concept} "
               f"({m['params']['n_labels']} labels"
               + (f", cross-validated AP {ap:.3f}" if ap is not None else "")
               + (f", precision {met['precision']:.2f} on {met['n_verified']} verified"
                  if met.get("precision") is not None else "")
               + f") to {m['path']}", err=True)


@session.command("export")
@click.argument("session_id")
@click.option("--to", "folder", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: workspace exports/<session>; a copied "
              "database's: exports/<session>-2, beside its original's).")
@click.option("--format", "formats", multiple=True,
              type=click.Choice(["geojson", "gpkg", "cog", "stac", "parquet", "fgb"]),
              help="Patches: geojson, gpkg, cog, stac (default all four). With --polygons: "
                   "geojson, gpkg, parquet (GeoParquet), fgb (FlatGeobuf), stac (default all).")
@click.option("--min-score", type=float, default=0.0, show_default=True,
              help="Patch exports keep patches scoring at least this.")
@click.option("--polygons", is_flag=True,
              help="Dissolve the positive patches into polygons (area in ha, patch count, "
                   "mean score) instead of one box per patch.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="A patch is positive when its score is at least this (default: the "
                   "session's publish threshold, the last one published at, 0.5 at first): "
                   "the `positive` field of geojson "
                   "and gpkg, and with --polygons which patches are dissolved.")
@click.option("--published", is_flag=True,
              help="--polygons: dissolve the published positive annotations instead of the "
                   "current ranking (with --threshold: published scores at least this).")
@db_option
def export(session_id: str, folder: str | None, formats: tuple[str, ...], min_score: float,
           polygons: bool, threshold: float | None, published: bool, db: str | None) -> None:
    """Export the ranking: GeoJSON, GeoPackage, COG score maps, STAC Items; or, with
    --polygons, the positive patches dissolved into polygons."""
    from pathlib import Path

    from eominer.learning import export as ex
    from eominer.store import open_store
    from eominer.workspace import session_exports

    if not polygons and {"parquet", "fgb"} & set(formats):
        raise click.UsageError("parquet and fgb hold polygons: add --polygons")
    if not polygons and published:
        raise click.UsageError("--published goes with --polygons")
    with open_store(db) as store:
        s = _open(store, session_id)
        out = Path(folder) if folder else None
        try:  # the workspace's folder names the database (a copy writes beside it)
            copied = store.copied_from()
            out = out or session_exports(session_id, store.file_path(),
                                         copied[0] if copied else None)
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.BadParameter(
                f"cannot create the folder {out or exc.filename}: {exc.strerror}; give a "
                "folder you can write to", param_hint="'--to'") from exc
        if polygons:
            kinds = [f for f in formats if f != "stac"] if formats else list(ex.POLYGON_FORMATS)
            if "cog" in kinds:
                raise click.UsageError("--polygons writes geojson, gpkg, parquet, fgb, stac")
            written = ex.export_polygons(s, out, kinds, threshold=threshold,
                                         published=published,
                                         stac=not formats or "stac" in formats)
        else:
            formats = formats or ("geojson", "gpkg", "cog", "stac")
            written = []
            # the session in the name, as the COGs, STAC Items and polygons have it: two
            # sessions of one concept exported to one --to folder keep both files
            stem = f"{s.concept}-{s.session_id}"
            if "geojson" in formats:
                written.append(ex.export_geojson(s, out / f"{stem}.geojson", min_score,
                                                 threshold))
            if "gpkg" in formats:
                written.append(ex.export_gpkg(s, out / f"{stem}.gpkg", min_score, threshold))
            cogs = ex.export_cogs(s, out) if {"cog", "stac"} & set(formats) else {}
            written.extend(cogs.values())
            if "stac" in formats:
                written.extend(ex.export_stac(s, out, cogs))
    for p in written:
        click.echo(str(p))


@session.command("list")
@click.option("--owner", default=None)
@click.option("--archived", is_flag=True, help="List the archived sessions instead.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@db_option
def list_(owner: str | None, archived: bool, fmt: str, db: str | None) -> None:
    """List sessions (archived ones with --archived)."""
    from eominer.store import open_store

    with open_store(db) as store:
        rows = [r for r in store.session_list(owner) if (r.status == "archived") == archived]
    keep = ("session_id", "name", "owner", "concept", "level", "model_kind", "strategy",
            "status", "updated")
    table = pa.Table.from_pylist([{k: getattr(r, k) for k in keep} for r in rows]) if rows else \
        pa.table({k: pa.array([], pa.string()) for k in keep})
    click.echo(render(table, fmt))


@session.command("show")
@click.argument("session_id")
@db_option
def show(session_id: str, db: str | None) -> None:
    """Summary, quality estimate and conflicts of a session."""
    from eominer.store import open_store

    with open_store(db) as store:
        s = _open(store, session_id)
        info = {**s.summary(), "quality": s.quality(), "conflicts": s.conflicts()}
    click.echo(json.dumps(info, indent=1, default=str))


@session.command("add-label")
@click.argument("name")
@click.option("--parent", default=None, help="Parent label (omit for a new root).")
@click.option("--title", required=True)
@click.option("--description", default="")
@user_option(help="Who adds it.")
@db_option
def add_label_cmd(name: str, parent: str | None, title: str, description: str, user: str,
                  db: str | None) -> None:
    """Add a label to the taxonomy."""
    from eominer.learning.taxonomy import add_label
    from eominer.store import open_store

    with open_store(db) as store:
        row = add_label(store, name, parent, title, description, user)
    click.echo(f"added {row['label_name']} (level {row['level']})")


@session.command("taxonomy")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@db_option
def taxonomy_cmd(fmt: str, db: str | None) -> None:
    """Print the label taxonomy."""
    from eominer.learning.taxonomy import ensure_taxonomy
    from eominer.store import open_store

    with open_store(db) as store:
        ensure_taxonomy(store)
        rows = store.taxonomy()
    click.echo(render(pa.Table.from_pylist(rows), fmt))


def _register_admin() -> None:
    from eominer.cli.session_admin import archive, delete, duplicate, refine, rename, share

    for cmd in (rename, share, archive, delete, duplicate, refine):
        session.add_command(cmd)


_register_admin()
