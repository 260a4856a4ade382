"""The extract job: descriptors for every patch of the selected products, on Ray (or in
this process with `num_workers` 0: the same tasks, commits and resume records).

Work is one task per (product, feature set, block of patch rows), run by the job
runner (`compute.runner`: resume, retries, batched commits, progress, metrics). A task
reads its block (plus the descriptor's halo) from the product's ARD COG itself and
returns (patch_ids, values); the driver writes each batch of results in bulk and marks
the tasks `done` in the same transaction. A worker process keeps its configured
descriptors between tasks, so the encoder model loads once per worker, not per task.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from compute.runner import DEFAULT_RETRIES, Finished, JobReport, JobSpec, Task, TaskCallback
from eominer.errors import ConfigError, FeatureError, ModelNotTrainedError, ProductReadError
from eominer.features.registry import SENSORS, Descriptor, build, parse_feature_names

if TYPE_CHECKING:
    from eominer.store import Product, Store

DEFAULT_BLOCK_ROWS = 512
GPU_DESCRIPTORS = frozenset({"encoder", "ssl"})  # run on a GPU worker where the cluster has GPUs


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
class ExtractReport(JobReport):
    kind: str = "extract"
    feature_sets: list[tuple[str, str]] = field(default_factory=list)  # (id, name)


# ---- worker side ------------------------------------------------------------------
# Descriptors configured in this worker process, by their identity: a worker runs many
# blocks of the same few feature sets, and the encoder's model is costly to load.
_configured: dict[str, Descriptor] = {}


def descriptor_for(task: BlockTask) -> Descriptor:
    key = json.dumps([task.descriptor, task.product_bands, task.build_params],
                     sort_keys=True, default=str)
    if key not in _configured:
        if len(_configured) >= 16:  # a long-lived worker: keep the memo small
            _configured.clear()
        _configured[key] = build(task.descriptor, task.product_bands, **task.build_params)
    return _configured[key]


def compute_block(task: BlockTask) -> tuple[np.ndarray, np.ndarray]:
    """Read the block, compute the descriptor: (patch_ids, (n, d) float32)."""
    from eominer.features.blocks import band_indexes, read_block

    desc = descriptor_for(task)
    idx = band_indexes(task.product_bands, desc.bands, task.product_id)
    stack = read_block(task.ard_path, task.sensor, idx, task.y0, task.y1, desc.halo,
                       task.width, task.height)
    values = desc.compute(stack, task.windows)
    if not np.all(np.isfinite(values)):
        raise FeatureError(f"{task.descriptor} produced non-finite values in {task.task_id}")
    return task.patch_ids, values


# ---- driver side ------------------------------------------------------------------
def check_ard(product: Product) -> None:
    """The ARD file exists, opens and matches the catalogue (fail before any work)."""
    import rasterio

    path, pid = product.ard_path, product.product_id
    if not os.path.exists(path):
        raise ProductReadError(
            f"analysis-ready file of product {pid} is missing: {path}; re-ingest it "
            f"(eominer ingest {product.source_path or 'SOURCE'})"
        )
    try:
        with rasterio.open(path) as ds:
            shape = (ds.count, ds.height, ds.width)
    except rasterio.errors.RasterioIOError as exc:
        raise ProductReadError(
            f"analysis-ready file of product {pid} is corrupt: {path}: {exc}; re-ingest it"
        ) from exc
    expected = (len(product.bands), product.height, product.width)
    if shape != expected:
        raise ProductReadError(
            f"analysis-ready file {path} of product {pid} has (bands, rows, cols) {shape}, "
            f"expected {expected}: it was replaced or truncated; re-ingest the product"
        )


def select_products(store: Store, product_ids: Sequence[str] | None) -> list[Product]:
    rows = store.product_list()
    if not product_ids:
        if not rows:
            raise ConfigError("no products in the database: ingest some first "
                              "(eominer ingest PATH)")
        return rows
    by_id = {r.product_id: r for r in rows}
    unknown = [p for p in product_ids if p not in by_id]
    if unknown:
        raise ConfigError(f"product(s) {', '.join(unknown)} not in the database "
                          f"({len(rows)} ingested; see `eominer products`)")
    return [by_id[p] for p in product_ids]


def block_tasks(store: Store, product: Product, fs_id: str, name: str,
                build_params: dict[str, Any], block_rows: int) -> list[BlockTask]:
    """Blocks of whole patch rows: a multiple of every level, so each patch of every
    level falls in exactly one block."""
    pt = store.patches(product.product_id)
    if not pt.num_rows:
        return []
    ids = pt["patch_id"].to_numpy().astype(np.int64)
    y = pt["y_off"].to_numpy().astype(np.int64)
    x = pt["x_off"].to_numpy().astype(np.int64)
    s = pt["size_px"].to_numpy().astype(np.int64)
    align = int(np.lcm.reduce(np.unique(s)))
    rows = max(align, block_rows // align * align)
    height = product.height
    tasks = []
    for y0 in range(0, height, rows):
        sel = np.flatnonzero((y >= y0) & (y < y0 + rows))
        if not sel.size:
            continue
        y1 = min(y0 + rows, height)
        win = np.stack([y[sel] - y0, x[sel], s[sel], s[sel]], axis=1)
        tasks.append(BlockTask(
            f"{fs_id}/{product.product_id}/{y0}-{y1}", product.product_id, fs_id, name,
            build_params, product.bands, product.sensor, product.ard_path, product.width,
            height, y0, y1, ids[sel], win,
        ))
    return tasks


def plan(store: Store, features: str | Sequence[str] | None, product_ids: Sequence[str] | None,
         block_rows: int, report: ExtractReport,
         params: dict[str, dict[str, Any]] | None = None,
         ) -> tuple[list[BlockTask], dict[str, Any]]:
    """Validate everything and cut tasks, writing nothing: an input that is bad
    (unknown feature, missing ARD, no encoder) raises before any write, and the feature
    sets are created only once the job runs (`run_extract`). One exception: mosaiks'
    filter bank is sampled from the selected products and recorded in `models` here,
    after every check, when no bank with the same parameters exists yet.
    `params`: descriptor name -> parameters of its builder (e.g. {"mosaiks": {"k": 5}})."""
    explicit = features is not None
    names = parse_feature_names(features)
    params = params or {}
    unknown = [n for n in params if n not in names]
    if unknown:
        raise ConfigError(f"parameters given for {', '.join(unknown)}, which is not among "
                          f"the feature sets extracted ({', '.join(names)})")
    products = select_products(store, product_ids)
    for p in products:
        check_ard(p)
    build_params: dict[str, dict[str, Any]] = {n: dict(params.get(n, {})) for n in names}
    for learned, method in (("encoder", "autoencoder"), ("ssl", "ssl")):
        if learned not in names:
            continue
        chosen = build_params[learned].pop("model_id", None)
        if build_params[learned]:
            raise ConfigError(f"{learned} takes only the parameter model_id (the trained "
                              f"model to use; default the newest), got "
                              f"{', '.join(sorted(build_params[learned]))}")
        if chosen is not None:
            model = store.model(str(chosen))
            if model is None or model["kind"] != learned:
                have = [m["model_id"] for m in store.models(learned)] or ["none yet"]
                raise ConfigError(f"no {learned} model {chosen!r} in this database; its "
                                  f"{learned} models: {', '.join(have)} (`eominer encoder "
                                  "list`)")
        else:
            model = store.latest_model(learned)  # the newest model of that kind
        if model is None:
            if explicit:
                build(learned, [], model=None)  # raises ModelNotTrainedError
            names.remove(learned)
            report.notes.append(f"{learned} skipped: no {learned} model trained yet "
                                f"(eominer encoder train --method {method})")
        else:
            build_params[learned] = {"model": model}
    if "mosaiks" in names:
        from eominer.features.mosaiks import bank_params, ensure_bank

        wanted = bank_params(build_params["mosaiks"])["bands"]
        s2 = [p for p in products if p.sensor == "S2" and set(wanted) <= set(p.bands)]
        if s2:
            build_params["mosaiks"]["bank"] = ensure_bank(store, s2, build_params["mosaiks"])
    descs: list[tuple[Product, str, Descriptor]] = []
    for name in names:
        matching = [p for p in products if p.sensor == SENSORS[name]]
        if explicit and not matching:
            report.notes.append(f"{name}: no {SENSORS[name]} product selected")
        for p in matching:
            try:
                descs.append((p, name, build(name, p.bands, **build_params[name])))
            except ModelNotTrainedError:
                raise
            except FeatureError as exc:
                report.notes.append(f"{name} skipped for {p.product_id}: {exc}")
    tasks: list[BlockTask] = []
    registered: dict[str, Any] = {}
    for p, name, d in descs:
        fs = store.planned_feature_set(d.name, d.version, d.params, d.columns, d.sensor)
        registered[fs.feature_set_id] = fs
        if (fs.feature_set_id, fs.name) not in report.feature_sets:
            report.feature_sets.append((fs.feature_set_id, fs.name))
        tasks += block_tasks(store, p, fs.feature_set_id, name, build_params[name], block_rows)
    return tasks, registered


def create_feature_sets(store: Store, sets: dict[str, Any]) -> None:
    """Create the planned feature sets that are new (they carry the descriptor's own
    params; existing ones come back from the database as they are)."""
    for fs in sets.values():
        if store.feature_set(fs.feature_set_id) is None:
            store.register_feature_set(fs.name, fs.version, fs.params, fs.columns, fs.sensor)


def as_task(block: BlockTask) -> Task:
    return Task(block.task_id, compute_block, (block,), product_id=block.product_id,
                feature_set_id=block.feature_set_id, block=block.y0, n_items=block.n_patches,
                gpu=block.descriptor in GPU_DESCRIPTORS, writes_for=(block.product_id,))


def extract_job(store: Store, blocks: Sequence[BlockTask], sets: dict[str, Any]) -> JobSpec:
    """The runner's job: new feature sets are created once Ray is up; each batch of
    finished blocks is written as one bulk upsert per feature set."""

    def commit(store: Store | None, done: list[Finished]) -> None:
        assert store is not None  # extract always has a database
        by_set: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for f in done:
            by_set.setdefault(f.task.feature_set_id or "", []).append(f.result)
        for fid, parts in by_set.items():
            store.write_features(sets[fid], np.concatenate([i for i, _ in parts]),
                                 np.concatenate([v for _, v in parts]))

    return JobSpec("extract", [as_task(b) for b in blocks], commit,
                   prepare=lambda st: create_feature_sets(st, sets))


def run_extract(
    store: Store, features: str | Sequence[str] | None = None,
    product_ids: Sequence[str] | None = None, *, address: str | None = None,
    num_cpus: int | None = None, num_workers: int | None = None,
    block_rows: int = DEFAULT_BLOCK_ROWS, retries: int = DEFAULT_RETRIES,
    on_start: Callable[[int, int], None] | None = None, on_task: TaskCallback | None = None,
    on_finish: Callable[[int, int], None] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
) -> ExtractReport:
    """Run (or resume) extraction. `on_start(total, to_run)`; `on_task(done, to_run,
    patches_done, task, worker)` after each committed task; `on_finish(finished,
    to_run)` as results arrive. `num_workers` 0: in this process, without Ray. Returns
    the report; failed tasks are listed there (`report.raise_for_failures()`)."""
    from compute.runner import ensure_ray, new_job_id, run_job

    ensure_ray(num_workers, address)  # a missing Ray, before anything is planned
    report = ExtractReport(new_job_id("extract"))
    blocks, sets = plan(store, features, product_ids, block_rows, report, params)
    run_job(store, extract_job(store, blocks, sets), address=address, num_cpus=num_cpus,
            num_workers=num_workers, retries=retries, report=report, on_start=on_start,
            on_task=on_task, on_finish=on_finish)
    return report
