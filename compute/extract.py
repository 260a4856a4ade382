"""The extract job: descriptors for every patch of the selected products, on Ray.

Work is one task per (product, feature set, block of patch rows). A pool of Ray actors
(one CPU, one BLAS/TF thread each) runs them; an actor keeps its configured
descriptors, so the encoder model is loaded once per worker, not per task. Tasks read
their block (plus the descriptor's halo) from the product's ARD COG themselves and
return (patch_ids, values); the driver, the only process that writes to the database
(DuckDB allows one writer), writes each result in bulk and marks the task `done` in
the same transaction. A re-run skips `done` tasks, so a job killed midway (Ctrl-C, a
killed worker, a crash) resumes where it stopped, and upserts rule out duplicates.
A failed task is retried `retries` times, then reported by name.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compute.runtime import limit_worker_threads, task_error_text, worker_name
from eominer.errors import (
    ConfigError,
    FeatureError,
    JobError,
    ModelNotTrainedError,
    ProductReadError,
)
from eominer.features.registry import SENSORS, Descriptor, build, parse_feature_names

DEFAULT_BLOCK_ROWS = 512
DEFAULT_RETRIES = 2
IN_FLIGHT_PER_WORKER = 2  # one running, one queued: no idle gap between tasks
GPU_DESCRIPTORS = frozenset({"encoder"})  # run on a GPU actor where the cluster has GPUs


@dataclass(frozen=True)
class BlockTask:
    """Everything a worker needs to compute one block (small: no pixels)."""

    task_id: str
    product_id: str
    feature_set_id: str
    descriptor: str
    build_params: dict[str, Any]
    product_bands: tuple[str, ...]
    sensor: str
    ard_path: str
    width: int
    height: int
    y0: int
    y1: int
    patch_ids: np.ndarray = field(repr=False)
    windows: np.ndarray = field(repr=False)  # [y_off - y0, x_off, size, size]

    @property
    def n_patches(self) -> int:
        return len(self.patch_ids)


@dataclass
class ExtractReport:
    job_id: str
    tasks_total: int = 0
    tasks_skipped: int = 0
    tasks_done: int = 0
    patches_written: int = 0
    seconds: float = 0.0  # from Ray being up to the last result (worker start included)
    first_result_seconds: float = 0.0  # from Ray being up to the first result (start-up)
    workers: int = 0
    feature_sets: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (task, product, error)
    notes: list[str] = field(default_factory=list)

    def raise_for_failures(self) -> None:
        if self.failed:
            lines = "; ".join(f"{t} ({p}): {e.splitlines()[0] if e else ''}"
                              for t, p, e in self.failed[:10])
            more = f" and {len(self.failed) - 10} more" if len(self.failed) > 10 else ""
            raise JobError(
                f"{len(self.failed)} extract task(s) failed after retries: {lines}{more}. "
                "Fix the cause and re-run the same command: finished tasks are kept"
            )


# ---- worker side ------------------------------------------------------------------
def descriptor_for(task: BlockTask, cache: dict[str, Descriptor]) -> Descriptor:
    key = json.dumps([task.descriptor, task.product_bands, task.build_params],
                     sort_keys=True, default=str)
    if key not in cache:
        cache[key] = build(task.descriptor, task.product_bands, **task.build_params)
    return cache[key]


def compute_block(task: BlockTask, cache: dict[str, Descriptor] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Read the block, compute the descriptor: (patch_ids, (n, d) float32)."""
    from eominer.features.blocks import band_indexes, read_block

    desc = descriptor_for(task, {} if cache is None else cache)
    idx = band_indexes(task.product_bands, desc.bands, task.product_id)
    stack = read_block(task.ard_path, task.sensor, idx, task.y0, task.y1, desc.halo,
                       task.width, task.height)
    values = desc.compute(stack, task.windows)
    if not np.all(np.isfinite(values)):
        raise FeatureError(f"{task.descriptor} produced non-finite values in {task.task_id}")
    return task.patch_ids, values


class FeatureWorker:
    """A Ray actor (see `run_extract`): keeps descriptors (and models) between tasks."""

    def __init__(self) -> None:
        limit_worker_threads()
        self.cache: dict[str, Descriptor] = {}
        self.name = worker_name()

    def run(self, task: BlockTask) -> tuple[str, np.ndarray, np.ndarray, str]:
        ids, values = compute_block(task, self.cache)
        return task.task_id, ids, values, self.name

    def pid(self) -> int:
        return os.getpid()


# ---- driver side ------------------------------------------------------------------
def check_ard(product: dict[str, Any]) -> None:
    """The ARD file exists, opens and matches the catalogue (fail before any work)."""
    import rasterio

    path = product["ard_path"]
    pid = product["product_id"]
    if not os.path.exists(path):
        raise ProductReadError(
            f"analysis-ready file of product {pid} is missing: {path}; re-ingest it "
            f"(eominer ingest {product.get('source_path') or 'SOURCE'})"
        )
    try:
        with rasterio.open(path) as ds:
            shape = (ds.count, ds.height, ds.width)
    except rasterio.errors.RasterioIOError as exc:
        raise ProductReadError(
            f"analysis-ready file of product {pid} is corrupt: {path}: {exc}; re-ingest it"
        ) from exc
    expected = (len(json.loads(product["bands"])), product["height"], product["width"])
    if shape != expected:
        raise ProductReadError(
            f"analysis-ready file {path} of product {pid} has (bands, rows, cols) {shape}, "
            f"expected {expected}: it was replaced or truncated; re-ingest the product"
        )


def select_products(store, product_ids: Sequence[str] | None) -> list[dict[str, Any]]:
    rows = store.products().to_pylist()
    if not product_ids:
        if not rows:
            raise ConfigError("no products in the database: ingest some first "
                              "(eominer ingest PATH)")
        return rows
    by_id = {r["product_id"]: r for r in rows}
    unknown = [p for p in product_ids if p not in by_id]
    if unknown:
        raise ConfigError(f"product(s) {', '.join(unknown)} not in the database "
                          f"({len(rows)} ingested; see `eominer products`)")
    return [by_id[p] for p in product_ids]


def block_tasks(store, product: dict[str, Any], fs_id: str, name: str,
                build_params: dict[str, Any], block_rows: int) -> list[BlockTask]:
    """Blocks of whole patch rows: a multiple of every level, so each patch of every
    level falls in exactly one block."""
    pt = store.patches(product["product_id"])
    if not pt.num_rows:
        return []
    ids = pt["patch_id"].to_numpy().astype(np.int64)
    y = pt["y_off"].to_numpy().astype(np.int64)
    x = pt["x_off"].to_numpy().astype(np.int64)
    s = pt["size_px"].to_numpy().astype(np.int64)
    align = int(np.lcm.reduce(np.unique(s)))
    rows = max(align, block_rows // align * align)
    height = int(product["height"])
    tasks = []
    for y0 in range(0, height, rows):
        sel = np.flatnonzero((y >= y0) & (y < y0 + rows))
        if not sel.size:
            continue
        y1 = min(y0 + rows, height)
        win = np.stack([y[sel] - y0, x[sel], s[sel], s[sel]], axis=1)
        tasks.append(BlockTask(
            f"{fs_id}/{product['product_id']}/{y0}-{y1}", product["product_id"], fs_id, name,
            build_params, tuple(json.loads(product["bands"])), product["sensor"],
            product["ard_path"], int(product["width"]), height, y0, y1, ids[sel], win,
        ))
    return tasks


def plan(store, features: str | Sequence[str] | None, product_ids: Sequence[str] | None,
         block_rows: int, report: ExtractReport) -> tuple[list[BlockTask], dict[str, Any]]:
    """Validate everything and cut tasks, writing nothing: an input that is bad
    (unknown feature, missing ARD, no encoder) raises before any write, and the feature
    sets are created only once the job runs (`run_extract`)."""
    from eominer.features.encoder import latest_encoder

    explicit = features is not None
    names = parse_feature_names(features)
    products = select_products(store, product_ids)
    for p in products:
        check_ard(p)
    build_params: dict[str, dict[str, Any]] = {n: {} for n in names}
    if "encoder" in names:
        model = latest_encoder(store)
        if model is None:
            if explicit:
                build("encoder", [], model=None)  # raises ModelNotTrainedError
            names.remove("encoder")
            report.notes.append("encoder skipped: no encoder trained yet "
                                "(eominer encoder train)")
        else:
            build_params["encoder"] = {"model": model}
    descs: list[tuple[dict[str, Any], str, Descriptor]] = []
    for name in names:
        matching = [p for p in products if p["sensor"] == SENSORS[name]]
        if explicit and not matching:
            report.notes.append(f"{name}: no {SENSORS[name]} product selected")
        for p in matching:
            try:
                descs.append((p, name, build(name, json.loads(p["bands"]),
                                             **build_params[name])))
            except ModelNotTrainedError:
                raise
            except FeatureError as exc:
                report.notes.append(f"{name} skipped for {p['product_id']}: {exc}")
    tasks: list[BlockTask] = []
    registered: dict[str, Any] = {}
    for p, name, d in descs:
        fs = store.planned_feature_set(d.name, d.version, d.params, d.columns, d.sensor)
        registered[fs.feature_set_id] = fs
        if (fs.feature_set_id, fs.name) not in report.feature_sets:
            report.feature_sets.append((fs.feature_set_id, fs.name))
        tasks += block_tasks(store, p, fs.feature_set_id, name, build_params[name], block_rows)
    return tasks, registered


def create_feature_sets(store, sets: dict[str, Any]) -> None:
    """Create the planned feature sets that are new (they carry the descriptor's own
    params; existing ones come back from the database as they are)."""
    for fs in sets.values():
        if store.feature_set(fs.feature_set_id) is None:
            store.register_feature_set(fs.name, fs.version, fs.params, fs.columns, fs.sensor)


def new_job_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"extract-{stamp}-{secrets.token_hex(3)}"


ProgressFn = Callable[[int, int, int, BlockTask, str], None]


def run_extract(
    store, features: str | Sequence[str] | None = None,
    product_ids: Sequence[str] | None = None, *, address: str | None = None,
    num_cpus: int | None = None, num_workers: int | None = None,
    block_rows: int = DEFAULT_BLOCK_ROWS, retries: int = DEFAULT_RETRIES,
    on_start: Callable[[int, int], None] | None = None, on_task: ProgressFn | None = None,
) -> ExtractReport:
    """Run (or resume) extraction. `on_start(total, to_run)`; `on_task(done, to_run,
    patches_done, task, worker)` after each committed task. Returns the report; failed
    tasks are listed there (`report.raise_for_failures()`)."""
    from compute.runtime import cluster_cpus, import_ray, ray_session
    from eominer.metrics import exporter_from_env

    import_ray(local=not address)  # a missing Ray is reported before anything is planned
    report = ExtractReport(new_job_id())
    tasks, sets = plan(store, features, product_ids, block_rows, report)
    report.tasks_total = len(tasks)
    done = store.task_statuses([t.task_id for t in tasks])
    todo = [t for t in tasks if done.get(t.task_id) != "done"]
    report.tasks_skipped = len(tasks) - len(todo)
    if on_start:
        on_start(len(tasks), len(todo))
    if not todo:
        return report
    # Ray first: a cluster that cannot be reached leaves the database as it was
    with ray_session(address, num_cpus) as ray:
        with store.transaction():
            create_feature_sets(store, sets)
            store.schedule_tasks(report.job_id, "extract", [
                {"task_id": t.task_id, "product_id": t.product_id,
                 "feature_set_id": t.feature_set_id, "block": t.y0, "n_items": t.n_patches}
                for t in todo])
        n = max(1, min(num_workers or cluster_cpus(ray), len(todo)))
        report.workers = n
        t0 = time.perf_counter()  # Ray is up: from here on, the job's own time
        try:
            with exporter_from_env():  # Prometheus scrapes progress if asked to
                _drive(ray, store, sets, todo, n, retries, report, on_task)
        finally:
            report.seconds = time.perf_counter() - t0
    return report


def _drive(ray, store, sets: dict[str, Any], todo: list[BlockTask], n_workers: int,
           retries: int, report: ExtractReport, on_task: ProgressFn | None) -> None:
    from ray.exceptions import RayActorError, RayError

    from compute.runtime import gpus_for_models, gpus_in_cluster
    from eominer.metrics import job_metrics

    t_start = time.perf_counter()

    metrics = job_metrics()
    # Model tasks (the encoder) go to actors holding a GPU when the cluster has or can
    # start GPU nodes: the autoscaler then boots GPU servers only for them.
    n_model = sum(t.descriptor in GPU_DESCRIPTORS for t in todo)
    gpu = n_model > 0 and gpus_for_models(ray) > 0
    n_gpu = min(max(1, gpus_in_cluster(ray)), n_model) if gpu else 0
    # no CPU actors when every task goes to a GPU: idle actors would boot CPU nodes
    on_gpu = [False] * (n_workers if not gpu or n_model < len(todo) else 0) + [True] * n_gpu
    classes = {
        False: ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(FeatureWorker),
        True: ray.remote(num_cpus=1, num_gpus=1, max_restarts=0,
                         max_task_retries=0)(FeatureWorker),
    }
    slots = range(len(on_gpu))
    actors = [classes[on_gpu[s]].remote() for s in slots]
    load = [0] * len(on_gpu)
    # an actor runs its tasks one after the other: a task's run time is measured from
    # its submission or the slot's previous result, whichever is later
    slot_free_at = [time.perf_counter()] * len(on_gpu)
    queues: dict[bool, deque[tuple[BlockTask, int]]] = {False: deque(), True: deque()}

    def enqueue(task: BlockTask, attempt: int) -> None:
        queues[gpu and task.descriptor in GPU_DESCRIPTORS].append((task, attempt))

    for t in todo:
        enqueue(t, 1)
    inflight: dict[Any, tuple[BlockTask, int, int, Any, float]] = {}
    nodes_seen = 0.0

    def submit() -> None:
        for kind, queue in queues.items():
            while queue:
                slot = min((s for s in slots if on_gpu[s] == kind), key=load.__getitem__)
                if load[slot] >= IN_FLIGHT_PER_WORKER:
                    break
                task, attempt = queue.popleft()
                writer.started(task.task_id, attempt)
                inflight[actors[slot].run.remote(task)] = (task, attempt, slot, actors[slot],
                                                           time.perf_counter())
                load[slot] += 1
        metrics.set_queue_depth("extract", len(queues[False]) + len(queues[True])
                                + len(inflight))

    writer = _Writer(store, sets)
    try:
        submit()
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1)
            if len(inflight) > 1:  # whatever else is ready goes into the same commit
                rest = [r for r in inflight if r != ready[0]]
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            done: list[tuple[BlockTask, np.ndarray, np.ndarray, str, float]] = []
            if not report.first_result_seconds:
                report.first_result_seconds = time.perf_counter() - t_start
            for ref in ready:
                task, attempt, slot, actor, submitted = inflight.pop(ref)
                load[slot] -= 1
                now = time.perf_counter()
                started, slot_free_at[slot] = max(submitted, slot_free_at[slot]), now
                try:
                    _tid, ids, values, worker = ray.get(ref)
                except RayError as exc:
                    metrics.record_task("extract", now - started, failed=True)
                    if isinstance(exc, RayActorError) and actors[slot] is actor:
                        # the worker process died: a fresh one takes its place
                        ray.kill(actor, no_restart=True)
                        actors[slot] = classes[on_gpu[slot]].remote()
                    if attempt <= retries:
                        enqueue(task, attempt + 1)
                    else:
                        msg = task_error_text(exc)
                        writer.flush()  # its pending start mark first, then the failure
                        store.fail_task(task.task_id, msg)
                        report.failed.append((task.task_id, task.product_id, msg))
                    continue
                done.append((task, ids, values, worker, now - started))
            submit()  # workers get their next tasks before the driver writes
            writer.finished(done)
            committed = writer.flush() if writer.due() or not inflight else []
            now = time.perf_counter()
            if now - nodes_seen > 5.0:  # a GCS call: not after every task
                metrics.observe_ray_nodes()
                nodes_seen = now
            for task, ids, _values, worker, seconds in committed:
                report.tasks_done += 1
                report.patches_written += len(ids)
                metrics.record_task("extract", seconds)
                metrics.record_patches("extract", len(ids))
                if on_task:
                    on_task(report.tasks_done, len(todo), report.patches_written, task, worker)
    except KeyboardInterrupt:
        writer.flush()  # what finished before Ctrl-C is kept; a re-run does the rest
        raise
    finally:
        metrics.set_queue_depth("extract", len(queues[False]) + len(queues[True])
                                + len(inflight))
        for a in actors:
            ray.kill(a, no_restart=True)


class _Writer:
    """The driver's writes, grouped: finished tasks' rows and their `done` marks commit
    together, about once a second (a commit per task costs the driver ~10 ms of CPU,
    which on a small machine is taken from the workers). A crash loses at most the
    last second's results; their tasks are not marked done, so a re-run redoes them."""

    def __init__(self, store, sets: dict[str, Any], every_s: float = 1.0) -> None:
        self.store, self.sets, self.every_s = store, sets, every_s
        self.starts: list[tuple[str, int]] = []
        self.done: list[tuple[BlockTask, np.ndarray, np.ndarray, str, float]] = []
        self.last = time.perf_counter()

    def started(self, task_id: str, attempt: int) -> None:
        self.starts.append((task_id, attempt))

    def finished(self, done: list) -> None:
        self.done += done

    def due(self) -> bool:
        return time.perf_counter() - self.last >= self.every_s

    def flush(self) -> list[tuple[BlockTask, np.ndarray, np.ndarray, str, float]]:
        """Commit what is pending; returns the finished tasks just committed."""
        by_set: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for task, ids, values, _worker, _s in self.done:
            by_set.setdefault(task.feature_set_id, []).append((ids, values))
        with self.store.transaction():
            self.store.start_tasks(self.starts)
            for fid, parts in by_set.items():
                self.store.write_features(self.sets[fid], np.concatenate([i for i, _ in parts]),
                                          np.concatenate([v for _, v in parts]))
            self.store.finish_tasks([(t.task_id, w) for t, _i, _v, w, _s in self.done])
        committed, self.starts, self.done = self.done, [], []
        self.last = time.perf_counter()
        return committed

