"""compute/progress.py: one JSON line per committed task in the progress log, and what
the user reads when a job is interrupted."""

from __future__ import annotations

import json

import pytest

from compute.progress import job_progress
from compute.runner import Task


def test_each_committed_task_is_one_json_line_in_the_log(tmp_path):
    log = tmp_path / "progress.jsonl"
    with job_progress("extract", str(log)) as progress:
        progress.on_start(total=3, to_run=2)
        for done, task_id in enumerate(("extract/a", "extract/b"), start=1):
            progress.on_task(done, 2, 100 * done, Task(task_id, len), "host:42")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines == [
        {"task_id": "extract/a", "done": 1, "of": 2, "patches": 100, "worker": "host:42"},
        {"task_id": "extract/b", "done": 2, "of": 2, "patches": 200, "worker": "host:42"},
    ]


def test_ctrl_c_says_how_to_resume(capsys):
    with pytest.raises(KeyboardInterrupt, match="^$"), job_progress("extract"):
        raise KeyboardInterrupt
    assert ("extract interrupted: finished tasks are saved; re-run the same command to "
            "resume") in capsys.readouterr().err


def test_a_rerun_with_every_task_done_says_so_and_draws_no_empty_bar(capsys):
    with job_progress("extract") as progress:
        progress.on_start(total=6, to_run=0)
        assert progress.bar.tasks == []  # no "0/0 tasks" bar
        progress.on_start(total=6, to_run=2)
        assert [t.total for t in progress.bar.tasks] == [2]
    out = capsys.readouterr().out
    assert "all 6 tasks already done: nothing to run" in out
    assert "4 of 6 tasks already done: resuming" in out and "6 of 6" not in out


def test_the_bar_counts_finished_tasks_before_their_commit(tmp_path):
    """Commits come every 1-10 s; the bar follows the results as they arrive and never
    goes back when a commit reports fewer; the log still has a line per committed task."""
    log = tmp_path / "progress.jsonl"
    with job_progress("extract", str(log)) as progress:
        progress.on_start(total=4, to_run=4)
        progress.on_finish(1, 4)
        progress.on_finish(3, 4)
        assert progress.bar.tasks[0].completed == 3 and not log.read_text()
        progress.on_task(1, 4, 100, Task("extract/a", len), "host:42")  # the first commit
        assert progress.bar.tasks[0].completed == 3
        progress.on_finish(4, 4)
        assert progress.bar.tasks[0].completed == 4
    assert [json.loads(line)["done"] for line in log.read_text().splitlines()] == [1]


@pytest.mark.ray
@pytest.mark.parametrize("where", [{"num_workers": 0}, {"num_cpus": 1, "num_workers": 1}])
def test_what_a_task_says_is_shown_above_the_bar_and_logged_for_the_app(
        db_url, tmp_path, capsys, where):
    """A long task's steps (`task_says`, a job that `says`): in this process or from a Ray
    worker, printed above the bar and written to the progress log as `{"said": ...}`
    rows, in order, before the task's own row; the app's job list shows the last one
    while the job has committed nothing (`AppJob.said`)."""
    from compute.runner import JobSpec, run_job
    from eominer.store import open_store
    from eominer.ui.jobs import AppJob
    from tests.compute.test_runner import say_steps

    log = tmp_path / "progress.jsonl"
    spec = JobSpec("talk", [Task("talk/A", say_steps, ("A", 2), product_id="A")],
                   lambda store, done: None, says=True)
    with open_store(db_url) as store, job_progress("talk", str(log)) as bar:
        run_job(store, spec, on_start=bar.on_start, on_task=bar.on_task, **where)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows[:2] == [{"said": "step 1/2 of A"}, {"said": "step 2/2 of A"}]
    assert [r.get("task_id") for r in rows[2:]] == ["talk/A"]
    out = capsys.readouterr().out
    assert out.index("step 1/2 of A") < out.index("step 2/2 of A")
    log.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n")  # before the commit
    job = AppJob(("t",), "talk", "ana", None, log, tmp_path / "none.log")
    assert job.said() == "step 2/2 of A"
