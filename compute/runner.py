"""The one job runner: every Ray batch job of eominer (extract, change pairs, fusion
training, and later ingest and apply) is a list of `Task`s handed to `run_job`.

A task is a stable id and a pure function with its arguments; the job says how to
commit finished results (`JobSpec.commit`). The runner does the rest, the same way for
every job:

- starts or joins Ray through `compute.runtime.ray_session`, and writes nothing before
  Ray is up (an unreachable cluster leaves the database as it was); or, with
  `num_workers` 0, runs the tasks one after the other in this process, everything
  below unchanged (small inputs; a machine where Ray cannot start);
- by default (no number of workers, no cluster, no Ray up in this process) starts in
  this process and moves the rest to a local Ray only once the tasks done show that the
  rest would take longer than Ray's start-up saves (`ray_pays_off`): a crop's extract
  takes 1.7 s instead of 6.0 s, a full tile runs its first two tasks here;
- records a `jobs` row per task and skips tasks already done: a re-run resumes;
- runs tasks on a pool of one-CPU worker actors (GPU actors for model tasks where the
  cluster has or can start GPUs), two tasks in flight per worker so none idles;
- holds a task that names others in `after` until they have finished (e.g. ingest's
  assembly of a product after its bands), then runs it before the queue; a task whose
  prerequisite failed is reported failed, not run;
- retries a failed task `retries` times (a worker that died is replaced), then reports
  it by name; the other tasks go on;
- commits results once a second, less often when commits are slow (at most 3 % of the
  driver's time, `COMMIT_SHARE`; at most every 10 s): a batch of finished tasks' rows and
  their `done` marks in one transaction, so `done` always means "its rows are there" and
  a killed job (Ctrl-C or SIGKILL) loses at most the last interval; upserts rule out
  duplicates when a task is redone; `JobSpec.after_commit` then runs on the batch (file
  moves that must follow the commit);
- checks, in that transaction, that the products a result writes for (`Task.writes_for`)
  are still there: one removed while the job ran gets no rows, the files its results
  wrote go after the commit (`JobSpec.discard`), and the report says so;
- on Ctrl-C commits what finished, ends the workers and re-raises KeyboardInterrupt
  (the CLI exits 130); a run that ends so, or on an error (Ray that does not start),
  marks the tasks it left `stopped`: `pending` and `running` rows are those of a run at
  work (or of a process that was killed outright);
- says that its process lives every `HEARTBEAT_S` (`job_drivers.seen`, from a thread, so
  a task of an hour in this process does not silence it): on its own machine a killed
  run is told by its pid, on any other (the team's app beside a cluster's driver) by a
  silence of `SILENT_AFTER_S`;
- counts tasks, patches, queue depth and nodes in the Prometheus metrics
  (`EOMINER_METRICS_PORT`), and reports progress through `on_task` (the CLI's rich bar,
  `compute.progress`).

The driver is the only process that writes to the database (DuckDB has one writer).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compute.runtime import (
    limit_worker_threads,
    release_memory,
    task_error_text,
    worker_name,
)
from eominer.errors import ConfigError, JobError

if TYPE_CHECKING:
    from types import ModuleType

    from ray import ObjectRef
    from ray.actor import ActorHandle

    from eominer.store import Store

DEFAULT_RETRIES = 2
# Starting a local Ray and its workers, measured: the bundled sample's extract
# (spectral, gabor, wld; 4,536 patch rows) takes 7.1 s on Ray and 1.6 s in this process
# on a 2-core VM, 2026-12-06 (`eominer extract` against `--workers 0`)
RAY_START_S = 5.5
IN_FLIGHT_PER_WORKER = 2  # one running, one queued: no idle gap between tasks
COMMIT_EVERY_S = 1.0  # the commits' cadence at least: not one per task
# A commit of a full tile's results costs the driver ~70 ms (DuckDB: open the file, MERGE
# each set, commit) and its release ~50 ms more; at one a second that is a tenth of a
# core, taken from a worker on a laptop. So the cadence stretches until the commits take
# at most this share of the time, to 10 x COMMIT_EVERY_S (what a crash can lose).
COMMIT_SHARE = 0.03
# A job's process says it lives this often; after SILENT_BEATS beats missed it reads as
# killed from another machine. Generous: a beat can wait up to EOMINER_DB_WAIT (120 s)
# for a DuckDB file that a long query holds, and a false "killed" invites a second run.
HEARTBEAT_S = float(os.environ.get("EOMINER_HEARTBEAT_S") or 30.0)
SILENT_BEATS = 10
SILENT_AFTER_S = HEARTBEAT_S * SILENT_BEATS
SAY_EVERY_S = 2.0  # how often a driver prints what its Ray tasks said (`task_says`)


@dataclass(frozen=True, eq=False)
class Task:
    """One unit of work. `fn(*args)` runs in a worker and must not touch the database;
    its return value goes to the job's `commit` on the driver."""

    task_id: str  # stable across runs: the resume key
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    product_id: str | None = None  # names the task in reports and `jobs` rows
    feature_set_id: str | None = None
    block: int = 0
    n_items: int = 0  # patches the task writes
    gpu: bool = False  # a model task: a GPU worker where the cluster has or can start one
    recorded: bool = True  # has a `jobs` row; False: nothing says it was done, always run
    after: tuple[str, ...] = ()  # ids of tasks that must finish before this one starts
    # products whose rows the result writes: if one was removed while the job ran
    # (`eominer products remove`), the result is dropped, not written for a product gone
    writes_for: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Finished:
    """A task's result as the driver commits it."""

    task: Task
    result: Any
    worker: str  # "host:pid"
    seconds: float


@dataclass(frozen=True)
class JobSpec:
    """A job: its tasks and what the driver does with their results."""

    kind: str  # 'extract', 'change', 'fusion-train', ...
    tasks: Sequence[Task]
    # writes a batch of finished tasks' results (their `n_items` patch rows each); runs
    # inside the runner's transaction, which also marks the tasks done
    commit: Callable[[Store | None, list[Finished]], None]
    # writes that must precede the first task (e.g. new feature sets); same transaction
    # as the `jobs` rows, once Ray is up
    prepare: Callable[[Store], None] | None = None
    # ids of tasks already done (default: `done` in the `jobs` table)
    done_ids: Callable[[Store | None, Sequence[Task]], set[str]] | None = None
    # runs on each batch once its transaction has committed (also on Ctrl-C): what must
    # follow the commit, never precede it (ingest renames a product's COG into place)
    after_commit: Callable[[list[Finished]], None] | None = None
    # the arguments of a task, read on the driver just before it is submitted (apply
    # reads a task's block of features from the store here: at most two blocks per
    # worker are in memory, never the whole input); default: `task.args`
    load: Callable[[Store | None, Task], tuple[Any, ...]] | None = None
    # removes what a result dropped for a removed product wrote outside the database (an
    # index shard, a pair's layer files); runs once the commit that dropped it is done
    discard: Callable[[Finished], None] | None = None
    # its tasks say how far they are (`task_says`: a training's epochs); on Ray their
    # lines reach the driver through a queue (an actor of its own: only where asked)
    says: bool = False


@dataclass
class JobReport:
    job_id: str
    kind: str
    tasks_total: int = 0
    tasks_skipped: int = 0
    tasks_done: int = 0
    patches_written: int = 0
    # from the first task here, or from Ray being up, to the last result (the time a
    # default job waited for Ray's start-up is not in it; worker start-up is)
    seconds: float = 0.0
    first_result_seconds: float = 0.0  # from the same start to the first result
    workers: int = 0  # Ray workers (0: none started)
    in_process: bool = False  # every task ran in the driver: `num_workers` 0, or small
    tasks_in_process: int = 0  # tasks that ran in the driver, before or without Ray
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # task, product, error
    notes: list[str] = field(default_factory=list)

    @property
    def ran_on(self) -> str:
        """Where the tasks ran, as the summary line says it."""
        if self.in_process:
            return "in this process"
        if self.tasks_in_process:
            return f"on {self.workers} worker(s) after {self.tasks_in_process} in this process"
        return f"on {self.workers} worker(s)"

    def raise_for_failures(self) -> None:
        if self.failed:
            lines = "; ".join(f"{t} ({p}): {e.splitlines()[0] if e else ''}"
                              for t, p, e in self.failed[:10])
            more = f" and {len(self.failed) - 10} more" if len(self.failed) > 10 else ""
            raise JobError(
                f"{len(self.failed)} {self.kind} task(s) failed after retries: {lines}{more}. "
                "Fix the cause and re-run the same command: finished tasks are kept"
            )


# (done, to_run, patches written, task, worker) after each committed task
TaskCallback = Callable[[int, int, int, Task, str], None]
# (finished, to_run) as results arrive, before their commit
FinishCallback = Callable[[int, int], None]


def new_job_id(kind: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{kind}-{stamp}-{secrets.token_hex(3)}"


def task_to_take_over(store: Store, kind: str) -> str | None:
    """The task of the latest unfinished run of a one-task job of `kind` (a training
    stopped, failed, or crashed in a process of this machine), for a new run to take
    over: its row moves to the new job, as a re-run of an extract takes over the tasks
    its predecessor left, so the stopped run is no longer listed as one to resume. A
    task running in a live process (or on another machine) is left to it. None: none."""
    for task_id, status in store.unfinished_tasks(kind):
        if status != "running" or died_in_process(store, [task_id]):
            return task_id
    return None


def recorded_done(store: Store | None, tasks: Sequence[Task]) -> set[str]:
    """Tasks whose `jobs` row says done."""
    if store is None:
        return set()
    status = store.task_statuses([t.task_id for t in tasks if t.recorded])
    return {tid for tid, s in status.items() if s == "done"}


def _print_line(line: str) -> None:
    print(line, flush=True)


_SAY: Callable[[str], None] = _print_line  # where `task_says` goes in this process


def task_says(line: str) -> None:
    """A task's word on how far it is (an epoch and its loss, a change pair's step), for
    the user who waits on one long task: in the job's own process it goes to the sink
    of `says_to` (the CLI's bar prints it above itself and logs it for the app,
    `AppJob.said`), else it is printed; from a Ray worker of a job that `says`, it is
    sent to the driver, which passes it on the same way (Ray's log_to_driver is off: a
    worker's own output goes to its log file only)."""
    _SAY(line)


@contextlib.contextmanager
def says_to(sink: Callable[[str], None]) -> Iterator[None]:
    """`task_says` lines of this process (its tasks', and those its driver receives)
    go to `sink` while the block runs."""
    global _SAY
    before, _SAY = _SAY, sink
    try:
        yield
    finally:
        _SAY = before


class Worker:
    """A Ray actor (one CPU, one BLAS/TF thread) that runs any task function. A process
    lives for the whole job, so what a task function caches (a loaded model) is reused.
    `said`: the job's queue (a `ray.util.queue.Queue`) for its tasks' `task_says`."""

    def __init__(self, said: Any = None) -> None:
        global _SAY
        limit_worker_threads()
        self.name = worker_name()
        if said is not None:
            def send(line: str) -> None:  # best effort: a line lost fails no task
                with contextlib.suppress(Exception):
                    said.put_nowait(line)

            _SAY = send

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, str, float]:
        t0 = time.perf_counter()
        try:
            result = fn(*args)
        finally:
            release_memory()  # what the task freed, before the next one allocates
        return result, self.name, time.perf_counter() - t0


def run_job(
    store: Store | None, spec: JobSpec, *, address: str | None = None,
    num_cpus: int | None = None, num_workers: int | None = None,
    retries: int = DEFAULT_RETRIES, report: JobReport | None = None,
    on_start: Callable[[int, int], None] | None = None, on_task: TaskCallback | None = None,
    on_finish: FinishCallback | None = None, try_in_process: bool = True,
) -> JobReport:
    """Run (or resume) a job; returns its report, with failed tasks listed there
    (`report.raise_for_failures()`). `on_start(total, to_run)` before any work;
    `on_task(done, to_run, patches, task, worker)` after each task's commit;
    `on_finish(finished, to_run)` as results arrive, before their commit (commits come
    every 1-10 s: a progress bar that follows them would stall). `num_workers` 0: the
    tasks run one after the other in this process, without Ray (small inputs, or a
    machine where Ray cannot start), with the same commits, resume and retries.
    `num_workers` None with no `address`: this process first, the rest on a local Ray
    once it pays off (`ray_pays_off`); `try_in_process` False goes to Ray at once (a
    caller that has already judged the job large)."""
    in_process = check_in_process(num_workers, address)
    ensure_ray(num_workers, address)  # a missing Ray is reported before anything is written
    # the default: this process first, Ray only if the job proves large enough
    measure = (not in_process and try_in_process and num_workers is None and not address
               and not ray_is_up())
    report = report or JobReport(new_job_id(spec.kind), spec.kind)
    tasks = list(spec.tasks)
    report.tasks_total = len(tasks)
    done = (spec.done_ids or recorded_done)(store, tasks)
    todo = [t for t in tasks if t.task_id not in done]
    report.tasks_skipped = len(tasks) - len(todo)
    if on_start:
        on_start(len(tasks), len(todo))
    if not todo:
        return report
    crashed = died_in_process(store, [t.task_id for t in todo if t.recorded]) \
        if in_process or measure else []
    if crashed:  # a crash of the driver itself: this time the tasks go to workers
        report.notes.append(crash_note(crashed, moved=measure))
        measure = False
    try:
        with heartbeat(store, report.job_id):
            return _run(store, spec, report, todo, in_process, measure, address, num_cpus,
                        num_workers, retries, on_task, on_finish)
    except BaseException:
        _stopped(store, report.job_id)
        raise


@contextlib.contextmanager
def heartbeat(store: Store | None, job_id: str,
              every_s: float | None = None) -> Iterator[None]:
    """While the block runs, a thread writes every `every_s` (HEARTBEAT_S) that the job's
    process lives (`job_drivers.seen`; a no-op until `_schedule` writes its row). One
    statement, never a transaction (those are the main thread's, with its Ctrl-C
    handling); a beat that fails (the database busy, unreachable) waits for the next."""
    if store is None:
        yield
        return
    every = every_s or HEARTBEAT_S
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            with contextlib.suppress(Exception):
                store.job_driver_lives(job_id)

    thread = threading.Thread(target=beat, name=f"heartbeat {job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5.0)


def _run(store: Store | None, spec: JobSpec, report: JobReport, todo: list[Task],
         in_process: bool, measure: bool, address: str | None, num_cpus: int | None,
         num_workers: int | None, retries: int, on_task: TaskCallback | None,
         on_finish: FinishCallback | None) -> JobReport:
    """`run_job`'s runs: here, then (or only) on Ray."""
    from compute.runtime import cluster_cpus, ray_session
    from eominer.metrics import exporter_from_env

    before, tried = 0, {}  # tasks finished here, and tries had, before the rest went to Ray
    if in_process or measure:
        _schedule(store, spec, report, todo)
        local = _InProcess(store, spec, todo, retries, report, on_task, on_finish,
                           hand_over=ray_pays_off(num_cpus) if measure else None)
        t0 = time.perf_counter()
        try:
            with exporter_from_env():
                local.run()
        finally:
            report.seconds = time.perf_counter() - t0
        if not local.left:
            return report
        before, todo, tried = len(todo) - len(local.left), local.left, local.left_tried
    # Ray first: a cluster that cannot be reached leaves the database as it was
    with ray_session(address, num_cpus) as ray:
        if not measure:
            _schedule(store, spec, report, todo)
        n = max(1, min(num_workers or cluster_cpus(ray), len(todo)))
        report.workers, report.in_process = n, False
        t0 = time.perf_counter() - report.seconds  # Ray is up: from here on, the job's own time
        try:
            with exporter_from_env():  # Prometheus scrapes progress if asked to
                _Driver(ray, store, spec, todo, n, retries, report, on_task,
                        on_finish, before=before, tried=tried).run()
        finally:
            report.seconds = time.perf_counter() - t0
    return report


def _stopped(store: Store | None, job_id: str) -> None:
    """A run that ended before its tasks (Ctrl-C, SIGTERM under the CLI, an error): its
    tasks not done are `stopped`, no process named (the one that ran here was stopped,
    not crashed: `died_in_process`), so the app and `eominer jobs` tell it from a run at
    work. Best effort: the error that ended the run is what the user must see."""
    if store is None:
        return
    with contextlib.suppress(Exception):  # a store that failed: its rows say what they say
        store.stop_job(job_id)


def died_in_process(store: Store | None, task_ids: Sequence[str] | None = None,
                    ) -> list[tuple[str, str]]:
    """(task_id, worker) of the tasks (of `task_ids`; None: any) that a driver of this
    machine was running when it died: a crash in a library (a segfault in GDAL), the
    system killing it for memory, kill -9. Its start marks name it (`_InProcess`), one
    task at a time: of a dead driver's tasks still marked running, the one it started
    last was running (the others had finished, their results not committed yet). A
    Ctrl-C (or SIGTERM, under the CLI) takes its mark back. A process with the pid that
    started after the mark is another one, the pid reused. Another machine's processes
    cannot be looked at: never counted."""
    import socket

    if store is None:
        return []
    host, out, seen = socket.gethostname(), [], set()
    for task_id, worker, started in store.running_tasks(task_ids):
        where, _, pid = worker.rpartition(":")
        if worker in seen or where != host or not pid.isdigit() or int(pid) == os.getpid():
            continue
        seen.add(worker)  # its latest start: the one it died in
        if not _alive(int(pid), started):
            out.append((task_id, worker))
    return out


def driver_gone(driver: str | None, started: Any = None, seen: Any = None,
                now: dt.datetime | None = None) -> bool:
    """The process of a job's run (`job_drivers`: "host:pid", when it scheduled, when it
    last said it lived) has ended; its tasks still `pending` or `running` were left so
    by a kill -9, the system stopping it for memory or a crash (a Ctrl-C, a SIGTERM or
    an error marks them `stopped`). A process of this machine is looked at; another
    machine's is judged by its silence: no heartbeat for `SILENT_AFTER_S`. False where
    that cannot be told: not recorded, or another machine's run of before schema
    version 11 (no heartbeat)."""
    import socket

    if not driver:
        return False
    host, _, pid = driver.rpartition(":")
    if host == socket.gethostname():
        return pid.isdigit() and not _alive(int(pid), started)
    return seen is not None and silent_s(seen, now) > SILENT_AFTER_S


def silent_s(seen: dt.datetime, now: dt.datetime | None = None) -> float:
    """Seconds since a job's process last said it lived (naive UTC, as stored)."""
    from eominer.store.base import utcnow

    return ((now or utcnow()) - seen).total_seconds()


def killed_how(driver: str, seen: Any = None) -> str:
    """Why a job reads as killed, for its note: its process is gone (this machine), or
    has not been heard from (another machine's)."""
    import socket

    if driver.rpartition(":")[0] == socket.gethostname() or seen is None:
        return f"its process {driver} is gone: kill -9, out of memory, a crash"
    return (f"its process {driver} has not said it lives since {seen:%Y-%m-%d %H:%M:%S} "
            f"UTC, {silent_s(seen) / 60:.0f} min ago: killed, or its machine is down or cut "
            "off")


def job_state(job: dict[str, Any]) -> str:
    """What a job is, from its task counts (`running`, `pending`, `stopped`, `failed`)
    and its process (`driver`, `driver_started`, `driver_seen`): "at work", "killed" (its
    process gone, or silent, with tasks marked at work), "at work or killed" (no process
    recorded: a job of before schema version 10), "stopped", "failed" or "done". The app
    and `eominer jobs` say the same of a job."""
    if job["running"] or job["pending"]:
        if job.get("driver") is None:
            return "at work or killed"
        gone = driver_gone(job["driver"], job.get("driver_started"), job.get("driver_seen"))
        return "killed" if gone else "at work"
    return "stopped" if job["stopped"] else "failed" if job["failed"] else "done"


def _alive(pid: int, marked: Any = None) -> bool:
    """Process `pid` runs, and is the one that wrote a mark at `marked` (naive UTC)."""
    from eominer.workspace import pid_alive

    if not pid_alive(pid):
        return False
    began = process_start(pid)
    return marked is None or began is None or \
        began <= marked.replace(tzinfo=dt.UTC).timestamp() + 2.0  # /proc's 1 s steps


def process_start(pid: int) -> float | None:
    """When process `pid` started (Unix time, to about a second) from Linux's /proc; None
    where there is no /proc or the process is gone."""
    from pathlib import Path

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    ticks = float(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name may hold spaces
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def crash_note(crashed: list[tuple[str, str]], moved: bool) -> str:
    task_id, worker = crashed[0]
    more = f" (and {len(crashed) - 1} more)" if len(crashed) > 1 else ""
    said = (f"task {task_id}{more} was running in the job's own process ({worker}) when "
            "that process died (a crash in a library, or the system stopping it for its "
            "memory)")
    if moved:
        return (f"{said}: this run sends the tasks to Ray worker processes, where such a "
                "crash costs one worker and the task is tried again")
    return (f"{said}; it runs in this process again (--workers 0): --workers N runs the "
            "tasks in worker processes, where such a crash is tried again")


def ray_is_up() -> bool:
    """Ray already initialised in this process (a notebook, a caller's `ray_session`):
    a job then costs no start-up and goes to it."""
    import sys

    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def ray_pays_off(num_cpus: int | None) -> Callable[[float], bool]:
    """Given the seconds the tasks left would take in this process, is a local Ray
    with `num_cpus` workers (default: every core) worth starting? With n workers the
    rest takes RAY_START_S + rest / n there: more than `rest` itself unless
    rest > RAY_START_S * n / (n - 1) (11 s on 2 cores, 6 s on 16; never on 1)."""
    n = num_cpus or os.cpu_count() or 1
    return lambda rest: n > 1 and rest > RAY_START_S * n / (n - 1)


def ensure_ray(num_workers: int | None, address: str | None) -> None:
    """Report a missing Ray (`MissingExtraError`) before a job plans or writes anything,
    wherever the job may use it. A default job only looks for it: importing Ray costs
    0.3 s, a quarter of a small job that never starts it."""
    import importlib.util

    from compute.runtime import import_ray
    from eominer.errors import MissingExtraError

    if check_in_process(num_workers, address):
        return
    if num_workers is None and not address:
        if importlib.util.find_spec("ray") is None:
            raise MissingExtraError("ray", "ray", "batch jobs (eominer extract)")
        return
    import_ray(local=not address)


def check_in_process(num_workers: int | None, address: str | None) -> bool:
    """Run in this process? `num_workers` 0 says so; it cannot go with a cluster."""
    if num_workers != 0:
        return False
    if address:
        raise ConfigError("--workers 0 runs the job in this process: drop --ray-address, "
                          "or give the cluster's workers a number")
    return True


def _schedule(store: Store | None, spec: JobSpec, report: JobReport,
              todo: list[Task]) -> None:
    """The job's first writes, once its workers can start: `prepare` and a `jobs` row
    per task to run, in one transaction."""
    from eominer.workspace import command, job_user

    if store is None:
        return
    with store.transaction():
        if spec.prepare:
            spec.prepare(store)
        if (line := command()) is not None:  # `eominer jobs resume` runs it again
            store.record_job_command(report.job_id, line, os.getcwd(), job_user())
        store.record_job_driver(report.job_id, worker_name())  # `driver_gone`
        store.schedule_tasks(report.job_id, spec.kind, [
            {"task_id": t.task_id, "product_id": t.product_id,
             "feature_set_id": t.feature_set_id, "block": t.block,
             "n_items": t.n_items} for t in todo if t.recorded])


class _Loop(ABC):
    """What a job run does around its tasks, wherever they run: tasks held until those
    they name in `after` finish, failures reported with the tasks waiting for them,
    results committed in batches (`_Writer`), progress reported. Subclasses queue the
    tasks (`_enqueue`) and run them."""

    def __init__(self, store: Store | None, spec: JobSpec, todo: list[Task], retries: int,
                 report: JobReport, on_task: TaskCallback | None,
                 on_finish: FinishCallback | None, before: int = 0,
                 tried: dict[str, int] | None = None) -> None:
        from eominer.metrics import job_metrics

        self.spec, self.todo = spec, todo
        self.retries, self.report, self.on_task = retries, report, on_task
        # progress counts the tasks `before` this run of the loop (done in this process
        # before the rest went to Ray): one bar from 0 to all the job's tasks
        self.on_finish, self.n_finished = on_finish, before
        self.n_todo = before + len(todo)
        self.tried = tried or {}  # tries a task already had (in this process, before Ray)
        self.metrics = job_metrics()
        self.writer = _Writer(store, spec)
        # tasks held until the tasks they name in `after` finish (those not done yet)
        ids = {t.task_id for t in todo}
        self.needs = {t.task_id: {a for a in t.after if a in ids} for t in todo}
        self.waiting = {t.task_id: t for t in todo if self.needs[t.task_id]}

    @abstractmethod
    def _enqueue(self, task: Task, attempt: int, first: bool = False) -> None:
        """Queue `task` (its `attempt`-th try); `first`: ahead of the others."""

    def _enqueue_ready(self) -> None:
        for t in self.todo:
            if t.task_id not in self.waiting:
                self._enqueue(t, self.tried.get(t.task_id, 0) + 1)

    def _args(self, task: Task) -> tuple[Any, ...]:
        if not self.spec.load:
            return task.args
        from eominer.store.base import ctrl_c_after

        with ctrl_c_after():  # a store read: a Ctrl-C inside it comes after it
            return self.spec.load(self.writer.store, task)

    def _release(self, task_id: str) -> None:
        """`task_id` finished: tasks waiting for it alone go to the front of the queue
        (a product's last step first: it frees its staged files and commits its rows)."""
        for tid, task in list(self.waiting.items()):
            need = self.needs[tid]
            need.discard(task_id)
            if not need:
                del self.waiting[tid]
                self._enqueue(task, 1, first=True)

    def _fail(self, task: Task, message: str) -> None:
        """`task` is out of tries: reported, and so is every task waiting for it."""
        self.writer.fail(task, message)
        self.report.failed.append((task.task_id, task.product_id or "", message))
        self._fail_waiting(task, "failed")

    def _fail_waiting(self, task: Task, what: str) -> None:
        for tid, waiting in list(self.waiting.items()):
            if task.task_id in self.needs[tid] and tid in self.waiting:
                del self.waiting[tid]
                self._fail(waiting, f"not run: task {task.task_id}, which it needs, {what}")

    def _arrived(self, finished: list[Finished]) -> None:
        self.n_finished += len(finished)
        if finished and self.on_finish:
            self.on_finish(self.n_finished, self.n_todo)
        self.writer.finished(finished)

    def _flush(self) -> list[Finished]:
        batch = self.writer.flush()
        if batch and self.spec.after_commit:
            self.spec.after_commit(batch)
        return batch

    def _note_removed(self) -> None:
        for pid, n in sorted(self.writer.removed.items()):
            self.report.notes.append(
                f"product {pid} was removed while the job ran: {n} {self.spec.kind} "
                f"task(s) of it were not written")

    def _committed(self, batch: list[Finished]) -> None:
        report, kind = self.report, self.spec.kind
        for f in batch:
            report.tasks_done += 1
            report.patches_written += f.task.n_items
            self.metrics.record_task(kind, f.seconds)
            self.metrics.record_patches(kind, f.task.n_items)
            if self.on_task:
                self.on_task(report.tasks_done, self.n_todo, report.patches_written,
                             f.task, f.worker)


class _InProcess(_Loop):
    """The tasks one after the other in this process (`num_workers` 0, or the start of a
    default job): no Ray, no worker start-up; numpy and TensorFlow use this process's
    threads. `hand_over(seconds)`: given the time the tasks not run yet would take here
    (`_rest_s`), stop for Ray? Those tasks are then `left`."""

    def __init__(self, *args: Any,
                 hand_over: Callable[[float], bool] | None = None) -> None:
        super().__init__(*args)
        self.queue: deque[tuple[Task, int]] = deque()
        self.hand_over = hand_over
        self.left: list[Task] = []
        self.left_tried: dict[str, int] = {}  # the tries of those `left` that failed here
        self._enqueue_ready()

    def _enqueue(self, task: Task, attempt: int, first: bool = False) -> None:
        if first:
            self.queue.appendleft((task, attempt))
        else:
            self.queue.append((task, attempt))

    def _rest_s(self, t_start: float, t_first: float, n_run: int) -> float:
        """The tasks not run yet, in seconds here, at the pace of the tasks after the
        first (commits included). The first carries the job's one-time costs (imports,
        loading a model: 2-3 s for TensorFlow's), so alone it speaks only when it
        outlasts Ray's start-up; else 0 (no evidence yet)."""
        n_rest, now = len(self.queue) + len(self.waiting), time.perf_counter()
        if n_run == 1:
            first = now - t_start
            return first * n_rest if first > RAY_START_S else 0.0
        return (now - t_first) / (n_run - 1) * n_rest

    def run(self) -> None:
        name, t_start, n_run = worker_name(), time.perf_counter(), 0
        t_first = t_start  # when the first task ended
        self.report.in_process = True  # until the rest goes to Ray
        task: Task | None = None
        try:
            while self.queue:
                task, attempt = self.queue.popleft()
                if task.recorded:
                    self.writer.started_here(task.task_id, attempt, name)
                t0 = time.perf_counter()
                n_run += 1
                try:
                    result = task.fn(*self._args(task))
                except Exception as exc:
                    self.metrics.record_task(self.spec.kind, time.perf_counter() - t0,
                                             failed=True)
                    if self.writer.drop_if_removed(task):
                        self._fail_waiting(task, "was dropped: its product was removed")
                    elif attempt <= self.retries:
                        self._enqueue(task, attempt + 1)
                    else:
                        self._fail(task, task_error_text(exc))
                    continue
                finally:
                    release_memory()
                if not self.report.first_result_seconds:
                    self.report.first_result_seconds = time.perf_counter() - t_start
                self.report.tasks_in_process += 1
                self._release(task.task_id)
                self._arrived([Finished(task, result, name, time.perf_counter() - t0)])
                if n_run == 1:
                    t_first = time.perf_counter()
                if self.hand_over and self.queue and self.hand_over(
                        self._rest_s(t_start, t_first, n_run)):
                    self.left = [t for t, _ in self.queue] + list(self.waiting.values())
                    self.left_tried = {t.task_id: n - 1 for t, n in self.queue if n > 1}
                    self.queue.clear()
                if self.writer.due() or not self.queue:
                    self._committed(self._flush())
            if self.writer.wait_s() is not None:  # failure marks of the last tasks
                self._committed(self._flush())
        except KeyboardInterrupt:
            self._flush()  # what finished before Ctrl-C is kept; a re-run does the rest
            raise  # `run_job` marks the task that ran here stopped, not crashed
        finally:
            self._note_removed()


class _Driver(_Loop):
    """The scheduling loop of one job run on a Ray that is up."""

    def __init__(self, ray: ModuleType, store: Store | None, spec: JobSpec, todo: list[Task],
                 n_workers: int, retries: int, report: JobReport,
                 on_task: TaskCallback | None, on_finish: FinishCallback | None = None,
                 before: int = 0, tried: dict[str, int] | None = None) -> None:
        from compute.runtime import gpus_for_models, gpus_in_cluster

        super().__init__(store, spec, todo, retries, report, on_task, on_finish, before,
                         tried)
        self.ray = ray
        # Model tasks go to workers holding a GPU when the cluster has or can start GPU
        # nodes: the autoscaler then boots GPU servers only for them.
        n_model = sum(t.gpu for t in todo)
        self.gpu = n_model > 0 and gpus_for_models(ray) > 0
        n_gpu = min(max(1, gpus_in_cluster(ray)), n_model) if self.gpu else 0
        # no CPU workers when every task goes to a GPU: idle ones would boot CPU nodes
        n_cpu = n_workers if not self.gpu or n_model < len(todo) else 0
        self.on_gpu = [False] * n_cpu + [True] * n_gpu
        self.classes = {
            False: ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(Worker),
            True: ray.remote(num_cpus=1, num_gpus=1, max_restarts=0,
                             max_task_retries=0)(Worker),
        }
        self.said = None
        if spec.says:
            from ray.util.queue import Queue

            self.said = Queue(actor_options={"num_cpus": 0})
        self.actors = [self._worker(g) for g in self.on_gpu]
        self.load = [0] * len(self.actors)
        # a worker runs its tasks one after the other: a task's run time is measured
        # from its submission or the worker's previous result, whichever is later
        self.free_at = [time.perf_counter()] * len(self.actors)
        self.queues: dict[bool, deque[tuple[Task, int]]] = {False: deque(), True: deque()}
        self.inflight: dict[Any, tuple[Task, int, int, Any, float]] = {}
        self._enqueue_ready()

    def _worker(self, gpu: bool) -> ActorHandle:
        return self.classes[gpu].remote(self.said)

    def _tell(self) -> None:
        """Print what the tasks said since the last time (`task_says`)."""
        if self.said is None:
            return
        try:
            lines = self.said.get_nowait_batch(self.said.qsize())
        except Exception:  # a queue gone with a cluster: the job goes on without it
            return
        for line in lines:
            _SAY(line)

    def _enqueue(self, task: Task, attempt: int, first: bool = False) -> None:
        queue = self.queues[self.gpu and task.gpu]
        if first:
            queue.appendleft((task, attempt))
        else:
            queue.append((task, attempt))

    def _queued(self) -> int:
        return (len(self.queues[False]) + len(self.queues[True]) + len(self.inflight)
                + len(self.waiting))

    def _submit(self) -> None:
        slots = range(len(self.actors))
        for kind, queue in self.queues.items():
            while queue:
                slot = min((s for s in slots if self.on_gpu[s] == kind),
                           key=self.load.__getitem__)
                if self.load[slot] >= IN_FLIGHT_PER_WORKER:
                    break
                task, attempt = queue.popleft()
                if task.recorded:
                    self.writer.started(task.task_id, attempt)
                actor = self.actors[slot]
                ref = actor.run.remote(task.fn, self._args(task))
                self.inflight[ref] = (task, attempt, slot, actor, time.perf_counter())
                self.load[slot] += 1
        self.metrics.set_queue_depth(self.spec.kind, self._queued())

    def run(self) -> None:
        ray, report = self.ray, self.report
        t_start, nodes_seen = time.perf_counter(), 0.0
        try:
            self._submit()
            while self.inflight:
                # results waiting for their commit wait at most the commit interval,
                # also while every task in flight is a long one (an ingest's assembly)
                wait = self.writer.wait_s()
                if self.said is not None:  # what the tasks say, within SAY_EVERY_S
                    wait = SAY_EVERY_S if wait is None else min(wait, SAY_EVERY_S)
                ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=wait)
                self._tell()
                if not ready:
                    self._committed(self._flush())
                    continue
                if len(self.inflight) > 1:  # whatever else is ready joins the same commit
                    rest = [r for r in self.inflight if r != ready[0]]
                    ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
                if not report.first_result_seconds:
                    report.first_result_seconds = time.perf_counter() - t_start
                finished = [f for f in map(self._collect, ready) if f is not None]
                self._submit()  # workers get their next tasks before the driver writes
                self._arrived(finished)
                if self.writer.due() or not self.inflight:
                    self._committed(self._flush())
                now = time.perf_counter()
                if now - nodes_seen > 5.0:  # a GCS call: not after every task
                    self.metrics.observe_ray_nodes()
                    nodes_seen = now
        except KeyboardInterrupt:
            self._flush()  # what finished before Ctrl-C is kept; a re-run does the rest
            raise
        finally:
            self._tell()
            self._note_removed()
            self.metrics.set_queue_depth(self.spec.kind, self._queued())
            for a in self.actors:
                ray.kill(a, no_restart=True)
            if self.said is not None:
                self.said.shutdown(force=True)

    def _collect(self, ref: ObjectRef) -> Finished | None:
        """A result, or None when the task failed (retried, or reported once out of tries)."""
        from ray.exceptions import RayActorError, RayError

        task, attempt, slot, actor, submitted = self.inflight.pop(ref)
        self.load[slot] -= 1
        now = time.perf_counter()
        started, self.free_at[slot] = max(submitted, self.free_at[slot]), now
        try:
            result, worker, _ = self.ray.get(ref)
        except RayError as exc:
            self.metrics.record_task(self.spec.kind, now - started, failed=True)
            if self.writer.drop_if_removed(task):  # its files went with the product
                self._fail_waiting(task, "was dropped: its product was removed")
                return None
            if isinstance(exc, RayActorError) and self.actors[slot] is actor:
                # the worker process died: a fresh one takes its place
                self.ray.kill(actor, no_restart=True)
                self.actors[slot] = self._worker(self.on_gpu[slot])
            if attempt <= self.retries:
                self._enqueue(task, attempt + 1)
            else:
                self._fail(task, task_error_text(exc))
            return None
        self._release(task.task_id)
        return Finished(task, result, worker, now - started)


class _Writer:
    """The driver's writes, grouped: finished tasks' rows and their `done` marks (and the
    start and failure marks) commit together, once a second, or less often where commits
    are slow (`COMMIT_SHARE`). A crash loses at most the last 1-10 s of results; their
    tasks are not marked done, so a re-run redoes them."""

    def __init__(self, store: Store | None, spec: JobSpec,
                 every_s: float | None = None) -> None:
        self.store, self.spec = store, spec
        self.base_s = COMMIT_EVERY_S if every_s is None else every_s
        self.every_s = self.base_s
        self.starts: list[tuple[str, int]] = []
        self.done: list[Finished] = []
        self.failures: list[tuple[str, str]] = []  # (task_id, error), out of retries
        self.removed: dict[str, int] = {}  # product removed mid-job -> results dropped
        self.last = time.perf_counter()

    def started(self, task_id: str, attempt: int) -> None:
        self.starts.append((task_id, attempt))

    def started_here(self, task_id: str, attempt: int, worker: str) -> None:
        """A task about to run in the driver: marked running by this process, committed
        at once, so that a re-run knows which task it was if the process dies with it
        (`died_in_process`). One small commit a task."""
        if self.store is not None:
            with self.store.transaction():
                self.store.start_tasks([(task_id, attempt)], worker=worker)

    def finished(self, done: list[Finished]) -> None:
        self.done += done

    def due(self) -> bool:
        return time.perf_counter() - self.last >= self.every_s

    def wait_s(self) -> float | None:
        """How long the driver may wait for a result before committing what is pending
        (None: nothing is pending, wait as long as it takes)."""
        if not (self.done or self.starts or self.failures):
            return None
        return max(0.0, self.every_s - (time.perf_counter() - self.last))

    def fail(self, task: Task, message: str) -> None:
        if task.recorded:
            self.failures.append((task.task_id, message))

    def flush(self) -> list[Finished]:
        """Commit what is pending; returns the finished tasks just committed."""
        t0 = time.perf_counter()
        done, store = self.done, self.store
        if store is None:
            if done:
                self.spec.commit(None, done)
        else:
            with store.transaction():
                if self.starts:
                    store.start_tasks(self.starts)
                done, dropped = self._drop_removed(store, done)
                if done:
                    self.spec.commit(store, done)
                marks = [(f.task.task_id, f.worker) for f in done if f.task.recorded]
                if marks:
                    store.finish_tasks(marks)
                for task_id, message in self.failures:  # after their start marks
                    store.fail_task(task_id, message)
            if self.spec.discard:  # no row names them now: their files can go
                for f in dropped:
                    self.spec.discard(f)
        self.starts, self.done, self.failures = [], [], []
        self.last = time.perf_counter()
        self.every_s = min(10 * self.base_s, max(self.base_s, (self.last - t0) / COMMIT_SHARE))
        return done

    def _drop_removed(self, store: Store, done: list[Finished],
                      ) -> tuple[list[Finished], list[Finished]]:
        """The results whose products are all still there, and the others, which are
        marked failed (inside the commit's transaction: a removal cannot slip in between)."""
        wanted = {pid for f in done for pid in f.task.writes_for}
        gone = wanted - store.existing_products(sorted(wanted)) if wanted else set()
        if not gone:
            return done, []
        kept, dropped = [], []
        for f in done:
            lost = sorted(gone.intersection(f.task.writes_for))
            if lost:
                self._dropped(f.task, lost[0])
                dropped.append(f)
            else:
                kept.append(f)
        return kept, dropped

    def drop_if_removed(self, task: Task) -> bool:
        """A failed task whose product was removed while the job ran (its ARD file is
        gone): dropped like a result of it, not retried nor reported as an error."""
        if self.store is None or not task.writes_for:
            return False
        gone = sorted(set(task.writes_for) - self.store.existing_products(task.writes_for))
        if gone:
            self._dropped(task, gone[0])
        return bool(gone)

    def _dropped(self, task: Task, product_id: str) -> None:
        self.removed[product_id] = self.removed.get(product_id, 0) + 1
        if task.recorded:
            self.failures.append((task.task_id, f"not written: product {product_id} was "
                                  "removed while the job ran"))
