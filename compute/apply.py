"""The apply job: a saved classifier scores every selected patch of the archive, on Ray.

    report = run_apply(store, "3f2a91c0-r4-9b1e22aa", product_ids=["S2A_..."])

Work is one task per block of at most `block_patches` patches of one product (default
65,536: 16 MB of float32 features at 64 columns, 32 MB at 128), run by the job runner
(`compute.runner`: resume, retries, batched commits, progress, metrics):

- the driver reads a block's features from the store just before it submits the block
  (`JobSpec.load`): one query per block, so at most two blocks per worker are in memory,
  never the whole archive; the driver stays the only process that opens the database;
- the worker standardises the block with the session's mean and standard deviation and
  scores it with the saved estimator (`eominer.learning.saved.Scorer`, the session's own
  float32 code); it returns (patch_ids, scores);
- the driver upserts each batch of scores as `annotations` (label = the model's concept,
  session = the model's session, model_version = the model id, source 'apply', positive =
  score >= threshold; at the patches the model was trained on, the analyst's answers,
  score 1 or 0, as `publish` writes them) and marks the blocks done in the same
  transaction: a killed job re-run skips the done blocks, and a block written twice
  leaves one row per patch.

Selection: the patches at the model's level (a session's model knows one grid level) of
`product_ids` (default: every product with the model's features), kept by `where` (SQL
over the view `scope_rows`, on the read-only user-SQL path) and `aoi` (a patch's WGS84 box
intersects the area), each evaluated one product at a time. A product named in
`product_ids` without the model's features is an error that names the feature set and the
command that computes it; when products are not named, such products are skipped and
noted (an error only when no product is left).

A block's id names the model, the product, the first and last patch id and a digest of
its patch ids: another selection makes other blocks, the same selection resumes.

Spatial context: a model saved from a session with `spatial_context` A > 0 scores as the
session ranked, f = (1 - A) s + A N f over each product's grid of selected patches
(`eominer.learning.context`). Its blocks are bands of whole grid rows (at most
`block_patches` patches, at least one row), each scored with the selected patches of
`halo_rows(A)` grid rows on either side and smoothed with them: the session's Jacobi
iteration moves information one row per step, so the band's kept scores equal those of
the product's whole grid (13 rows for A = 0.3), and a full tile never has to fit in one
task. The halo patches are scored twice, by their own band and as a neighbour.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from compute.runner import DEFAULT_RETRIES, Finished, JobReport, JobSpec, Task, TaskCallback
from eominer.errors import ConfigError, FeatureError

if TYPE_CHECKING:
    from eominer.learning.saved import SavedModel, Scorer
    from eominer.store import FeatureSet, Store

DEFAULT_BLOCK_PATCHES = 65_536
SOURCE = "apply"


@dataclass(frozen=True, eq=False)
class ApplyBlock:
    """One task: patches of one product, ids in [lo, hi]; `ids` lists them when a WHERE
    or an AOI keeps only some (else every patch of the range with features). A spatial-
    context band also lists its `halo`: neighbours scored for the smoothing, not kept."""

    task_id: str
    index: int
    product_id: str
    lo: int
    hi: int
    n: int
    ids: np.ndarray | None = field(default=None, repr=False)
    halo: np.ndarray | None = field(default=None, repr=False)
    # the tables read, in the model's set order: a pair's own set is read from the
    # archive's set of its kind for another product (`plan`)
    tables: tuple[str, ...] = ()


@dataclass
class ApplyReport(JobReport):
    kind: str = "apply"
    model_id: str = ""
    threshold: float = 0.5
    products: list[str] = field(default_factory=list)
    n_selected: int = 0  # patches to score (selected, with features)
    n_missing: int = 0  # selected patches without features: not scored


# ---- worker side ------------------------------------------------------------------
def score_block(scorer: Scorer, patch_ids: np.ndarray, X: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray]:
    """(patch_ids, float32 scores) of one block of raw features."""
    return patch_ids, scorer(X)


def score_band_in_context(scorer: Scorer, patch_ids: np.ndarray, X: np.ndarray,
                          row: np.ndarray, col: np.ndarray, keep: np.ndarray, alpha: float,
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(patch_ids, float32 scores) of a band's kept patches (`keep`), smoothed on their
    grid cells (row, col) together with the band's halo, as the model's session ranked
    them."""
    from eominer.learning.context import PatchGrid, smooth

    # shifted to the band: the raster the smoothing allocates covers the band, not the tile
    grid = PatchGrid.from_cells(np.zeros(len(row), np.int32), row - row.min(), col - col.min())
    return patch_ids[keep], smooth(scorer(X), grid, alpha)[keep]


# ---- driver side ------------------------------------------------------------------
def model_feature_sets(store: Store, model: SavedModel) -> list[FeatureSet]:
    """The model's feature sets as the store has them (a change pair's own set that is
    gone, a date of its pair removed: the archive's set of its kind, recorded when the
    model was saved); refused when one is gone or has other columns than the model was
    trained on."""
    sets = []
    archives = model.params.get("archive_sets", {})
    for fid in model.feature_set_ids:
        fs = store.feature_set(fid) or store.feature_set(archives.get(fid, ""))
        if fs is None:
            raise FeatureError(
                f"feature set {fid} of model {model.model_id} is not in {store.url}: it was "
                f"deleted, or the features were re-extracted with other parameters (a new "
                f"feature set id); extract {fid.split('_v')[0]} with the model's parameters "
                "again, or train a new session on the new features")
        sets.append(fs)
    names = tuple(f"{fid}__{c}" for fid, fs in zip(model.feature_set_ids, sets, strict=True)
                  for c in fs.columns)
    if names != model.columns:
        raise FeatureError(
            f"model {model.model_id} was trained on {len(model.columns)} feature columns; "
            f"its feature sets {', '.join(model.feature_set_ids)} now have {len(names)} "
            "other ones: refused (train a new session on these features)")
    return sets


def _lacking_message(store: Store, model: SavedModel, missing: dict[str, list[str]],
                     sets: list[FeatureSet]) -> str:
    """Which products lack which feature set, the command that computes it, and the
    reason when the products have the same descriptor with other parameters."""
    from eominer.features.origin import advice_for, change_advice
    from eominer.store.archive import is_pair_set

    by_set: dict[str, list[str]] = {}
    for pid, fids in missing.items():
        for fid in fids:
            by_set.setdefault(fid, []).append(pid)
    of = {s.feature_set_id: s for s in sets}

    def other_params(fs: FeatureSet, pids: list[str]) -> str:
        others = [] if is_pair_set(fs) else [  # another pair's set is no other parameters
            o for o in store.feature_sets(fs.name) if o.feature_set_id != fs.feature_set_id
            and len(store.featured_patch_ids(o.table_name, pids[0], model.level))]
        if not others:
            return ""
        o = others[-1]
        return (f"; they have {fs.name} features extracted with other parameters "
                f"({o.feature_set_id}: {o.params}, the model's: {fs.params}), which the "
                "model refuses: its weights mean nothing on them")

    refused = {fid: other_params(of[fid], pids) for fid, pids in by_set.items()}
    parts = []
    # the sets that one `eominer change` run writes, lacked by the same products: one
    # command for them all
    by_products: dict[tuple[str, ...], list[str]] = {}
    for fid, pids in by_set.items():
        by_products.setdefault(tuple(pids), []).append(fid)
    for pids_t, fids in by_products.items():
        advice = change_advice([of[f] for f in fids], pids_t) if len(fids) > 1 else None
        if advice and not any(refused[f] for f in fids):
            parts.append(f"products {_shown(list(pids_t))} have no features of sets "
                         f"{', '.join(fids)} at level {model.level}: {advice}")
            for f in fids:
                del by_set[f]
    for fid, pids in by_set.items():
        parts.append(f"products {_shown(pids)} have no features of set {fid} at level "
                     f"{model.level}: {advice_for(of[fid], pids)}{refused[fid]}")
    return "; ".join(parts)


def _shown(pids: list[str]) -> str:
    return ", ".join(pids[:5]) + (f" and {len(pids) - 5} more" if len(pids) > 5 else "")


def spatial_context(model: SavedModel) -> float:
    """The session's spatial context A (0 for models saved before it existed)."""
    return float(model.params.get("spatial_context", 0.0))


def halo_rows(alpha: float) -> int:
    """Grid rows on either side of a band that make its smoothed scores those of the whole
    grid: each Jacobi step carries a row's error one row further, and the band's outer
    row is wrong from the start (its neighbour count), hence one more than the steps."""
    from eominer.learning.context import steps_for

    return steps_for(alpha) + 1


def context_bands(have: np.ndarray, rows: np.ndarray, block_patches: int, halo: int,
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kept ids, halo ids), both sorted, of bands of whole grid rows with at most
    `block_patches` of the patches `have` (at least one row), whose grid rows are
    `rows`."""
    if not len(have):
        return []
    order = np.argsort(rows, kind="stable")
    ids, r = have[order], rows[order]
    first = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])  # each grid row's first index
    ends = np.r_[first[1:], len(r)]
    bands, start = [], 0
    for k in range(len(first)):  # greedy: a row joins the band while the band fits
        if k + 1 == len(first) or ends[k + 1] - first[start] > block_patches:
            bands.append((first[start], ends[k]))
            start = k + 1
    out = []
    for a, b in bands:
        lo = np.searchsorted(r, r[a] - halo)
        hi = np.searchsorted(r, r[b - 1] + halo, side="right")
        out.append((np.sort(ids[a:b]), np.sort(np.r_[ids[lo:a], ids[b:hi]])))
    return out


def _block_id(model_id: str, product_id: str, ids: np.ndarray,
              halo: np.ndarray | None = None) -> str:
    both = ids if halo is None else np.r_[ids, -1, halo]  # -1: kept and halo are apart
    digest = hashlib.sha1(np.ascontiguousarray(both, np.int64).tobytes()).hexdigest()[:10]
    pid = product_id if len(product_id) <= 120 else hashlib.sha1(
        product_id.encode()).hexdigest()[:16]
    return f"apply/{model_id}/{pid}/{int(ids[0])}-{int(ids[-1])}-{digest}"


def plan(store: Store, model: SavedModel, product_ids: Sequence[str] | None, where: str | None,
         aoi: Any, block_patches: int, report: ApplyReport) -> list[ApplyBlock]:
    """Check everything and cut blocks, writing nothing."""
    from compute.extract import select_products
    from eominer.learning.aoi import as_aoi, boxes_in_aoi

    sets = model_feature_sets(store, model)
    area = as_aoi(aoi)
    alpha = spatial_context(model)
    halo = halo_rows(alpha) if alpha > 0.0 else 0
    if halo:
        report.notes.append(
            f"model {model.model_id} ranks with spatial context {alpha:g}: blocks are "
            f"bands of grid rows, each smoothed with the selected patches of {halo} rows "
            "on either side")
    explicit = bool(product_ids)  # named products must have the features; others skip
    products = select_products(store, product_ids)
    level = model.level
    blocks: list[ApplyBlock] = []
    lacking: dict[str, list[str]] = {}
    lacking_sets = {fs.feature_set_id: fs for fs in sets}
    archives = store.archive_sets_of([fs.feature_set_id for fs in sets])
    via: dict[tuple[str, str], list[str]] = {}  # (pair's own set, archive set): products
    n_level = 0
    for prod in products:
        pid = prod.product_id
        ids = store.patch_ids([pid], level)
        n_level += len(ids)
        if where is not None and len(ids):
            ids = ids[np.isin(ids, store.where_patch_ids(where, level, [pid]))]
        if area is not None and len(ids):
            boxes = store.lonlat_boxes(level, [pid], bbox=area.bounds)
            inside = boxes["patch_id"].to_numpy().astype(np.int64)[boxes_in_aoi(
                *(boxes[c].to_numpy() for c in ("min_lon", "min_lat", "max_lon", "max_lat")),
                area.geometry)]
            ids = ids[np.isin(ids, inside)]
        if not len(ids):
            continue
        have = ids
        gone, read = [], []
        for fs in sets:
            with_f = store.featured_patch_ids(fs.table_name, pid, level)
            # a change pair's own set (its first date's rows alone) without rows of this
            # product: the archive's set of its kind (`archives`, the same method and
            # parameters, every mapped pair's rows): a model of one pair scores the others
            if fs.feature_set_id in archives and not len(with_f):
                fs = archives[fs.feature_set_id]
                with_f = store.featured_patch_ids(fs.table_name, pid, level)
            read.append(fs)
            if not np.isin(ids, with_f).any():
                gone.append(fs.feature_set_id)
                lacking_sets[fs.feature_set_id] = fs
            have = have[np.isin(have, with_f)]
        if gone:
            lacking[pid] = gone
            continue
        for fs, own in zip(read, sets, strict=True):
            if fs is not own:
                via.setdefault((own.feature_set_id, fs.feature_set_id), []).append(pid)
        tables = tuple(fs.table_name for fs in read)
        report.n_missing += len(ids) - len(have)
        report.products.append(pid)
        if halo:
            cells = store.scope_patches([pid], level, columns=["patch_id", "row"])
            rows = cells["row"].to_numpy()[np.searchsorted(cells["patch_id"].to_numpy(), have)]
            for k, (kept, around) in enumerate(context_bands(have, rows, block_patches, halo)):
                both = np.r_[kept, around]
                blocks.append(ApplyBlock(
                    _block_id(model.model_id, pid, kept, around), k, pid, int(both.min()),
                    int(both.max()), len(kept), kept, around, tables))
            continue
        for s in range(0, len(have), block_patches):
            chunk = have[s:s + block_patches]
            blocks.append(ApplyBlock(
                _block_id(model.model_id, pid, chunk), s // block_patches, pid,
                int(chunk[0]), int(chunk[-1]), len(chunk),
                chunk if where is not None or area is not None else None, tables=tables))
    for fid, fs in zip(model.feature_set_ids, sets, strict=True):
        if fs.feature_set_id != fid:
            report.notes.append(
                f"{fid}, the pair the model was trained on, is gone (a date of it was "
                f"removed): every product is read from {fs.feature_set_id}, its pairs' rows "
                "of the same method and parameters")
    for (own, archive), pids in via.items():
        shown = ", ".join(pids[:5]) + (f" and {len(pids) - 5} more" if len(pids) > 5 else "")
        report.notes.append(
            f"{own} holds the pair the model was trained on alone: products {shown} are "
            f"read from {archive}, their own pairs' rows of the same method and parameters")
    if lacking:
        message = _lacking_message(store, model, lacking, list(lacking_sets.values()))
        if explicit or not blocks:
            raise FeatureError(f"cannot apply model {model.model_id}: {message}")
        report.notes.append(f"skipped: {message}")
    if not blocks:
        sel = "; ".join(x for x in (
            f"products {', '.join(product_ids)}" if product_ids else f"{len(products)} products",
            f"WHERE {where!r}" if where is not None else "",
            f"area of interest {area.source}" if area is not None else "") if x)
        raise ConfigError(
            f"nothing to apply model {model.model_id} to: the selection ({sel}) keeps no "
            f"patch at level {level} (the model's level; {n_level} patches there); loosen it")
    if report.n_missing:
        report.notes.append(f"{report.n_missing} selected patches have no features and are "
                            "not scored")
    report.n_selected = sum(b.n for b in blocks)
    return blocks


def answered_rows(known: np.ndarray, answers: np.ndarray, ids: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(rows of `ids` the model was trained on, their answers); `known`: the training
    patch ids sorted, `answers` in the same order (`apply_job` sorts them once)."""
    if not len(known) or not len(ids):
        return np.empty(0, np.int64), np.empty(0, np.int8)
    at = np.minimum(np.searchsorted(known, ids), len(known) - 1)
    rows = np.flatnonzero(known[at] == ids)
    return rows, answers[at[rows]]


def apply_job(model: SavedModel, sets: list[FeatureSet], blocks: Sequence[ApplyBlock],
              threshold: float) -> JobSpec:
    from eominer.learning.engine import with_answers
    from eominer.store.features import row_major

    order = np.argsort(model.label_ids, kind="stable")
    known, answers = model.label_ids[order], model.label_y[order]
    by_id = {b.task_id: b for b in blocks}
    scorer = model.scorer
    alpha = spatial_context(model)

    def load(store: Store | None, task: Task) -> tuple[Any, ...]:
        assert store is not None  # apply always has a database
        b = by_id[task.task_id]
        tables = [(table, fs.columns) for table, fs in zip(
            b.tables or [fs.table_name for fs in sets], sets, strict=True)]
        t = store.feature_block(tables, b.product_id, model.level, b.lo, b.hi)
        ids = t.column(0).to_numpy().astype(np.int64)
        wanted = b.ids if b.halo is None else np.r_[b.ids, b.halo]
        if wanted is not None:
            keep = np.isin(ids, wanted)
            t, ids = t.filter(keep), ids[keep]
        if b.halo is None:
            return scorer, ids, row_major(t, first=1)
        cells = store.scope_patches([b.product_id], model.level,
                                    columns=["patch_id", "row", "col"])
        at = np.searchsorted(cells["patch_id"].to_numpy(), ids)
        return (scorer, ids, row_major(t, first=1), cells["row"].to_numpy()[at],
                cells["col"].to_numpy()[at], np.isin(ids, b.ids), alpha)

    def commit(store: Store | None, done: list[Finished]) -> None:
        assert store is not None
        ids = np.concatenate([f.result[0] for f in done])
        scores = np.concatenate([f.result[1] for f in done]).astype(np.float32)
        # the analyst's answers over the model's scores where it was trained, as the
        # session's ranking, `publish` and the exports show them (engine.with_answers)
        rows, y = answered_rows(known, answers, ids)
        with_answers(scores, rows, y)
        positive = scores >= np.float32(threshold)
        positive[rows] = y == 1
        store.upsert_annotations(model.session_id, model.concept, ids, scores, positive,
                                 model.model_id, SOURCE)

    fn = score_band_in_context if alpha else score_block
    tasks = [Task(b.task_id, fn, (), product_id=b.product_id, block=b.index,
                  n_items=b.n, writes_for=(b.product_id,)) for b in blocks]
    return JobSpec("apply", tasks, commit, load=load)


def run_apply(
    store: Store, model_id: str, product_ids: Sequence[str] | None = None, *,
    where: str | None = None, aoi: Any = None, threshold: float | None = None,
    address: str | None = None, num_cpus: int | None = None, num_workers: int | None = None,
    block_patches: int = DEFAULT_BLOCK_PATCHES, retries: int = DEFAULT_RETRIES,
    rerun: bool = False, on_start: Callable[[int, int], None] | None = None,
    on_task: TaskCallback | None = None, on_finish: Callable[[int, int], None] | None = None,
) -> ApplyReport:
    """Run (or resume) applying saved model `model_id`. `threshold` (default: the
    model's, the one its session was last published at) makes `positive`; `rerun`
    scores again the blocks a previous run finished. Bad input raises before anything is
    written. Returns the report; failed tasks are listed there
    (`report.raise_for_failures()`)."""
    from compute.runner import ensure_ray, new_job_id, run_job
    from eominer.learning.saved import load_model

    ensure_ray(num_workers, address)  # a missing Ray, before anything is planned
    if block_patches < 1:
        raise ConfigError(f"block_patches must be at least 1, got {block_patches}")
    model = load_model(store, model_id)
    t = model.threshold if threshold is None else float(threshold)
    if not 0.0 <= t <= 1.0:
        raise ConfigError(f"threshold must be a score in [0, 1], got {t}")
    report = ApplyReport(new_job_id("apply"), model_id=model_id, threshold=t)
    blocks = plan(store, model, product_ids, where, aoi, block_patches, report)
    spec = apply_job(model, model_feature_sets(store, model), blocks, t)
    if rerun:
        spec = JobSpec(spec.kind, spec.tasks, spec.commit, load=spec.load,
                       done_ids=lambda _store, _tasks: set())
    run_job(store, spec, address=address, num_cpus=num_cpus, num_workers=num_workers,
            retries=retries, report=report, on_start=on_start, on_task=on_task,
            on_finish=on_finish)
    return report
