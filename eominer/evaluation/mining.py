"""The simulated analyst in real sessions: label efficiency of feature sets and strategies.

Each run is one `Session` (the product's model and strategy) over a task's scope: it starts
from 2 random positives and 2 random negatives (seeded), runs a round, answers the
round's questions from the reference labels, and so on up to the budget. Rounds ask
`batch` questions, fewer where that lands exactly on a checkpoint (25, 50, 100, 200
labels), so AP is read at those label counts. AP is the average precision of the round's
ranking of every patch of the scope against the truth.

Per (task, feature sets, strategy), over the seeds: AP at each checkpoint (mean, std),
the labels needed to reach the AP that random labelling reaches with the full budget
(mean over the seeds that reach it, and how many do), and the all-labels ceiling (a
session given every label of the pool, one round). That ceiling is in-sample: the model
scores the patches it was fitted on, and an RBF SVM on wide histograms memorises them.
`cv_ceiling` is the honest yardstick beside it: every patch scored by a model fitted on
the labels of the other folds (5 stratified folds), or of the other products (each
product held out in turn: for OSCD, a model that never saw that city's labels).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.evaluation.ranking import average_precision
from eominer.evaluation.tasks import Task

if TYPE_CHECKING:
    from eominer.learning.session import Session
    from eominer.store import Store

CHECKPOINTS: tuple[int, ...] = (25, 50, 100, 200)
USER = "eval"


@dataclass
class Run:
    labels: list[int]
    ap: list[float]
    session_id: str
    ap_unlabelled: list[float] = field(default_factory=list)  # see `drive`'s `heldout`


@dataclass
class Row:
    """One line of the table: a task, a combination of feature sets, a strategy."""

    task: str
    features: str           # "spectral+gabor"
    feature_set_ids: list[str]
    strategy: str
    model: str
    checkpoints: list[int]
    ap_mean: list[float]
    ap_std: list[float]
    ceiling: float
    seeds: int
    # out-of-fold ceilings (`cv_ceiling`) by mode, when asked for; None: not computable
    ceiling_cv: dict[str, float | None] = field(default_factory=dict)
    spatial_context: float = 0.0  # the sessions' SessionParams.spatial_context
    prior: str | None = None  # the sessions' SessionParams.prior (default weights)
    spatial_weight: float = 0.0  # the sessions' SessionParams.spatial_weight (`diverse`)
    # AP over the patches not labelled yet (mean over the seeds that have a positive left)
    ap_unlabelled_mean: list[float] = field(default_factory=list)
    labels_to_random: float | None = None
    reached: int = 0
    random_final: float | None = None
    curves: list[dict[str, Any]] = field(default_factory=list)
    session_ids: list[str] = field(default_factory=list)


def schedule(start: int, batch: int, budget: int, checkpoints: Sequence[int]) -> list[int]:
    """Label counts after each round: steps of `batch`, landing on every checkpoint."""
    out, n = [start], start
    stops = sorted({c for c in checkpoints if start < c <= budget} | {budget})
    for stop in stops:
        while n < stop:
            n = min(n + batch, stop)
            out.append(n)
    return out


def simulate(store: Store, task: Task, feature_set_ids: Sequence[str], *, strategy: str,
             model: str, seed: int, budget: int, batch: int,
             checkpoints: Sequence[int] = CHECKPOINTS, name: str = "",
             spatial_context: float = 0.0, prior: str | None = None,
             spatial_weight: float = 0.0) -> Run:
    """One seeded session answered from the truth; AP after each round."""
    from eominer.learning.session import Session

    s = Session.create(store, name or f"eval {task.name} {strategy} seed {seed}", USER,
                       task.concept, list(task.product_ids), task.level, list(feature_set_ids),
                       model_kind=model, strategy=strategy,
                       params={"seed": seed, "batch_size": batch,
                               "spatial_context": spatial_context, "prior": prior,
                               "spatial_weight": spatial_weight},
                       where=task.where)
    y = truth_for(task, s.patch_ids)
    heldout: list[float] = []
    labels, aps = drive(s, y, seed, budget, batch, checkpoints,
                        lambda scores: average_precision(y, scores), task.name, heldout)
    s.close()
    return Run(labels, aps, s.session_id, heldout)


def drive(s: Session, y: np.ndarray, seed: int, budget: int, batch: int, checkpoints: Sequence[int],
          ap_of: Callable[[np.ndarray], float], task_name: str = "",
          heldout: list[float] | None = None) -> tuple[list[int], list[float]]:
    """Answer session `s` from `y` (aligned with its patches): 2 random positives and 2
    random negatives, then each round's questions up to `budget` labels. Returns the
    label counts after each round and `ap_of(round scores)` there. `heldout`, when
    given, gets each round's AP over the patches not labelled yet (NaN once every
    positive is labelled): `ap_of` counts the labelled patches too, which the model
    scores in-sample (the session's ranking as the model gives it, without the analyst's
    answers over it: `Session.show_answers`), and on a small pool 100 labels are a large
    share of it."""
    s.show_answers = False  # the model's ranking: what the ceiling bounds
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y != 1)
    if len(pos) < 2 or len(neg) < 2:
        from eominer.errors import SessionError

        raise SessionError(f"task {task_name}: {len(pos)} positive and {len(neg)} negative "
                           "patches; a simulated session starts from 2 of each")
    first = np.concatenate([rng.choice(pos, 2, replace=False), rng.choice(neg, 2, replace=False)])
    _answer(s, s.patch_ids[first], y[first])
    known = np.zeros(len(y), bool)
    known[first] = True
    counts = schedule(len(first), batch, budget, checkpoints)
    labels, aps = [], []
    for i, n in enumerate(counts):
        step = counts[i + 1] - n if i + 1 < len(counts) else 1
        r = s.run_round(n=step)
        labels.append(n)
        aps.append(ap_of(r.scores))
        if heldout is not None:
            rest = ~known
            heldout.append(average_precision(y[rest], r.scores[rest])
                           if (y[rest] == 1).any() else float("nan"))
        if i + 1 < len(counts):
            rows = s.data.rows(r.query_ids[:step])
            _answer(s, r.query_ids[:step], y[rows])
            known[rows] = True
    return labels, aps


def truth_for(task: Task, patch_ids: np.ndarray) -> np.ndarray:
    at = np.searchsorted(task.patch_ids, patch_ids)
    return task.y[np.minimum(at, len(task.y) - 1)]


def _answer(session: Session, ids: np.ndarray, y: np.ndarray) -> None:
    for value in (1, -1):
        sel = ids[y == value]
        if len(sel):
            session.label_many(sel, value, USER)


def _pool_session(store: Store, task: Task, feature_set_ids: Sequence[str], model: str,
                  name: str, max_labels: int, seed: int) -> tuple[Session, np.ndarray]:
    """A session over the task's pool, and the rows a ceiling uses: all of them, or a
    random `max_labels` when the pool is larger."""
    from eominer.learning.session import Session

    s = Session.create(store, name, USER, task.concept, list(task.product_ids), task.level,
                       list(feature_set_ids), model_kind=model, strategy="most_relevant",
                       params={"seed": seed}, where=task.where)
    rows = np.arange(s.data.n)
    if len(rows) > max_labels:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_labels, replace=False))
    return s, rows


def ceiling(store: Store, task: Task, feature_set_ids: Sequence[str], model: str,
            max_labels: int = 20_000, seed: int = 0) -> float:
    """AP of a session given every label of the pool (a random `max_labels` of them
    when the pool is larger), one round: what the features allow this model (its own
    scores, in-sample: `Session.show_answers` off)."""
    s, rows = _pool_session(store, task, feature_set_ids, model, f"eval {task.name} ceiling",
                            max_labels, seed)
    s.show_answers = False
    y = truth_for(task, s.patch_ids)
    _answer(s, s.patch_ids[rows], y[rows])
    r = s.run_round(n=1)
    s.close()
    return average_precision(y, r.scores)


CV_MODES = ("folds", "products")
CV_FOLDS = 5


def out_of_fold_scores(X: np.ndarray, y: np.ndarray, model: str,
                       groups: np.ndarray | None = None, folds: int = CV_FOLDS,
                       seed: int = 0) -> np.ndarray:
    """Every row's score by a `model` fitted on the rows of the other folds: `folds`
    stratified folds, or one fold per distinct value of `groups`. A fold whose training
    rows hold one class only scores 0.5 (no ranking can be learnt from them)."""
    from sklearn.model_selection import StratifiedKFold

    from eominer.learning.models import make_model

    y = np.where(np.asarray(y) == 1, 1, -1).astype(np.int8)
    if groups is None:
        k = min(folds, int((y == 1).sum()), int((y == -1).sum()))
        if k < 2:
            raise ValueError(f"{int((y == 1).sum())} positive and {int((y == -1).sum())} "
                             "negative rows: too few for 2 stratified folds")
        split = StratifiedKFold(k, shuffle=True, random_state=seed).split(X, y)
        parts = [test for _, test in split]
    else:
        parts = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    out = np.full(len(y), 0.5, np.float32)
    for test in parts:
        train = np.setdiff1d(np.arange(len(y)), test)
        if len(np.unique(y[train])) == 2:
            out[test] = make_model(model).fit(X[train], y[train]).score(X[test])
    return out


def cv_ceiling(store: Store, task: Task, feature_set_ids: Sequence[str], model: str,
               by: str = "folds", max_labels: int = 20_000, seed: int = 0) -> float | None:
    """AP of the pool's out-of-fold scores (`out_of_fold_scores`): `by` 'folds' (5
    stratified) or 'products' (each of the task's products held out in turn; None when
    the task has one product). Pools above `max_labels` use a random `max_labels` rows."""
    if by not in CV_MODES:
        raise ValueError(f"cv ceiling by {by!r}: one of {', '.join(CV_MODES)}")
    if by == "products" and len(task.product_ids) < 2:
        return None
    s, rows = _pool_session(store, task, feature_set_ids, model,
                            f"eval {task.name} ceiling by {by}", max_labels, seed)
    ids = s.patch_ids[rows]
    y = truth_for(task, ids)
    groups = None
    if by == "products":
        groups = np.empty(len(ids), object)
        for pid in task.product_ids:
            mine = store.scope_patches([pid], task.level, columns=["patch_id"])["patch_id"]
            groups[np.isin(ids, mine.to_numpy())] = pid
    scores = out_of_fold_scores(s.data.rows_f32(rows), y, model, groups, seed=seed)
    s.close()
    return average_precision(y, scores)


def evaluate(store: Store, task: Task, combos: dict[str, list[str]], strategies: Sequence[str],
             *, model: str, seeds: int, budget: int, batch: int,
             checkpoints: Sequence[int] = CHECKPOINTS, cv: Sequence[str] = (),
             contexts: Sequence[float] = (0.0,), prior: str | None = None,
             spreads: Sequence[float] = (0.0,),
             progress: Callable[[str], None] | None = None) -> list[Row]:
    """Rows of one task: every combination x strategy x spatial context (`contexts`,
    the sessions' `spatial_context`), `seeds` sessions each, all with `prior` (the
    sessions' prior column, None: none); `diverse` once per `spreads` value (the
    sessions' `spatial_weight`: how far it spreads its batches on the map), the other
    strategies once, without; `cv` (of 'folds', 'products') adds those
    out-of-fold ceilings (`cv_ceiling`), which ignore context and prior."""
    cps = [c for c in checkpoints if c <= budget]
    if budget not in cps:
        cps.append(budget)
    out: list[Row] = []
    for label, fids in combos.items():
        top = ceiling(store, task, fids, model)
        top_cv = {by: cv_ceiling(store, task, fids, model, by) for by in cv}
        rows = []
        for strat, a in itertools.product(strategies, contexts):
            for w in spreads if strat == "diverse" else (0.0,):
                runs = [simulate(store, task, fids, strategy=strat, model=model, seed=s,
                                 budget=budget, batch=batch, checkpoints=cps,
                                 name=f"eval {task.name} {label} {strat} seed {s}",
                                 spatial_context=a, prior=prior, spatial_weight=w)
                        for s in range(seeds)]
                at = np.asarray([[r.ap[r.labels.index(c)] for c in cps] for r in runs])
                unl = np.asarray([[r.ap_unlabelled[r.labels.index(c)] for c in cps]
                                  for r in runs])
                rows.append(Row(task.name, label, list(fids), strat, model, cps,
                                at.mean(0).tolist(), at.std(0).tolist(), top, seeds, top_cv,
                                float(a), prior=prior, ap_unlabelled_mean=_nanmean(unl),
                                spatial_weight=w,
                                curves=[{"labels": r.labels, "ap": r.ap,
                                         "ap_unlabelled": r.ap_unlabelled} for r in runs],
                                session_ids=[r.session_id for r in runs]))
                if progress:
                    cv_text = "".join(f", {by} {v:.3f}" for by, v in top_cv.items()
                                      if v is not None)
                    progress(f"{task.name} {label} {_strategy_cell(rows[-1])}: AP@{cps[-1]} "
                             f"{rows[-1].ap_mean[-1]:.3f} (ceiling {top:.3f}{cv_text})")
        _labels_to_random(rows)
        out.extend(rows)
    return out


def _nanmean(a: np.ndarray) -> list[float]:
    """Column means over the finite values (NaN where a column has none)."""
    ok = np.isfinite(a)
    n = ok.sum(0)
    return np.where(n > 0, np.where(ok, a, 0.0).sum(0) / np.maximum(n, 1), np.nan).tolist()


def _strategy_cell(r: Row) -> str:
    spread = r.spatial_weight if r.strategy == "diverse" else 0.0  # the others ignore it
    return r.strategy + (f", spread {spread:g}" if spread else "") + (
        f", context {r.spatial_context:g}" if r.spatial_context else "") + (
        f", prior {r.prior}" if r.prior else "")


def _labels_to_random(rows: list[Row]) -> None:
    """Fill labels-to-random's-final-AP in the rows of one feature combination (random
    is the first random row: without spatial context when that was run)."""
    base = next((r for r in rows if r.strategy == "random"), None)
    if base is None:
        return
    target = base.ap_mean[-1]
    for r in rows:
        hits = []
        for c in r.curves:
            # within rounding: a mean of equal APs may exceed each of them by an ulp
            ok = np.flatnonzero(np.asarray(c["ap"]) >= target - 1e-9)
            if len(ok):
                hits.append(c["labels"][int(ok[0])])
        r.random_final = target
        r.reached = len(hits)
        r.labels_to_random = float(np.mean(hits)) if hits else None


def as_json(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [{
        "task": r.task, "features": r.features, "feature_set_ids": r.feature_set_ids,
        "strategy": r.strategy, "model": r.model, "seeds": r.seeds,
        "labels": r.checkpoints, "ap_mean": r.ap_mean, "ap_std": r.ap_std,
        "ap_unlabelled_mean": _finite(r.ap_unlabelled_mean),
        "ceiling": r.ceiling, "ceiling_cv": r.ceiling_cv, "random_final_ap": r.random_final,
        "spatial_context": r.spatial_context, "prior": r.prior,
        "spatial_weight": r.spatial_weight,
        "labels_to_random_final": r.labels_to_random, "seeds_reaching": r.reached,
        "session_ids": r.session_ids,
        "curves": [{**c, "ap_unlabelled": _finite(c.get("ap_unlabelled", []))}
                   for c in r.curves],
    } for r in rows]


def _finite(values: Sequence[float]) -> list[float | None]:
    """NaN as None: JSON has no NaN (AP over the unlabelled patches once none is left)."""
    return [None if v != v else v for v in values]


CV_HEADS = {"folds": f"all labels, {CV_FOLDS} folds", "products": "all labels, product held out"}


def markdown(rows: Sequence[Row], cv: Sequence[str] = ()) -> str:
    """The docs table: AP mean±std at each checkpoint, labels to random's final AP,
    the all-labels ceiling, and the out-of-fold ones of the modes in `cv`."""
    if not rows:
        return ""
    cps = rows[0].checkpoints
    head = ["task", "features", "strategy", *(f"AP@{c}" for c in cps),
            f"labels to random's AP@{cps[-1]}", "all labels"]
    head += [CV_HEADS[by] for by in cv]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        reach = (f"{r.labels_to_random:.0f} ({r.reached}/{r.seeds})"
                 if r.labels_to_random is not None else f"not reached (0/{r.seeds})")
        aps = [f"{m:.3f}±{s:.3f}" for m, s in zip(r.ap_mean, r.ap_std, strict=True)]
        cells = [r.task, r.features, _strategy_cell(r), *aps, reach, f"{r.ceiling:.3f}"]
        for by in cv:
            v = r.ceiling_cv.get(by)
            cells.append("-" if v is None else f"{v:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def across_tasks(rows: Sequence[Row], prefix: str) -> str:
    """Markdown: per feature combination and strategy, AP at each checkpoint averaged
    over the tasks named `<prefix>_*` (OSCD's per-city sessions; min-max beside it), then
    the same for the AP over the patches not labelled yet. Empty when there are none."""
    mine = [r for r in rows if r.task.startswith(prefix + "_")]
    if not mine:
        return ""
    cps = mine[0].checkpoints
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in mine:
        groups.setdefault((r.features, _strategy_cell(r)), []).append(r)
    head = ["features", "strategy", "tasks", *(f"AP@{c}" for c in cps),
            *(f"AP@{c}, unlabelled" for c in cps)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (features, strategy), rs in groups.items():
        ap = np.asarray([r.ap_mean for r in rs])
        unl = np.asarray([r.ap_unlabelled_mean or [np.nan] * len(cps) for r in rs], float)
        cells = [features, strategy, str(len(rs))]
        cells += [f"{m:.3f} ({lo:.3f}-{hi:.3f})"
                  for m, lo, hi in zip(ap.mean(0), ap.min(0), ap.max(0), strict=True)]
        cells += ["-" if np.isnan(m) else f"{m:.3f}" for m in _nanmean(unl)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chosen_elsewhere(rows: Sequence[Row], prefix: str, at: int = 100,
                     target: float | None = None) -> str:
    """Markdown: for each task named `<prefix>_*` (a city), the configuration (feature
    combination, strategy, context) with the best mean AP@`at` over the *other* tasks,
    and the AP it gives on this one; then their mean. No choice is made on the task it
    is scored on, so the mean estimates what a city nobody tuned on would see. `at` falls
    back to the last checkpoint when the budget stops short of it; `target`, when given,
    adds how many tasks reach it. Empty when fewer than two tasks or no configuration ran
    on all of them."""
    mine = [r for r in rows if r.task.startswith(prefix + "_")]
    cities = sorted({r.task for r in mine})
    if len(cities) < 2:
        return ""
    cps = mine[0].checkpoints
    k = cps.index(at) if at in cps else len(cps) - 1
    ap: dict[tuple[str, str], dict[str, float]] = {}
    for r in mine:
        ap.setdefault((r.features, _strategy_cell(r)), {})[r.task] = r.ap_mean[k]
    configs = [c for c, by in ap.items() if len(by) == len(cities)]
    if not configs:
        return ""
    lines = ["| held-out task | chosen on the other tasks | "
             f"their mean AP@{cps[k]} | AP@{cps[k]} here |", "|---|---|---|---|"]
    here = []
    for city in cities:
        elsewhere = {c: float(np.mean([v for t, v in ap[c].items() if t != city]))
                     for c in configs}
        best = max(configs, key=elsewhere.__getitem__)  # ties: the first run
        here.append(ap[best][city])
        lines.append(f"| {city} | {best[0]}, {best[1]} | {elsewhere[best]:.3f} | "
                     f"{here[-1]:.3f} |")
    reach = "" if target is None else \
        f" ({sum(v >= target for v in here)} of {len(here)} at >= {target:g})"
    lines.append(f"| **mean** | | | **{np.mean(here):.3f}**{reach} |")
    return "\n".join(lines)
