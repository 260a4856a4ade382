"""`eominer change --pairs`: every pair of dates as one runner task.

A task reads, aligns and maps its pair (`eominer.change.run.compute_change`, no database
access); the driver records each finished pair (its per-patch feature set and
`product_pairs` row) together with its `done` mark. A pair of ingested products that an
earlier run finished (same method and seed, maps still on disk) is reported, not
computed again; a pair given by paths has no `jobs` row and is always computed, since
nothing in the database says it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from compute.runner import Finished, JobReport, JobSpec, Task, task_says
from eominer.change.maps import DEFAULT_METHOD, GUIDES, check_method
from eominer.change.run import (
    ChangeRun,
    PairInput,
    check_two_dates,
    compute_change,
    finished_run,
    layer_out,
    method_of,
    pair_id_of,
    patch_windows_of,
    record_change,
    resolve,
    tails_needed,
)
from eominer.errors import JobError

if TYPE_CHECKING:
    from eominer.change.run import ComputedPair
    from eominer.store import Store


@dataclass
class PairsReport(JobReport):
    """A run per input pair (None where it failed), in input order."""

    kind: str = "change"
    pairs: list[tuple[str, str]] = field(default_factory=list)
    runs: list[ChangeRun | None] = field(default_factory=list)
    resumed: int = 0

    index: dict[str, int] = field(default_factory=dict)  # task id -> input position

    def pair_failures(self) -> list[tuple[str, str, str]]:
        """(before, after, error) of each failed pair."""
        return [(*self.pairs[self.index[tid]], err) for tid, _product, err in self.failed]

    def raise_for_failures(self) -> None:
        failed = self.pair_failures()
        if failed:
            lines = "; ".join(f"{a} -> {b}: {e}" for a, b, e in failed[:10])
            more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
            raise JobError(
                f"{len(failed)} of {len(self.runs)} pair(s) failed: {lines}{more}. "
                "Fix the cause and re-run the same command: finished pairs are kept"
            )


def compute_pair(first_in: PairInput, second_in: PairInput, method: str | None, seed: int,
                 windows: dict | None, mask_clouds: bool = True, with_tails: bool = True,
                 out: Path | None = None) -> ComputedPair:
    """The task function: one pair, maps written to `out` (`layer_out`), else the
    workspace's default paths."""
    return compute_change(first_in, second_in, method, out, seed, 1, mask_clouds, windows,
                          progress=task_says, with_tails=with_tails)


def wants_gpu(method: str | None, a: PairInput) -> bool:
    """Whether a pair's task asks the cluster for a GPU: only the methods that train a
    network per pair do (`encoder`, `selftrain_encoder`). `method` None is a path's, known
    once the product is read: the S2 default is assumed, as for an S2 product."""
    if a.product is not None and a.product.sensor != "S2":
        return False
    m = method or DEFAULT_METHOD["S2"]
    return "encoder" in (m, GUIDES.get(m))


def run_pairs(
    pairs: Sequence[tuple[str, str]], method: str | None, store: Store | None = None, seed: int = 0,
    address: str | None = None, num_cpus: int | None = None,
    on_pair: Callable[[int, ChangeRun, bool], None] | None = None, mask_clouds: bool = True,
    num_workers: int | None = None,
) -> PairsReport:
    """Every pair on the runner; a failed pair does not stop the others (the report
    lists it). `on_pair(index, run, resumed)` after each pair is recorded. A pair whose
    `diff_tails` another method's run stored is not asked to compute them again.
    `num_workers` 0: one pair after the other in this process, without Ray."""
    from compute.runner import ensure_ray, new_job_id, run_job

    if method is not None:
        check_method(method)
    ensure_ray(num_workers, address)  # a missing Ray, before anything is planned
    inputs = [(resolve(a, store), resolve(b, store)) for a, b in pairs]
    for a, b in inputs:
        check_two_dates(a, b)
    report = PairsReport(new_job_id("change"), pairs=list(pairs), runs=[None] * len(inputs))
    tasks: list[Task] = []
    twins: dict[str, list[int]] = {}  # task id -> its later input positions (listed again)
    asked = method
    with ExitStack() as names:  # the layer names claimed, held until the job ends
        for i, (a, b) in enumerate(inputs):
            method = method_of(a, asked)
            prior = finished_run(store, a, b, method, seed, mask_clouds) if method else None
            if prior is not None:
                if store is not None:  # mapped before the archive's sets: its rows join them
                    for fid in (prior.feature_set_id, prior.tails_feature_set_id):
                        store.archive_pair_set(fid)
                report.runs[i], report.resumed = prior, report.resumed + 1
                if on_pair:
                    on_pair(i, prior, True)
                continue
            pid = pair_id_of(a, b, method) if method else None
            task_id = f"{pid}:seed{seed}" if pid else f"{a.ref} -> {b.ref}"
            if task_id in report.index:  # the same pair listed twice: computed once
                twins.setdefault(task_id, []).append(i)
                continue
            report.index[task_id] = i
            windows = patch_windows_of(store, a, b)
            tasks.append(Task(
                task_id, compute_pair,
                (a, b, method, seed, windows, mask_clouds,
                 tails_needed(store, a, b, windows, mask_clouds),
                 names.enter_context(layer_out(store, a, b, method))),
                product_id=a.product.product_id if a.product else a.ref,
                n_items=len(windows["patch_id"]) if windows else 0,
                gpu=wants_gpu(method, a),
                recorded=pid is not None,
                writes_for=tuple(s.product.product_id for s in (a, b) if s.product)))

        def commit(store: Store | None, done: list[Finished]) -> None:
            for f in done:
                run = f.result.run if store is None else record_change(store, f.result, seed)
                for i in (report.index[f.task.task_id], *twins.get(f.task.task_id, ())):
                    report.runs[i] = run

        def committed(_done: int, _to_run: int, _patches: int, task: Task, _worker: str) -> None:
            if on_pair:
                for i in (report.index[task.task_id], *twins.get(task.task_id, ())):
                    on_pair(i, report.runs[i], False)

        if tasks:
            # every task given here is to run: prior runs were judged above by their maps
            spec = JobSpec("change", tasks, commit, done_ids=lambda _s, _t: set(),
                           discard=discard_layers, says=True)  # each pair's steps
            run_job(store, spec, address=address, num_cpus=num_cpus,
                    num_workers=num_workers, report=report, on_task=committed)
    return report


def discard_layers(f: Finished) -> None:
    """The layer files of a pair whose product was removed while the job computed it."""
    run = f.result.run
    for path in (run.probability_path, run.binary_path):
        if path:
            Path(path).unlink(missing_ok=True)
