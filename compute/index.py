"""The index job: the archive-wide nearest-neighbour index of one feature set at one
level (eominer.learning.ann), one runner task per product shard.

The driver computes the standardisation once, in SQL over every indexed row (or keeps
the manifest's), and writes nothing else to the database but the runner's `jobs` rows. The
driver reads a task's product's features just before it is submitted (the runner's
`load`, as apply reads its blocks), so no worker opens the database: monetdbe is one
process's, and a worker on another node may not reach a DuckDB file on the head. A
task standardises them and writes its shard file atomically; the driver adds the
finished shards to the manifest in each commit. A shard already in the manifest with its
file present is done: a re-run builds only new products' shards (or, after a kill, the
ones that did not finish). A shard whose product's features were re-extracted after it
was built (a later extract task in `jobs`) is rebuilt; a query refuses it meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compute.runner import DEFAULT_RETRIES, Finished, JobReport, JobSpec, Task, TaskCallback
from eominer.errors import ConfigError
from eominer.learning import ann
from eominer.learning.ann import shard_file

if TYPE_CHECKING:
    from eominer.store import Store


def build_product_shard(product_id: str, ids: np.ndarray, X: np.ndarray, mean: np.ndarray,
                        std: np.ndarray, path: str) -> tuple[str, int]:
    """Task: standardise one product's features (read on the driver: `load_features`) and
    write its shard."""
    return product_id, ann.build_shard(ids, ann.standardise(X, mean, std), Path(path))


def load_features(feature_set_id: str,
                  level: int) -> Callable[[Store | None, Task], tuple[Any, ...]]:
    """The runner's `load` of an index job: a task's (product, mean, std, path) with the
    product's features at `level` read from the driver's store."""

    def load(store: Store | None, task: Task) -> tuple:
        assert store is not None
        product_id, mean, std, path = task.args
        ids, X, _ = store.read_features([feature_set_id], [product_id], level)
        return product_id, ids, X, mean, std, path

    return load


def plan_index(store: Store, feature_set_id: str, level: int,
               product_ids: Sequence[str] | None = None, rebuild: bool = False,
               ) -> tuple[Path, ann.Manifest, list[Task]]:
    """The index folder, its manifest (new statistics on a first build or --rebuild) and
    one task per product with features at `level`. Raises before any write."""
    fs = store.require_feature_set(feature_set_id)
    folder = ann.index_dir(store, fs.feature_set_id, level)
    every = [p.product_id for p in store.product_list()]
    coverage = store.feature_coverage(every, level)
    have = coverage.get(fs.feature_set_id, {})
    if product_ids:
        unknown = sorted(set(product_ids) - set(have))
        if unknown:
            raise ConfigError(f"product(s) {', '.join(unknown)} have no {fs.feature_set_id} "
                              f"features at level {level}: run `eominer extract` for them")
        have = {p: have[p] for p in product_ids}
    if not have:
        levels = store.patch_levels(every)
        if int(level) not in levels:  # no extract makes a level: the grid is cut at ingest
            raise ConfigError(f"no product has patches at level {level}: choose --level "
                              f"among the grid's levels {levels}")
        raise ConfigError(f"no product has {fs.feature_set_id} features at level {level}: "
                          "run `eominer extract` first, or choose another --level")
    manifest = None if rebuild else ann.read_manifest(folder)
    if manifest is not None and manifest.columns != list(fs.columns):
        raise ConfigError(f"the index in {folder} was built for other columns: rebuild it "
                          "with --rebuild")
    if manifest is None:
        mean, std, _ = store.column_stats(fs, level)
        manifest = ann.Manifest(fs.feature_set_id, int(level), list(fs.columns),
                                mean.tolist(), std.tolist())
    mean, std = np.asarray(manifest.mean), np.asarray(manifest.std)
    tasks = [Task(f"index/{fs.feature_set_id}/L{level}/{pid}", build_product_shard,
                  (pid, mean, std, str(folder / shard_file(pid))),
                  product_id=pid, feature_set_id=fs.feature_set_id, n_items=int(n),
                  writes_for=(pid,))
             for pid, n in sorted(have.items())]
    return folder, manifest, tasks


def run_index(store: Store, feature_set_id: str, level: int, *,
              product_ids: Sequence[str] | None = None, rebuild: bool = False,
              address: str | None = None, num_cpus: int | None = None,
              num_workers: int | None = None, retries: int = DEFAULT_RETRIES,
              on_start: Callable[[int, int], None] | None = None,
              on_task: TaskCallback | None = None,
              on_finish: Callable[[int, int], None] | None = None) -> JobReport:
    """Build the missing shards of the index (all of them with `rebuild`)."""
    from compute.runner import run_job

    folder, manifest, tasks = plan_index(store, feature_set_id, level, product_ids, rebuild)
    if rebuild:
        manifest.shards = {}
    ann.write_manifest(folder, manifest)

    # a shard is done when its file exists and its features were not re-extracted since
    stamps = store.feature_stamps(manifest.feature_set_id)
    stale = ann.stale_shards(manifest, stamps)

    def done_ids(_store: Store | None, ts: Sequence[Task]) -> set[str]:
        return {t.task_id for t in ts if t.product_id in manifest.shards
                and t.product_id not in stale
                and (folder / manifest.shards[t.product_id]["file"]).exists()}

    def commit(_store: Store | None, batch: list[Finished]) -> None:
        for f in batch:
            pid, n = f.result
            manifest.shards[pid] = ann.shard_entry(shard_file(pid), n, stamps.get(pid))
        ann.write_manifest(folder, manifest)

    def discard(f: Finished) -> None:  # a shard of a product removed while it was built
        (folder / shard_file(f.result[0])).unlink(missing_ok=True)

    spec = JobSpec("index", tasks, commit, done_ids=done_ids, discard=discard,
                   load=load_features(manifest.feature_set_id, int(level)))
    return run_job(store, spec, address=address, num_cpus=num_cpus, num_workers=num_workers,
                   retries=retries, on_start=on_start, on_task=on_task,
                   on_finish=on_finish)
