"""The time-series job: a stack of >= 3 ingested Sentinel-2 products of one place,
modelled per patch (`eominer.change.series`), one task per band of patch rows, on Ray
or in this process (`num_workers` 0), through the job runner: resume, retries, batched
commits, progress. The two feature sets are created once the workers are up; each batch
of finished bands is written as one upsert per set."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from compute.runner import DEFAULT_RETRIES, Finished, JobReport, JobSpec, Task, TaskCallback
from eominer.change.series import SeriesPlan, plan_series, series_band
from eominer.change.timeseries import MIN_SIZE

if TYPE_CHECKING:
    from eominer.store import Store


@dataclass
class SeriesReport(JobReport):
    kind: str = "timeseries"
    plan: SeriesPlan | None = None
    # per level: patches written, with a break, without a seasonal model (this run's)
    levels: dict[int, list[int]] = field(default_factory=dict)


def run_series(
    store: Store, product_ids: Sequence[str], *, on: str | None = None, index: str = "ndvi",
    levels: Sequence[int] | None = None, min_size: float = MIN_SIZE,
    address: str | None = None, num_cpus: int | None = None, num_workers: int | None = None,
    retries: int = DEFAULT_RETRIES, on_start: Callable[[int, int], None] | None = None,
    on_task: TaskCallback | None = None, on_finish: Callable[[int, int], None] | None = None,
) -> SeriesReport:
    """Run (or resume) the stack's job; bad input raises before anything is written."""
    from compute.runner import ensure_ray, new_job_id, run_job

    plan = plan_series(store, product_ids, on=on, index=index, levels=levels,
                       min_size=min_size)
    ensure_ray(num_workers, address)  # a missing Ray, before anything is planned
    report = SeriesReport(new_job_id("timeseries"), plan=plan)
    light = dataclasses.replace(plan, bands=[])  # what every task carries besides its band
    tasks = [Task(f"{plan.temporal.feature_set_id}/{plan.ref.product_id}/{b.y0}-{b.y0 + b.h}",
                  series_band, (light, b), product_id=plan.ref.product_id,
                  feature_set_id=plan.temporal.feature_set_id, block=b.y0,
                  n_items=b.n_patches, writes_for=(plan.ref.product_id,))
             for b in plan.bands]

    def prepare(st: Store) -> None:
        for fs in (plan.temporal, plan.breaks):
            st.register_feature_set(fs.name, fs.version, fs.params, fs.columns, fs.sensor,
                                    sources=[p.product_id for p in plan.products])

    def commit(st: Store | None, done: list[Finished]) -> None:
        assert st is not None
        parts = [(lv, *arrays) for f in done for lv, arrays in f.result.items()]
        if not parts:
            return
        ids = np.concatenate([p[1] for p in parts])
        st.write_features(plan.temporal, ids, np.concatenate([p[2] for p in parts]))
        st.write_features(plan.breaks, ids, np.concatenate([p[3] for p in parts]))
        for lv, i, desc, brk in parts:
            n = report.levels.setdefault(lv, [0, 0, 0])
            n[0] += len(i)
            n[1] += int((brk[:, 3] == 0).sum())
            n[2] += int((desc[:, 5] > 0).sum())

    run_job(store, JobSpec("timeseries", tasks, commit, prepare=prepare), address=address,
            num_cpus=num_cpus, num_workers=num_workers, retries=retries, report=report,
            on_start=on_start, on_task=on_task, on_finish=on_finish)
    return report
