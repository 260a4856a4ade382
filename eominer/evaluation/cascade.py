"""The cascade measured: labels at a coarse grid level prune the finer level, against
mining the finer level directly (docs/learning.md, "Cascade").

One cascaded run, seeded like `mining.simulate`:
1. a session at the coarse level (e.g. 64 px) answered from the coarse truth: a coarse
   patch is positive when any finer patch under it is (it "contains" the concept), up to
   `coarse_budget` labels;
2. `cascade.cascade`: the coarse session is published at `threshold` and a session at the
   task's level is created over the patches under its positives;
3. that session answered from the task's truth up to the total budget.

AP is always that of the task's whole pool at its level: patches the cascade pruned rank
below every patch it kept. Labels are counted over both levels, so a cascade point at 50
labels may be 30 coarse + 20 fine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.evaluation.mining import CHECKPOINTS, USER, drive, simulate
from eominer.evaluation.ranking import average_precision
from eominer.evaluation.tasks import Task

if TYPE_CHECKING:
    from eominer.evaluation.mining import Run
    from eominer.store import Store


@dataclass
class CascadeRun:
    labels: list[int]          # labels over both levels after each fine round
    ap: list[float]            # AP of the whole fine pool there
    coarse_labels: int
    kept: float                # share of the fine pool inside the cascade's scope
    recall_kept: float         # share of the fine positives inside it
    session_ids: tuple[str, str]


@dataclass
class Comparison:
    """One task, one strategy: the direct and the cascaded runs of each seed."""

    task: str
    strategy: str
    coarse_level: int
    level: int
    direct: list[Any] = field(default_factory=list)      # mining.Run
    cascaded: list[CascadeRun] = field(default_factory=list)


def coarse_truth(store: Store, task: Task, coarse_level: int) -> tuple[np.ndarray, np.ndarray]:
    """(coarse patch ids sorted, +1/-1): +1 where any patch of the task's pool under it
    is positive."""
    products = list(task.product_ids)
    positive = task.patch_ids[task.y == 1]
    levels = sorted(v for v in store.patch_levels(products) if task.level <= v <= coarse_level)
    if coarse_level not in levels:
        from eominer.errors import SessionError

        raise SessionError(f"task {task.name}: no grid level {coarse_level} in "
                           f"{', '.join(products)} (levels {levels}); ingest with it")
    current = positive
    for lv in levels[:-1]:  # up one level at a time, through the parent links
        t = store.scope_patches(products, lv)
        ids = t["patch_id"].to_numpy().astype(np.int64)
        parents = t["parent_id"].fill_null(-1).to_numpy().astype(np.int64)
        current = np.unique(parents[np.isin(ids, current)])
    coarse = np.sort(store.scope_patches(products, coarse_level)["patch_id"]
                     .to_numpy().astype(np.int64))
    return coarse, np.where(np.isin(coarse, current), 1, -1).astype(np.int8)


def simulate_cascade(store: Store, task: Task, feature_set_ids: Sequence[str], coarse_level: int,
                     *, strategy: str, model: str, seed: int, coarse_budget: int, budget: int,
                     batch: int, threshold: float,
                     checkpoints: Sequence[int] = CHECKPOINTS) -> CascadeRun:
    """One cascaded run (module doc)."""
    from eominer.learning.cascade import cascade
    from eominer.learning.session import Session

    coarse_ids, coarse_y = coarse_truth(store, task, coarse_level)
    coarse = Session.create(store, f"eval {task.name} cascade {coarse_level}px seed {seed}",
                            USER, task.concept, list(task.product_ids), coarse_level,
                            list(feature_set_ids), model_kind=model, strategy=strategy,
                            params={"seed": seed, "batch_size": batch})
    yc = coarse_y[np.searchsorted(coarse_ids, coarse.patch_ids)]
    drive(coarse, yc, seed, coarse_budget, batch, (), lambda s: average_precision(yc, s),
          task.name)
    n_coarse = len(coarse.labels()[0])
    fine = cascade(coarse, task.level, threshold=threshold, strategy=strategy, model_kind=model)
    coarse.close()
    at = np.searchsorted(task.patch_ids, fine.patch_ids)
    yf = task.y[at]
    kept = len(at) / len(task.y)
    recall_kept = float((yf == 1).sum() / max(task.positives, 1))

    def pool_ap(scores: np.ndarray) -> float:
        full = np.full(len(task.y), -1.0)  # pruned patches rank below every kept one
        full[at] = scores
        return average_precision(task.y, full)

    fine_cps = [c - n_coarse for c in checkpoints if c > n_coarse + 4]
    labels, aps = drive(fine, yf, seed, max(budget - n_coarse, 5), batch, fine_cps, pool_ap,
                        task.name)
    fine.close()
    return CascadeRun([n + n_coarse for n in labels], aps, n_coarse, kept, recall_kept,
                      (coarse.session_id, fine.session_id))


def compare(store: Store, task: Task, feature_set_ids: Sequence[str], coarse_level: int, *,
            strategy: str, model: str, seeds: int, coarse_budget: int, budget: int, batch: int,
            threshold: float, checkpoints: Sequence[int] = CHECKPOINTS,
            progress: Callable[[str], None] | None = None) -> Comparison:
    """Direct and cascaded runs of `seeds` seeds each."""
    out = Comparison(task.name, strategy, coarse_level, task.level)
    for seed in range(seeds):
        out.direct.append(simulate(store, task, feature_set_ids, strategy=strategy, model=model,
                                   seed=seed, budget=budget, batch=batch,
                                   checkpoints=checkpoints,
                                   name=f"eval {task.name} direct seed {seed}"))
        try:
            out.cascaded.append(simulate_cascade(
                store, task, feature_set_ids, coarse_level, strategy=strategy, model=model,
                seed=seed, coarse_budget=coarse_budget, budget=budget, batch=batch,
                threshold=threshold, checkpoints=checkpoints))
        except Exception as exc:  # a cascade that kept < 2 positives is a result, not a crash
            from eominer.errors import EominerError

            if not isinstance(exc, EominerError):
                raise
            if progress:
                progress(f"{task.name} seed {seed}: cascade failed: {exc}")
            continue
        if progress:
            c, d = out.cascaded[-1], out.direct[-1]
            progress(f"{task.name} seed {seed}: direct AP@{d.labels[-1]} {d.ap[-1]:.3f}; "
                     f"cascade AP@{c.labels[-1]} {c.ap[-1]:.3f} (kept {c.kept:.1%} of the "
                     f"pool, {c.recall_kept:.1%} of its positives)")
    return out


def at_labels(labels: Sequence[int], aps: Sequence[float], n: int) -> float:
    """AP after the last round with at most `n` labels (NaN before the first)."""
    i = int(np.searchsorted(np.asarray(labels), n, side="right")) - 1
    return float(aps[i]) if i >= 0 else float("nan")


def labels_to(labels: Sequence[int], aps: Sequence[float], target: float) -> int | None:
    ok = np.flatnonzero(np.asarray(aps) >= target)
    return int(labels[int(ok[0])]) if len(ok) else None


def summary(c: Comparison, checkpoints: Sequence[int] = CHECKPOINTS) -> dict[str, Any]:
    """Mean AP at each label count, and the labels each needs to reach the direct
    session's mean final AP (per seed; None where not reached)."""
    cps = [n for n in checkpoints if n <= c.direct[0].labels[-1]] if c.direct else []
    target = float(np.mean([r.ap[-1] for r in c.direct])) if c.direct else float("nan")

    def mean_at(runs: Sequence[Run | CascadeRun],
                n: int) -> tuple[float, float] | tuple[None, None]:
        v = [at_labels(r.labels, r.ap, n) for r in runs]
        v = [x for x in v if x == x]
        return (float(np.mean(v)), float(np.std(v))) if v else (None, None)

    return {
        "task": c.task, "strategy": c.strategy, "coarse_level": c.coarse_level,
        "level": c.level, "labels": cps, "target_ap": target,
        "direct_ap": [mean_at(c.direct, n) for n in cps],
        "cascade_ap": [mean_at(c.cascaded, n) for n in cps],
        "direct_labels_to_target": [labels_to(r.labels, r.ap, target) for r in c.direct],
        "cascade_labels_to_target": [labels_to(r.labels, r.ap, target) for r in c.cascaded],
        "cascade_coarse_labels": [r.coarse_labels for r in c.cascaded],
        "cascade_kept": [r.kept for r in c.cascaded],
        "cascade_recall_kept": [r.recall_kept for r in c.cascaded],
        "seeds": len(c.direct), "cascades": len(c.cascaded),
    }


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cps = rows[0]["labels"]
    ceiling = any("ceiling_5_folds" in r for r in rows)  # rows written before it: none
    head = ["task", "levels", "run", *(f"AP@{n}" for n in cps),
            "labels to the direct final AP", "pool kept (positives kept)",
            *(["all labels, 5 folds"] if ceiling else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(v: Sequence[float | None]) -> str:
        return "-" if v[0] is None else f"{v[0]:.3f}±{v[1]:.3f}"

    def reach(v: Sequence[int | None]) -> str:
        hit = [x for x in v if x is not None]
        return f"{np.mean(hit):.0f} ({len(hit)}/{len(v)})" if hit else f"not reached (0/{len(v)})"

    for r in rows:
        lv = f"{r['coarse_level']} -> {r['level']} px"
        top = r.get("ceiling_5_folds")
        tail = ([f"{top:.3f}" if top is not None else "-"] if ceiling else [])
        lines.append("| " + " | ".join([r["task"], f"{r['level']} px", "direct",
                                        *map(fmt, r["direct_ap"]),
                                        reach(r["direct_labels_to_target"]), "100%",
                                        *tail]) + " |")
        kept = (f"{np.mean(r['cascade_kept']):.1%} ({np.mean(r['cascade_recall_kept']):.1%})"
                if r["cascade_kept"] else "-")
        lines.append("| " + " | ".join([r["task"], lv, "cascade",
                                        *map(fmt, r["cascade_ap"]),
                                        reach(r["cascade_labels_to_target"]), kept,
                                        *tail]) + " |")
    return "\n".join(lines)


__all__ = ["CascadeRun", "Comparison", "coarse_truth", "compare", "markdown",
           "simulate_cascade", "summary"]
