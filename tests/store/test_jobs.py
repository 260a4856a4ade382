"""eominer.store.jobs on every engine of the contract."""

from __future__ import annotations

from tests.store.rows import as_datetime


def task(i: int, product: str = "P1") -> dict:
    return {"task_id": f"fsA|{product}|{i}", "product_id": product, "feature_set_id": "fsA",
            "block": i, "n_items": 100 + i}


def test_jobs_schedule_run_resume(store):
    tasks = [task(i) for i in range(3)]
    assert store.task_statuses([]) == {}
    assert store.schedule_tasks("job1", "extract", tasks) == [t["task_id"] for t in tasks]
    assert store.task_statuses([t["task_id"] for t in tasks] + ["nope"]) == {
        t["task_id"]: "pending" for t in tasks}
    assert store.job_summary("job1") == {"pending": 3}

    store.start_task(tasks[0]["task_id"], 1)
    store.start_task(tasks[1]["task_id"], 2)
    assert store.job_summary("job1") == {"pending": 1, "running": 2}
    with store.transaction():
        store.finish_task(tasks[0]["task_id"], "worker-a")
    store.fail_task(tasks[1]["task_id"], "boom " + "x" * 20_000)

    rows = {r["task_id"]: r for r in store.tasks("job1").to_pylist()}
    assert list(rows) == sorted(t["task_id"] for t in tasks)
    done, failed, pending = (rows[t["task_id"]] for t in tasks)
    assert (done["status"], done["worker"], done["error"], done["attempts"]) == (
        "done", "worker-a", None, 1)
    assert as_datetime(done["finished"]) >= as_datetime(done["started"])
    assert (failed["status"], failed["attempts"], failed["worker"]) == ("failed", 2, None)
    assert failed["error"].startswith("boom x") and len(failed["error"]) == 9000
    assert (pending["status"], pending["started"], pending["finished"], pending["error"]) == (
        "pending", None, None, None)
    assert (pending["kind"], pending["product_id"], pending["feature_set_id"],
            pending["block"], pending["n_items"]) == ("extract", "P1", "fsA", 2, 102)
    assert store.job_summary("job1") == {"done": 1, "failed": 1, "pending": 1}
    assert store.job_summary("other") == {}

    # a second run: done tasks are skipped, the others move to it with attempts reset
    more = tasks + [task(3)]
    todo = store.schedule_tasks("job2", "extract", more)
    assert todo == [t["task_id"] for t in more[1:]]
    assert store.job_summary("job2") == {"pending": 3}
    assert store.job_summary("job1") == {"done": 1}
    again = {r["task_id"]: r for r in store.tasks("job2").to_pylist()}
    assert again[tasks[1]["task_id"]]["error"] is None
    assert again[tasks[1]["task_id"]]["attempts"] == 0
    assert store.tasks().num_rows == 4
    assert store.tasks().column_names == [
        "task_id", "job_id", "kind", "product_id", "feature_set_id", "block", "n_items",
        "status", "attempts", "error", "worker", "started", "finished"]
    assert store.tasks("nope").num_rows == 0


def test_jobs_many_tasks_chunked(store):
    tasks = [task(i) for i in range(1203)]
    assert len(store.schedule_tasks("big", "extract", tasks)) == 1203
    statuses = store.task_statuses([t["task_id"] for t in tasks])
    assert len(statuses) == 1203 and set(statuses.values()) == {"pending"}


def test_jobs_marked_in_batches(store):
    """A driver's batch of marks: one statement each way; a task retried within the
    batch keeps its latest attempt; marks never create rows for unknown tasks."""
    tasks = [task(i) for i in range(600)]
    ids = [t["task_id"] for t in tasks]
    store.schedule_tasks("b", "extract", tasks)
    store.start_tasks([(i, 1) for i in ids[:500]] + [(ids[7], 2), ("fsA|nope|0", 1)])
    with store.transaction():
        store.finish_tasks([(i, f"host:{n % 2}") for n, i in enumerate(ids[:400])])
    assert store.job_summary("b") == {"done": 400, "running": 100, "pending": 100}
    assert store.tasks().num_rows == 600
    rows = {r["task_id"]: r for r in store.tasks("b").to_pylist()}
    assert rows[ids[7]]["attempts"] == 2 and rows[ids[8]]["attempts"] == 1
    assert (rows[ids[3]]["worker"], rows[ids[3]]["error"]) == ("host:1", None)
    assert rows[ids[450]]["worker"] is None and rows[ids[450]]["started"] is not None
    assert rows[ids[550]]["started"] is None
    store.start_tasks([])  # nothing to mark: no statement, no error


def test_job_list_counts_each_runs_tasks_newest_last(store):
    assert store.job_list().num_rows == 0
    store.schedule_tasks("job1", "extract", [task(i) for i in range(3)])
    store.start_tasks([(task(0)["task_id"], 1), (task(1)["task_id"], 1)])
    with store.transaction():
        store.finish_tasks([(task(0)["task_id"], "w")])
    store.fail_task(task(1)["task_id"], "boom")
    store.schedule_tasks("job0", "apply", [task(i, "P2") for i in range(2)])  # not started
    store.schedule_tasks("job2", "extract", [task(i) for i in range(4)])  # takes 1-3 over
    store.start_tasks([(task(3)["task_id"], 1)])
    rows = store.job_list().to_pylist()
    assert [r["job_id"] for r in rows] == ["job0", "job1", "job2"]  # never started first
    by = {r["job_id"]: r for r in rows}
    assert {k: by["job1"][k] for k in ("kind", "tasks", "done", "failed", "running",
                                        "pending", "patches")} == {
        "kind": "extract", "tasks": 1, "done": 1, "failed": 0, "running": 0, "pending": 0,
        "patches": 100}
    assert {k: by["job2"][k] for k in ("tasks", "done", "running", "pending")} == {
        "tasks": 3, "done": 0, "running": 1, "pending": 2}
    assert by["job0"]["started"] is None and by["job0"]["pending"] == 2
    assert [r["job_id"] for r in store.job_list(limit=1).to_pylist()] == ["job2"]
    assert [r["job_id"] for r in store.job_list(kind="apply").to_pylist()] == ["job0"]


def test_the_jobs_not_ended_and_the_tasks_left_of_a_kind(store):
    """What the app asks every 3 s (one aggregate, not every row), and what a training
    takes over: per job with a task not done (the one that only failed too), its counts,
    when it last moved and its process; a kind's tasks not done, the latest first."""
    store.schedule_tasks("job1", "extract", [task(i) for i in range(3)])
    store.schedule_tasks("job2", "extract", [task(i, "P2") for i in range(2)])
    store.schedule_tasks("ended", "extract", [task(i, "P3") for i in range(1)])
    with store.transaction():
        store.start_tasks([(task(0)["task_id"], 1), (task(0, "P2")["task_id"], 1),
                           (task(0, "P3")["task_id"], 1)])
        store.finish_tasks([(task(0)["task_id"], "w"), (task(0, "P3")["task_id"], "w")])
        store.execute("UPDATE jobs SET status = 'stopped' WHERE task_id = ?",
                      (task(2)["task_id"],))
    store.schedule_tasks("job3", "extract", [task(0, "P4")])
    store.fail_task(task(0, "P4")["task_id"], "boom")
    with store.transaction():
        store.record_job_driver("job2", "node-1:123")
    jobs = store.unended_jobs()
    assert [{k: v for k, v in j.items() if k not in ("moved", "driver_started", "driver_seen")}
            for j in jobs] == [
        {"job_id": "job1", "running": 0, "pending": 1, "stopped": 1, "failed": 0, "done": 1,
         "tasks": 3, "driver": None},
        {"job_id": "job2", "running": 1, "pending": 1, "stopped": 0, "failed": 0, "done": 0,
         "tasks": 2, "driver": "node-1:123"},
        {"job_id": "job3", "running": 0, "pending": 0, "stopped": 0, "failed": 1, "done": 0,
         "tasks": 1, "driver": None}]
    assert jobs[0]["driver_started"] is None and as_datetime(jobs[1]["driver_started"])
    assert jobs[0]["driver_seen"] is None and as_datetime(
        jobs[1]["driver_seen"]) == as_datetime(jobs[1]["driver_started"])  # heard at its start
    assert jobs[2]["moved"] is not None  # when it failed
    assert all(as_datetime(j["moved"]) is not None for j in jobs)
    assert store.unfinished_tasks("extract") == [
        (task(0, "P4")["task_id"], "failed"), (task(1, "P2")["task_id"], "pending"), (task(0, "P2")["task_id"], "running"),
        (task(2)["task_id"], "stopped"), (task(1)["task_id"], "pending")]
    assert store.unfinished_tasks("ssl-train") == []


def test_a_stopped_run_marks_its_tasks_not_done(store):
    """`compute.runner`: a run ended by Ctrl-C or an error leaves its pending and running
    tasks `stopped`, no worker named; done and failed ones stay."""
    tasks = [task(i) for i in range(4)]
    store.schedule_tasks("job1", "extract", tasks)
    store.schedule_tasks("job2", "extract", [task(9)])
    store.start_tasks([(tasks[0]["task_id"], 1), (tasks[1]["task_id"], 1),
                       (tasks[2]["task_id"], 1)], worker="w1")
    with store.transaction():
        store.finish_task(tasks[0]["task_id"], "w1")
    store.fail_task(tasks[1]["task_id"], "boom")
    store.stop_job("job1")
    rows = {r["task_id"]: r for r in store.tasks("job1").to_pylist()}
    assert [rows[t["task_id"]]["status"] for t in tasks] == ["done", "failed", "stopped",
                                                             "stopped"]
    assert rows[tasks[2]["task_id"]]["worker"] is None
    assert rows[tasks[2]["task_id"]]["finished"] is not None
    assert store.job_summary("job2") == {"pending": 1}


def test_feature_stamps_and_the_tasks_running(store):
    """What an index compares its shards with (the last done extract or change task of
    each product for a set) and the tasks marked running by a named process."""
    store.schedule_tasks("job1", "extract", [task(0, "P1"), task(1, "P1"), task(2, "P2")])
    store.schedule_tasks("job2", "apply", [task(3, "P3")])
    ids = {i: task(i, p)["task_id"] for i, p in ((0, "P1"), (1, "P1"), (2, "P2"), (3, "P3"))}
    store.start_tasks([(ids[0], 1), (ids[1], 1)], worker="w1")
    store.start_tasks([(ids[2], 1), (ids[3], 1)])  # no process named yet
    assert store.feature_stamps("fsA") == {}
    assert sorted(t for t, _, _ in store.running_tasks()) == sorted([ids[0], ids[1]])
    assert [(t, w) for t, w, _ in store.running_tasks([ids[1], ids[2], "nope"])] == [
        (ids[1], "w1")]
    with store.transaction():
        store.finish_task(ids[0], "w1")
        store.finish_task(ids[3], "w2")  # an apply task writes no features
    first = store.feature_stamps("fsA")
    assert list(first) == ["P1"] and first["P1"].startswith("20")
    with store.transaction():
        store.finish_task(ids[1], "w1")
    assert store.feature_stamps("fsA")["P1"] >= first["P1"]
    assert store.running_tasks() == []
