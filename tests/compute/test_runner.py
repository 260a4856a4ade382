"""The job runner on a real local Ray and a real DuckDB store: a failing task is
reported by product and error while the others finish, and a re-run does only it. The
same jobs in this process (`num_workers` 0) behave the same way."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from compute.runner import Finished, JobSpec, Task, run_job
from eominer.errors import JobError
from eominer.store import open_store

pytestmark = pytest.mark.ray


@pytest.fixture(params=["ray", "in_process"])
def where(request) -> dict:
    """Where a job's tasks run: a local Ray of 2 CPUs, or this process."""
    return {"num_cpus": 2, "num_workers": 2} if request.param == "ray" else {"num_workers": 0}


def area_or_fail(product: str, side: int, fixed: str) -> int:
    """A task function: fails for product B until the file `fixed` exists."""
    if product == "B" and not Path(fixed).exists():
        raise ValueError(f"band B04 of {product} is unreadable")
    return side * side


def job(fixed: Path, results: dict[str, int]) -> JobSpec:
    def commit(store, done: list[Finished]) -> None:
        results.update({f.task.task_id: f.result for f in done})

    tasks = [Task(f"demo/{p}", area_or_fail, (p, side, str(fixed)), product_id=p,
                  n_items=side) for p, side in (("A", 2), ("B", 3), ("C", 4))]
    return JobSpec("demo", tasks, commit)


def test_failed_task_named_with_its_product_and_a_rerun_does_only_it(db_url, tmp_path, where):
    fixed = tmp_path / "fixed"
    results: dict[str, int] = {}
    with open_store(db_url) as store:
        report = run_job(store, job(fixed, results), retries=1, **where)
        assert results == {"demo/A": 4, "demo/C": 16}  # the others finished
        assert report.tasks_done == 2 and report.patches_written == 2 + 4
        assert [(t, p) for t, p, _ in report.failed] == [("demo/B", "B")]
        assert "ValueError: band B04 of B is unreadable" in report.failed[0][2]
        with pytest.raises(JobError, match=r"1 demo task\(s\) failed after retries: "
                           r"demo/B \(B\): .*band B04 of B is unreadable\. Fix the cause "
                           "and re-run the same command"):
            report.raise_for_failures()
        rows = {r["task_id"]: r for r in store.tasks().to_pylist()}
        assert {t: r["status"] for t, r in rows.items()} == {
            "demo/A": "done", "demo/B": "failed", "demo/C": "done"}
        assert rows["demo/B"]["attempts"] == 2 and "unreadable" in rows["demo/B"]["error"]

        fixed.touch()  # the user fixes the cause and runs the same job again
        results.clear()
        again = run_job(store, job(fixed, results), **where)
        assert results == {"demo/B": 9}  # only the failed task ran
        assert (again.tasks_skipped, again.tasks_done, again.failed) == (2, 1, [])
        assert set(store.tasks()["status"].to_pylist()) == {"done"}


def test_nothing_to_do_starts_no_ray(db_url, tmp_path):
    """A job whose tasks are all done returns at once (no Ray start, no writes)."""
    (tmp_path / "fixed").touch()
    with open_store(db_url) as store:
        run_job(store, job(tmp_path / "fixed", {}), num_cpus=2)
        calls: list[tuple[int, int]] = []
        report = run_job(store, job(tmp_path / "fixed", {}), num_cpus=2,
                         on_start=lambda total, to_run: calls.append((total, to_run)))
    assert calls == [(3, 0)] and report.tasks_skipped == 3 and report.workers == 0


def sleep_then(product: str, seconds: float) -> int:
    """A task function: a long task (a full tile's band), shortened."""
    time.sleep(seconds)
    return 1


def test_a_job_says_its_process_lives_while_a_long_task_runs(db_url, where, monkeypatch):
    """The heartbeat (`job_drivers.seen`) that tells a killed run from one at work on
    another machine: written from a thread of the job's process while a task of 1.5 s
    runs, in this process (where the task holds the main thread) or on Ray; it ends
    with the run."""
    import threading

    import compute.runner as runner
    from tests.store.rows import as_datetime

    monkeypatch.setattr(runner, "HEARTBEAT_S", 0.2)
    spec = JobSpec("beat", [Task("beat/A", sleep_then, ("A", 1.5), product_id="A")],
                   lambda store, done: None)
    with open_store(db_url) as store:
        report = run_job(store, spec, **where)
        driver, started, seen = store.job_driver(report.job_id)
        assert driver == f"{socket.gethostname()}:{os.getpid()}"
        assert (as_datetime(seen) - as_datetime(started)).total_seconds() >= 1.0
    assert not [t for t in threading.enumerate() if t.name.startswith("heartbeat")]


def say_steps(product: str, steps: int) -> int:
    """A task function: a long task that says how far it is."""
    from compute.runner import task_says

    for k in range(steps):
        time.sleep(0.3)
        task_says(f"step {k + 1}/{steps} of {product}")
    return 1


@pytest.mark.parametrize("says", [True, False])
def test_what_a_ray_task_says_is_printed_by_the_driver(db_url, capsys, says):
    """A training on a (GPU) Ray worker: its epochs are said in the worker process, whose
    own output goes to its log file only (log_to_driver is off); a job that `says`
    passes them to its driver, in order, which prints them as a task in its own process
    does (the terminal above the bar, the app's job output)."""
    spec = JobSpec("talk", [Task("talk/A", say_steps, ("A", 3), product_id="A")],
                   lambda store, done: None, says=says)
    capsys.readouterr()
    with open_store(db_url) as store:
        run_job(store, spec, num_cpus=1, num_workers=1)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step")]
    assert lines == ([f"step {k}/3 of A" for k in (1, 2, 3)] if says else [])
    with open_store(db_url) as store:  # in this process, printed as it is said
        run_job(store, JobSpec("talk", [Task("talk/B", say_steps, ("B", 2), product_id="B")],
                               lambda store, done: None, says=says), num_workers=0)
    assert [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step")] == [
        "step 1/2 of B", "step 2/2 of B"]


def write_file(path: str, text: str) -> str:
    """A task function: a part of a product, left on disk."""
    Path(path).write_text(text)
    return text


def read_parts(paths: tuple[str, ...]) -> str:
    """A task function: a product's last step, which needs every part on disk."""
    return "".join(Path(p).read_text() for p in paths)


def fail_always(name: str) -> None:
    raise OSError(f"band {name} is unreadable")


def test_a_task_runs_after_the_tasks_it_names(db_url, tmp_path, where):
    """A's final task runs once both A parts are done; B's final task, whose part
    fails, is reported failed without running; `after_commit` sees each batch once its
    transaction is in the database."""
    a1, a2 = str(tmp_path / "a1"), str(tmp_path / "a2")
    seen: list[tuple[str, str]] = []  # (task, its status in the database after commit)
    results: dict[str, object] = {}

    def commit(store, done: list[Finished]) -> None:
        results.update({f.task.task_id: f.result for f in done})

    with open_store(db_url) as store:
        def after_commit(done: list[Finished]) -> None:
            status = store.task_statuses([f.task.task_id for f in done])
            seen.extend((f.task.task_id, status[f.task.task_id]) for f in done)

        tasks = [
            # listed first: held until its parts are done all the same
            Task("A/final", read_parts, ((a1, a2),), product_id="A", after=("A/1", "A/2")),
            Task("B/final", read_parts, ((a1,),), product_id="B", after=("B/1",)),
            Task("A/1", write_file, (a1, "x"), product_id="A"),
            Task("B/1", fail_always, ("B04",), product_id="B"),
            Task("A/2", write_file, (a2, "y"), product_id="A"),
        ]
        report = run_job(store, JobSpec("demo", tasks, commit, after_commit=after_commit),
                         retries=0, **where)
        statuses = {r["task_id"]: r["status"] for r in store.tasks().to_pylist()}
    assert results == {"A/1": "x", "A/2": "y", "A/final": "xy"}
    assert sorted(seen) == [("A/1", "done"), ("A/2", "done"), ("A/final", "done")]
    assert [t for t, _ in seen].index("A/final") == 2  # committed after its parts
    assert [(t, p) for t, p, _ in report.failed] == [("B/1", "B"), ("B/final", "B")]
    assert report.failed[1][2] == "not run: task B/1, which it needs, failed"
    assert statuses == {"A/1": "done", "A/2": "done", "A/final": "done",
                        "B/1": "failed", "B/final": "failed"}


def test_results_for_a_removed_product_are_dropped_in_their_commit(db_url, tmp_path, where):
    """A task's product is checked inside the transaction that would write its result:
    a product gone by then (`eominer products remove` from another process) gets no
    rows, what its result wrote elsewhere is discarded after the commit, and a task that
    failed because its files went with it is not retried."""
    results: dict[str, int] = {}
    discarded: list[tuple[str, int, bool]] = []

    def commit(store, done: list[Finished]) -> None:
        results.update({f.task.task_id: f.result for f in done})

    def discard(f: Finished) -> None:  # after the commit: its failed mark is there
        (status,), = store.query("SELECT status FROM jobs WHERE task_id = ?",
                                 [f.task.task_id])
        discarded.append((f.task.task_id, f.result, status == "failed"))

    tasks = [Task("demo/kept", area_or_fail, ("A", 2, ""), product_id="A", n_items=2),
             Task("demo/gone", area_or_fail, ("C", 3, ""), product_id="C", n_items=3,
                  writes_for=("C",)),
             Task("demo/unreadable", area_or_fail, ("B", 4, str(tmp_path / "no")),
                  product_id="B", n_items=4, writes_for=("B",)),
             Task("demo/next", area_or_fail, ("A", 1, ""), product_id="B",
                  after=("demo/unreadable",))]
    with open_store(db_url) as store:  # an empty catalogue: B and C are not there
        report = run_job(store, JobSpec("demo", tasks, commit, discard=discard),
                         retries=2, **where)
        assert results == {"demo/kept": 4}
        assert discarded == [("demo/gone", 9, True)]  # a result; the failed task had none
        assert report.tasks_done == 1
        assert report.failed == [("demo/next", "B", "not run: task demo/unreadable, which "
                                  "it needs, was dropped: its product was removed")]
        assert report.notes == [
            "product B was removed while the job ran: 1 demo task(s) of it were not written",
            "product C was removed while the job ran: 1 demo task(s) of it were not written"]
        rows = {r["task_id"]: r for r in store.tasks().to_pylist()}
        assert {t: r["status"] for t, r in rows.items()} == {
            "demo/kept": "done", "demo/gone": "failed", "demo/unreadable": "failed",
            "demo/next": "failed"}
        assert rows["demo/unreadable"]["attempts"] == 1  # not retried
        assert all("removed while the job ran" in rows[t]["error"]
                   for t in ("demo/gone", "demo/unreadable"))


@pytest.mark.parametrize("sent", ["SIGINT", "SIGTERM"])
def test_a_ctrl_c_during_a_tasks_store_read_lands_after_the_read(db_url, sent):
    """`JobSpec.load` reads a task's input from the store on the driver (apply's feature
    blocks). A Ctrl-C inside that read is held to its end: landing inside DuckDB it
    would come out as DuckDB's own error, not as the KeyboardInterrupt the runner and
    the CLI handle. The read completes, then the job stops as on any Ctrl-C. So does a
    SIGTERM under the CLI's handler."""
    import signal

    from eominer.cli import _sigterm_as_ctrl_c

    read: list[int] = []

    def load(store, task: Task) -> tuple:
        os.kill(os.getpid(), getattr(signal, sent))  # as the read starts
        (n,), = store.query("SELECT COUNT(*) FROM jobs")
        read.append(n)
        return task.args

    tasks = [Task("demo/A", area_or_fail, ("A", 2, ""), product_id="A", n_items=2)]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    term = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    termed = _sigterm_as_ctrl_c()
    try:
        with open_store(db_url) as store, pytest.raises(KeyboardInterrupt):
            run_job(store, JobSpec("demo", tasks, lambda _s, _d: None, load=load),
                    num_cpus=2, num_workers=2)
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, term)
    assert read == [1]  # its `jobs` row was scheduled
    assert termed == ([True] if sent == "SIGTERM" else [])


def stop_the_driver(driver: int, send: bool) -> int:
    """A task function on a Ray worker: once its start mark is committed, a Ctrl-C to
    the job's driver process (`send`); then long work."""
    import signal

    time.sleep(2.0)
    if send:
        os.kill(driver, signal.SIGINT)
    time.sleep(60)
    return 1


def test_a_ray_job_stopped_leaves_its_tasks_in_flight_stopped_not_running(db_url):
    """Ctrl-C (or SIGTERM, under the CLI) of a job on Ray: what finished is committed, and
    the tasks that were in flight, marked running (by no process named: a Ray worker's
    name comes with its result), are `stopped` now. Before, they stayed `running` for
    ever: the app's status line counted them at work and nothing offered to resume."""
    import signal

    tasks = [Task(f"demo/{p}", stop_the_driver, (os.getpid(), p == "A"), product_id=p,
                  n_items=1) for p in "AB"]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with open_store(db_url) as store, pytest.raises(KeyboardInterrupt):
            run_job(store, JobSpec("demo", tasks, lambda _s, _d: None), num_cpus=2,
                    num_workers=2)
    finally:
        signal.signal(signal.SIGINT, previous)
    with open_store(db_url) as store:
        rows = {r["task_id"]: (r["status"], r["worker"], r["attempts"])
                for r in store.tasks().to_pylist()}
    assert rows == {"demo/A": ("stopped", None, 1), "demo/B": ("stopped", None, 1)}


@pytest.mark.parametrize(("base", "commit_s", "least", "most"), [
    (1.0, 0.0, 1.0, 1.0),  # a commit with nothing pending: the base cadence (no store)
    (1.0, 0.06, 0.06 / 0.03, 10.0),  # a slow commit: at most 3 % of the time
    (1.0, 0.4, 10.0, 10.0),  # capped at 10 x the base: what a crash may lose
    (0.0, 0.06, 0.0, 0.0),  # a commit per result, as asked (tests of killed jobs)
])
def test_slow_commits_are_made_less_often(base, commit_s, least, most):
    """The driver's commits are stretched apart until they take <= COMMIT_SHARE of its
    time: on a full tile each costs ~0.1 s of DuckDB work, which at one a second is
    taken from a worker on a laptop. The sleeps give each commit a known least cost."""
    import time

    from compute.runner import COMMIT_SHARE, _Writer

    assert COMMIT_SHARE == 0.03
    task = Task("demo/A", area_or_fail, ("A", 2, ""), product_id="A", n_items=2)
    writer = _Writer(None, JobSpec("demo", [task], lambda _s, _d: time.sleep(commit_s)),
                     every_s=base)
    assert writer.every_s == base
    if commit_s:
        writer.finished([Finished(task, None, "here:1", 0.0)])
    writer.flush()
    assert least <= writer.every_s <= most


def test_results_are_reported_as_they_arrive_before_their_commit(db_url, monkeypatch):
    """With commits far apart (a slow database stretches them to 10 s), `on_finish`
    still counts each result as it comes; `on_task` follows the commit."""
    import compute.runner

    monkeypatch.setattr(compute.runner, "COMMIT_EVERY_S", 600.0)  # one commit, at the end
    events: list[tuple[str, int]] = []
    tasks = [Task(f"demo/{p}", area_or_fail, (p, 2, ""), product_id=p, n_items=4)
             for p in "ACDE"]
    with open_store(db_url) as store:
        report = run_job(store, JobSpec("demo", tasks, lambda _s, _d: None), num_cpus=2,
                         num_workers=2, on_task=lambda done, *_: events.append(("committed", done)),
                         on_finish=lambda n, of: events.append(("finished", n)))
    assert report.tasks_done == 4
    finished = [n for kind, n in events if kind == "finished"]
    assert finished == sorted(finished) and finished[-1] == 4
    first_commit = next(i for i, (kind, _) in enumerate(events) if kind == "committed")
    assert ("finished", 4) in events[:first_commit]  # every result counted before it
    assert [n for kind, n in events if kind == "committed"] == [1, 2, 3, 4]



def interrupt_at(product: str, side: int, stop: str) -> int:
    """A task function: Ctrl-C while it runs, until the file `stop` is gone."""
    if product == "B" and Path(stop).exists():
        raise KeyboardInterrupt
    return side * side


def test_in_this_process_no_ray_starts_and_a_ctrl_c_keeps_what_finished(db_url, tmp_path):
    """`num_workers` 0: the tasks run in this process (the `jobs` rows name it), with
    the same resume records. A Ctrl-C in the middle commits what finished before it;
    the re-run does the rest. Ray is never imported."""
    import subprocess
    import sys

    stop = tmp_path / "stop"
    stop.touch()
    code = f"""
import os, sys
from compute.runner import JobSpec, Task, run_job
from eominer.store import open_store
from tests.compute.test_runner import interrupt_at
results = {{}}
tasks = [Task(f"demo/{{p}}", interrupt_at, (p, side, {str(stop)!r}), product_id=p,
              n_items=side) for p, side in (("A", 2), ("B", 3), ("C", 4))]
spec = JobSpec("demo", tasks, lambda store, done: results.update(
    {{f.task.task_id: f.result for f in done}}))
with open_store({db_url!r}) as store:
    try:
        report = run_job(store, spec, num_workers=0)
    except KeyboardInterrupt:
        print("interrupted", sorted(results))
    else:
        print("finished", sorted(results), report.tasks_skipped, report.workers)
    print("ray" in sys.modules, {{r["task_id"]: (r["status"], r["worker"] or "").__repr__()
                                  for r in store.tasks().to_pylist()}}, os.getpid())
"""
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, cwd=Path(__file__).parents[2])
    assert first.returncode == 0, first.stderr
    line1, line2 = first.stdout.strip().splitlines()
    assert line1 == "interrupted ['demo/A']"
    pid = line2.rsplit(" ", 1)[1]
    assert line2.startswith("False ")  # no Ray
    assert f"'demo/A': \"('done', '{socket.gethostname()}:{pid}')\"" in line2
    # stopped, not crashed: B (and C, never started) stopped, no process named
    # (`died_in_process`)
    assert "'demo/B': \"('stopped', '')\"" in line2 and "'demo/C': \"('stopped', '')\"" in line2
    stop.unlink()
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, cwd=Path(__file__).parents[2])
    assert again.returncode == 0, again.stderr
    line1, line2 = again.stdout.strip().splitlines()
    assert line1 == "finished ['demo/B', 'demo/C'] 1 0"  # A was done: resumed
    assert line2.startswith("False ") and line2.count("'done'") == 3


def terminate_at(product: str, side: int, stop: str) -> int:
    """A task function: SIGTERM to the process running it (`kill`, a scheduler's stop)
    while it runs product B, until the file `stop` is gone."""
    import os
    import signal

    if product == "B" and Path(stop).exists():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler's Ctrl-C lands here
    return side * side


# a command started in the background by a script or `nohup` has SIGINT ignored
BACKGROUND = {"foreground": "", "background": "signal.signal(signal.SIGINT, signal.SIG_IGN)"}


@pytest.mark.parametrize("where", list(BACKGROUND))
def test_a_sigterm_stops_a_job_like_a_ctrl_c_not_like_a_crash(db_url, tmp_path, where):
    """Under the CLI's handlers, SIGTERM is a Ctrl-C: what finished is committed, the task
    running here is stopped with no process named, so the re-run neither blames it
    as a crash nor moves the job to Ray; it resumes in this process. Killed outright, the
    process lost A's uncommitted result and left B marked running by a dead process.
    Also where SIGINT is ignored, as in a command started in the background."""
    import subprocess
    import sys

    stop = tmp_path / "stop"
    stop.touch()
    code = f"""
import os, signal
{BACKGROUND[where]}
from compute.runner import JobSpec, Task, run_job
from eominer.cli import _note_ctrl_c, _sigterm_as_ctrl_c
from eominer.store import open_store
from tests.compute.test_runner import terminate_at
_note_ctrl_c(); termed = _sigterm_as_ctrl_c()
results = {{}}
tasks = [Task(f"demo/{{p}}", terminate_at, (p, side, {str(stop)!r}), product_id=p,
              n_items=side) for p, side in (("A", 2), ("B", 3), ("C", 4))]
spec = JobSpec("demo", tasks, lambda store, done: results.update(
    {{f.task.task_id: f.result for f in done}}))
with open_store({db_url!r}) as store:
    try:
        report = run_job(store, spec, num_cpus=2)
    except KeyboardInterrupt:
        print("stopped", termed, sorted(results))
    else:
        print("finished", sorted(results), report.tasks_in_process, report.workers, report.notes)
    print({{r["task_id"]: (r["status"], r["worker"] or "") for r in store.tasks().to_pylist()}})
"""
    run = [sys.executable, "-c", code]
    first = subprocess.run(run, capture_output=True, text=True, timeout=120,
                           cwd=Path(__file__).parents[2])
    assert first.returncode == 0, first.stderr[-2000:]
    said, rows = first.stdout.strip().splitlines()
    assert said == "stopped [True] ['demo/A']"
    rows = eval(rows)
    assert rows["demo/A"][0] == "done" and rows["demo/B"] == rows["demo/C"] == ("stopped", "")
    stop.unlink()
    again = subprocess.run(run, capture_output=True, text=True, timeout=120,
                           cwd=Path(__file__).parents[2])
    assert again.returncode == 0, again.stderr[-2000:]
    said, rows = again.stdout.strip().splitlines()
    assert said == "finished ['demo/B', 'demo/C'] 2 0 []"  # here, no crash note
    assert all(status == "done" for status, _ in eval(rows).values())


@pytest.mark.parametrize("where", list(BACKGROUND))
def test_the_cli_exits_143_on_sigterm(tmp_path, where):
    """`kill` during a long query (hours long: the test's timeout fails it if the query
    is waited for): DuckDB's query is cancelled, one line, exit 143."""
    import subprocess
    import sys

    code = f"""
import os, signal, threading
{BACKGROUND[where]}
threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
from eominer.cli import main
main(["sql", "SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3"])
"""
    env = {**os.environ, "EOMINER_HOME": str(tmp_path / "ws")}
    env.pop("EOMINER_DB", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env, cwd=Path(__file__).parents[2])
    assert (done.returncode, done.stderr.strip().splitlines()[-1:]) == (143, ["terminated"])


def crash_in_driver(product: str, side: int) -> int:
    """A task function: product B crashes the process that runs it (SIGSEGV, as a bug
    in a C library would) when that process is the job's own driver."""
    import os
    import signal

    if product == "B" and str(os.getpid()) == os.environ.get("EOMINER_TEST_DRIVER_PID"):
        os.kill(os.getpid(), signal.SIGSEGV)
    return side * side


def test_a_task_that_crashed_the_jobs_process_runs_on_ray_workers_next_time(db_url):
    """A default job runs its first tasks in its own process: a segfault there ends the
    command. The task's start mark names that process, committed before it ran, so the
    re-run knows which task it was and sends the job to Ray's worker processes (where a
    crash costs a worker and is tried again), saying why. The tasks that had finished
    in it but were not committed yet are not blamed; a Ctrl-C is not a crash (below)."""
    import subprocess
    import sys

    from click.testing import CliRunner

    from eominer.cli import cli

    code = f"""
import os
os.environ["EOMINER_TEST_DRIVER_PID"] = str(os.getpid())
from compute.runner import JobSpec, Task, run_job
from eominer.store import open_store
from tests.compute.test_runner import crash_in_driver
results = {{}}
tasks = [Task(f"demo/{{p}}", crash_in_driver, (p, side), product_id=p, n_items=side)
         for p, side in (("A", 2), ("B", 3), ("C", 4))]
spec = JobSpec("demo", tasks, lambda store, done: results.update(
    {{f.task.task_id: f.result for f in done}}))
with open_store({db_url!r}) as store:
    report = run_job(store, spec, num_cpus=2)
    print(sorted(results.items()), report.tasks_in_process, report.workers, os.getpid())
    print(report.notes)
    print({{r["task_id"]: r["worker"] for r in store.tasks().to_pylist()}})
"""
    run = [sys.executable, "-X", "faulthandler", "-c", code]
    first = subprocess.run(run, capture_output=True, text=True, timeout=180,
                           cwd=Path(__file__).parents[2])
    assert first.returncode == -11, (first.returncode, first.stderr[-2000:])  # SIGSEGV
    assert "crash_in_driver" in first.stderr  # faulthandler's trace names the task
    with open_store(db_url) as store:
        rows = {r["task_id"]: r for r in store.tasks().to_pylist()}
    assert rows["demo/B"]["status"] == "running"
    assert rows["demo/B"]["worker"].startswith(f"{socket.gethostname()}:")
    listed = CliRunner().invoke(cli, ["jobs", "--db", db_url])  # what `eominer jobs` says
    assert listed.exit_code == 0, listed.output
    assert (f"note: task demo/B was running in the job's own process "
            f"({rows['demo/B']['worker']}), which has died with it") in listed.output
    assert "task demo/A was" not in listed.output  # finished, its commit not made yet
    again = subprocess.run(run, capture_output=True, text=True, timeout=180,
                           cwd=Path(__file__).parents[2])
    assert again.returncode == 0, again.stderr[-3000:]
    done, notes, workers = again.stdout.strip().splitlines()
    assert done.startswith("[('demo/A', 4), ('demo/B', 9), ('demo/C', 16)] 0 2 ")
    pid = done.rsplit(" ", 1)[1]
    assert notes.startswith(f'["task demo/B was running in the job\'s own process '
                            f"({rows['demo/B']['worker']}) when that process died")
    assert "sends the tasks to Ray worker processes" in notes and "(and" not in notes
    assert not any(w.endswith(f":{pid}") for w in eval(workers).values())  # all on workers


def test_a_pid_reused_since_the_mark_is_not_the_process_that_wrote_it(db_url):
    """A mark names host:pid. Once its process has died, a newer process may hold the
    pid: it started after the mark was written, so the marking process is dead all the
    same (before, the task was taken for running and its crash went unseen)."""
    import datetime as dt
    import subprocess

    from compute.runner import died_in_process

    other = subprocess.Popen(["sleep", "60"])  # a live process that holds "the" pid
    try:
        worker = f"{socket.gethostname()}:{other.pid}"
        with open_store(db_url) as store:
            store.schedule_tasks("demo-1", "demo", [
                {"task_id": f"demo/{p}", "product_id": p, "feature_set_id": None,
                 "block": 0, "n_items": 1} for p in ("old", "new")])
            with store.transaction():
                store.start_tasks([("demo/old", 1)], worker=worker)
            assert died_in_process(store) == []  # marked after the process started: alive
            with store.transaction():  # the same mark, a minute before that process began
                store.execute("UPDATE jobs SET started = ? WHERE task_id = 'demo/old'",
                              (dt.datetime.now(dt.UTC).replace(tzinfo=None)
                               - dt.timedelta(seconds=60),))
            assert died_in_process(store) == [("demo/old", worker)]
    finally:
        other.kill()
        other.wait()


def test_in_this_process_cannot_go_with_a_cluster(db_url):
    from eominer.errors import ConfigError

    with open_store(db_url) as store, pytest.raises(
            ConfigError, match="--workers 0 runs the job in this process: drop --ray-address"):
        run_job(store, job(Path("x"), {}), num_workers=0, address="127.0.0.1:6379")


def test_ray_pays_off_once_the_rest_outlasts_its_start_up():
    """With n workers the rest takes RAY_START_S + rest / n on Ray: worth it past
    RAY_START_S * n / (n - 1) seconds of work here, and never with one CPU."""
    from compute.runner import RAY_START_S, ray_pays_off

    two, sixteen, one = ray_pays_off(2), ray_pays_off(16), ray_pays_off(1)
    assert not two(2 * RAY_START_S - 0.01) and two(2 * RAY_START_S + 0.01)
    assert not sixteen(RAY_START_S * 16 / 15 - 0.01) and sixteen(RAY_START_S * 16 / 15 + 0.01)
    assert not one(1e6)


def spec_of(results: dict[str, int]) -> JobSpec:
    """Four tasks; E waits for D (held across a hand-over to Ray)."""
    def commit(store, done: list[Finished]) -> None:
        results.update({f.task.task_id: f.result for f in done})

    tasks = [Task(f"demo/{p}", area_or_fail, (p, side, ""), product_id=p, n_items=side,
                  after=("demo/D",) if p == "E" else ())
             for p, side in (("A", 2), ("C", 3), ("D", 4), ("E", 5))]
    return JobSpec("demo", tasks, commit)


def test_a_default_job_starts_here_and_hands_the_rest_to_ray(db_url, monkeypatch):
    """No workers, no cluster: the tasks start in this process; once the rest is judged
    long enough (here: as soon as there is a pace), it goes to a local Ray. The first
    task, short, gives no pace (it carries the one-time costs); the second does. One
    job: one set of `jobs` rows, one progress count from 0 to 4, each result once."""
    import compute.runner
    from compute.runtime import worker_name

    judged: list[float] = []
    monkeypatch.setattr(compute.runner, "ray_pays_off",
                        lambda n: lambda rest: judged.append(rest) or (n == 2 and rest > 0))
    results: dict[str, int] = {}
    progress: list[tuple[int, int]] = []
    with open_store(db_url) as store:
        report = run_job(store, spec_of(results), num_cpus=2,
                         on_finish=lambda n, of: progress.append((n, of)))
        workers = {r["task_id"]: r["worker"] for r in store.tasks().to_pylist()}
        statuses = set(store.tasks()["status"].to_pylist())
    assert results == {"demo/A": 4, "demo/C": 9, "demo/D": 16, "demo/E": 25}
    assert (report.tasks_in_process, report.workers, report.tasks_done) == (2, 2, 4)
    assert report.ran_on == "on 2 worker(s) after 2 in this process"
    assert len(judged) == 2 and judged[0] == 0 and judged[1] > 0
    assert workers["demo/A"] == workers["demo/C"] == worker_name() and statuses == {"done"}
    assert all(workers[t] != worker_name() for t in ("demo/D", "demo/E"))
    counts = [n for n, _ in progress]  # results arriving together count together
    assert counts[0] == 1 and counts == sorted(counts) and counts[-1] == 4
    assert {of for _, of in progress} == {4}


def test_a_small_default_job_runs_here_and_starts_no_ray(db_url, monkeypatch):
    import sys

    import compute.runner

    monkeypatch.setattr(compute.runner, "ray_pays_off", lambda n: lambda rest: False)
    results: dict[str, int] = {}
    with open_store(db_url) as store:
        report = run_job(store, spec_of(results), num_cpus=2)
    assert len(results) == 4 and report.in_process and report.ran_on == "in this process"
    assert report.tasks_in_process == 4 and report.workers == 0
    assert not sys.modules["ray"].is_initialized()


def test_a_default_job_goes_to_a_ray_already_up(db_url, monkeypatch):
    """A Ray this process started (a notebook, a bench) costs nothing more: no trial
    here, whatever the job's size."""
    import compute.runner
    from compute.runtime import ray_session

    monkeypatch.setattr(compute.runner, "ray_pays_off", lambda n: lambda rest: False)
    results: dict[str, int] = {}
    with ray_session(num_cpus=2), open_store(db_url) as store:
        report = run_job(store, spec_of(results))
    assert len(results) == 4 and (report.tasks_in_process, report.workers) == (0, 2)


def test_a_first_task_longer_than_rays_start_up_speaks_alone(db_url, monkeypatch):
    """A first task that outlasts Ray's start-up (here made 0 s) is real work, not
    warm-up: its time alone projects the rest, and the rest goes to Ray after it."""
    import compute.runner

    monkeypatch.setattr(compute.runner, "RAY_START_S", 0.0)
    monkeypatch.setattr(compute.runner, "ray_pays_off", lambda n: lambda rest: rest > 0)
    results: dict[str, int] = {}
    with open_store(db_url) as store:
        report = run_job(store, spec_of(results), num_cpus=2)
    assert len(results) == 4 and (report.tasks_in_process, report.workers) == (1, 2)


def test_a_job_whose_every_task_failed_here_says_so(db_url, tmp_path):
    results: dict[str, int] = {}
    spec = job(tmp_path / "never", results)
    only_b = JobSpec(spec.kind, [t for t in spec.tasks if t.product_id == "B"], spec.commit)
    with open_store(db_url) as store:
        report = run_job(store, only_b, num_workers=0, retries=0)
    assert (report.tasks_done, len(report.failed), report.ran_on) == (0, 1, "in this process")


def fail_and_count(product: str, side: int, log: str) -> int:
    """A task function: B fails every time; each call leaves a line in `log`."""
    with open(log, "a") as f:
        f.write(f"{product}\n")
    if product == "B":
        raise ValueError(f"band B04 of {product} is unreadable")
    return side * side


def test_a_task_that_failed_here_keeps_its_tries_on_ray(db_url, tmp_path, monkeypatch):
    """B fails in this process once, then the rest goes to Ray: it has `retries` more
    tries in all, not `retries` + 1 more (its count goes with it)."""
    import compute.runner

    monkeypatch.setattr(compute.runner, "ray_pays_off", lambda n: lambda rest: rest > 0)
    log = tmp_path / "calls"
    tasks = [Task(f"demo/{p}", fail_and_count, (p, side, str(log)), product_id=p, n_items=1)
             for p, side in (("B", 3), ("A", 2), ("C", 4), ("D", 5))]
    with open_store(db_url) as store:
        report = run_job(store, JobSpec("demo", tasks, lambda _s, _d: None), num_cpus=2,
                         retries=2)
        rows = {r["task_id"]: r for r in store.tasks().to_pylist()}
    assert report.workers == 2 and report.tasks_in_process == 1  # A here, after B's 1st
    assert log.read_text().split().count("B") == 3  # 1 + retries, here and on Ray
    assert rows["demo/B"]["status"] == "failed" and rows["demo/B"]["attempts"] == 3
    assert [t for t, _, _ in report.failed] == ["demo/B"] and report.tasks_done == 3
