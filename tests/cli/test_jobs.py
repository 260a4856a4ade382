"""`eominer jobs`: the runner's records, as a user asks after a batch job: which jobs,
how far, and why a task failed."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from compute.runner import JobSpec, Task, run_job
from eominer.store import open_store
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
    assert {k: rows[first.job_id][k] for k in ("kind", "tasks", "done", "failed", "patches")} \
        == {"kind": "demo", "tasks": 2, "done": 2, "failed": 0, "patches": 2 + 4}
    assert {k: rows[second.job_id][k] for k in ("tasks", "done", "patches")} == {
        "tasks": 1, "done": 1, "patches": 3}  # the re-run took the failed task over
    r = run(["jobs", "--db", db_url, "--last", "1", "--format", "json"], tmp_path / "ws")
    assert [j["job_id"] for j in json.loads(r.stdout)] == [second.job_id]

    never = str(tmp_path / "never")
    broken = JobSpec("demo", [Task(f"broken/{p}", area_or_fail, (p, 2, never), product_id=p,
                                   n_items=2) for p in ("B",)], lambda _s, _d: None)
    with open_store(db_url) as store:  # a job that fails, and stays failed
        failed = run_job(store, broken, retries=1, num_workers=0)
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
    assert r.stdout.splitlines()[1].startswith("extract-killed,extract,1,0,0,1,0,0,")
    assert "note: 1 task(s) marked running: a job at work now, or one that was killed" \
        in r.stderr
    r = run(["jobs", "show", "extract-nope", "--db", db_url], tmp_path / "ws")
    assert r.returncode == 2 and "no job 'extract-nope' in this database" in r.stderr
    assert not Path(tmp_path / "ws" / "eominer.duckdb").exists()  # --db was used
