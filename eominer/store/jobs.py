"""SQL for the `jobs` table: one row per batch task, so a killed job resumes.

A task is `pending` (scheduled by a run at work), `running`, `done`, `failed` (out of
retries) or `stopped` (its run ended before it: Ctrl-C, SIGTERM, an error; a re-run
takes it over). `pending` and `running` rows whose run was killed outright stay so.

A task's id is its identity (feature set, product, block of rows), stable across runs;
`job_id` names the run that last scheduled it. A task becomes `done` in the same
transaction that writes its results, so `done` always means "its rows are there".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import pyarrow as pa

from eominer.store.base import utcnow
from eominer.store.models import ModelsMixin

TASK_COLUMNS = ("task_id", "job_id", "kind", "product_id", "feature_set_id", "block",
                "n_items", "status", "attempts", "error", "worker", "started", "finished")


class JobCommand(NamedTuple):
    """What started a job (`job_commands`)."""

    command: str  # shell-quoted, from `eominer`, without --db and --progress-log
    folder: str | None  # where it ran: its relative paths are from there
    user: str | None


class JobsMixin(ModelsMixin):
    """Jobs; also brings the `models` helpers (ModelsMixin) into the Store."""

    def task_statuses(self, task_ids: Sequence[str]) -> dict[str, str]:
        """Status of each of these tasks that has a row."""
        out: dict[str, str] = {}
        ids = list(task_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = self.query(
                f"SELECT task_id, status FROM jobs WHERE task_id IN "
                f"({', '.join('?' for _ in chunk)})", chunk,
            )
            out.update({r[0]: r[1] for r in rows})
        return out

    def schedule_tasks(self, job_id: str, kind: str, tasks: Sequence[dict[str, Any]],
                       ) -> list[str]:
        """Record tasks (dicts with task_id, product_id, feature_set_id, block, n_items)
        for `job_id`; return the ids still to run (everything not `done`)."""
        known = self.task_statuses([t["task_id"] for t in tasks])
        new = [t for t in tasks if t["task_id"] not in known]
        redo = [t["task_id"] for t in tasks if known.get(t["task_id"], "done") != "done"]
        with self.transaction():
            if new:
                n = len(new)
                self.insert_arrow("jobs", pa.table({
                    "task_id": pa.array([t["task_id"] for t in new], pa.string()),
                    "job_id": pa.array([job_id] * n, pa.string()),
                    "kind": pa.array([kind] * n, pa.string()),
                    "product_id": pa.array([t["product_id"] for t in new], pa.string()),
                    "feature_set_id": pa.array([t["feature_set_id"] for t in new], pa.string()),
                    "block": pa.array([int(t["block"]) for t in new], pa.int32()),
                    "n_items": pa.array([int(t["n_items"]) for t in new], pa.int32()),
                    "status": pa.array(["pending"] * n, pa.string()),
                    "attempts": pa.array([0] * n, pa.int32()),
                    "error": pa.nulls(n, pa.string()),
                    "worker": pa.nulls(n, pa.string()),
                    "started": pa.nulls(n, pa.timestamp("us")),
                    "finished": pa.nulls(n, pa.timestamp("us")),
                }))
            items = {t["task_id"]: int(t["n_items"]) for t in tasks}
            for tid in redo:  # its items too: a training taken over may see other patches
                self.execute(
                    "UPDATE jobs SET job_id = ?, status = 'pending', attempts = 0, "
                    "error = NULL, n_items = ? WHERE task_id = ?", (job_id, items[tid], tid),
                )
        return [t["task_id"] for t in tasks if known.get(t["task_id"]) != "done"]

    def unfinished_tasks(self, kind: str) -> list[tuple[str, str]]:
        """(task_id, status) of the tasks of `kind` that are not done, the latest first
        (task ids of one-task jobs start with their job's id, which starts with its time)."""
        rows = self.query("SELECT task_id, status FROM jobs WHERE kind = ? AND status <> "
                          "'done' ORDER BY task_id DESC", (kind,))
        return [(str(r[0]), str(r[1])) for r in rows]

    def feature_stamps(self, feature_set_id: str) -> dict[str, str]:
        """Per product, when its latest done task that wrote `feature_set_id` (an extract
        or change task: the jobs that write features) finished, as ISO text: what an
        index of those features compares its shards with."""
        rows = self.query(
            "SELECT product_id, MAX(finished) FROM jobs WHERE feature_set_id = ? AND "
            "kind IN ('extract', 'change') AND status = 'done' AND product_id IS NOT NULL "
            "GROUP BY product_id", (feature_set_id,))
        return {str(r[0]): r[1].isoformat(timespec="microseconds") for r in rows
                if r[1] is not None}

    def start_task(self, task_id: str, attempt: int) -> None:
        self.start_tasks([(task_id, attempt)])

    def start_tasks(self, starts: Sequence[tuple[str, int]], worker: str | None = None,
                    ) -> None:
        """Mark tasks running, (task_id, attempt) each, in one statement (a batch job's
        driver marks hundreds a second: one UPDATE per task would cost it ~1 ms each);
        `worker`: the process that runs them, when it is known before they end (the
        driver's own, for the tasks it runs itself)."""
        last = dict(starts)  # a task retried within one batch: its latest attempt
        now = utcnow()
        cols = {
            "task_id": pa.array(list(last), pa.string()),
            "status": pa.array(["running"] * len(last), pa.string()),
            "attempts": pa.array(list(last.values()), pa.int32()),
            "started": pa.array([now] * len(last), pa.timestamp("us")),
        }
        if worker is not None:
            cols["worker"] = pa.array([worker] * len(last), pa.string())
        self.upsert_arrow("jobs", pa.table(cols), keys=["task_id"], insert=False)

    def running_tasks(self, task_ids: Sequence[str] | None = None,
                      ) -> list[tuple[str, str, Any]]:
        """(task_id, worker, started) of these tasks (None: any) that are marked running
        by a named process, the latest start first."""
        if task_ids is None:
            task_ids = [r[0] for r in self.query(
                "SELECT task_id FROM jobs WHERE status = 'running' AND worker IS NOT NULL")]
        ids, out = list(task_ids), []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out += self.query(
                "SELECT task_id, worker, started FROM jobs WHERE status = 'running' AND "
                f"worker IS NOT NULL AND task_id IN ({', '.join('?' for _ in chunk)})", chunk)
        out.sort(key=lambda r: (r[2] is not None, r[2], r[0]), reverse=True)
        return [(str(t), str(w), s) for t, w, s in out]

    def finish_task(self, task_id: str, worker: str) -> None:
        self.finish_tasks([(task_id, worker)])

    def finish_tasks(self, done: Sequence[tuple[str, str]]) -> None:
        """Mark tasks done, (task_id, worker) each, in one statement; call inside the
        transaction that writes their results."""
        last = dict(done)
        now = utcnow()
        self.upsert_arrow("jobs", pa.table({
            "task_id": pa.array(list(last), pa.string()),
            "status": pa.array(["done"] * len(last), pa.string()),
            "error": pa.nulls(len(last), pa.string()),
            "worker": pa.array(list(last.values()), pa.string()),
            "finished": pa.array([now] * len(last), pa.timestamp("us")),
        }), keys=["task_id"], insert=False)

    def fail_task(self, task_id: str, error: str) -> None:
        self.execute(
            "UPDATE jobs SET status = 'failed', error = ?, finished = ? WHERE task_id = ?",
            (error[:9000], utcnow(), task_id),
        )

    def record_job_command(self, job_id: str, command: str, folder: str | None,
                           user: str | None) -> None:
        """The command line that started `job_id`, and the folder it ran in
        (`eominer jobs resume`)."""
        self.execute("DELETE FROM job_commands WHERE job_id = ?", (job_id,))
        self.execute("INSERT INTO job_commands VALUES (?, ?, ?, ?, ?)",
                     (job_id, command[:4000], folder, user, utcnow()))

    def job_command(self, job_id: str) -> JobCommand | None:
        """What started `job_id`; None where nothing was recorded (a job started from
        Python, or before schema version 9)."""
        rows = self.query("SELECT command, folder, user_name FROM job_commands WHERE "
                          "job_id = ?", (job_id,))
        return JobCommand(*rows[0]) if rows else None

    def record_job_driver(self, job_id: str, driver: str) -> None:
        """The process ("host:pid") that runs `job_id`, as it schedules the tasks."""
        now = utcnow()
        self.execute("DELETE FROM job_drivers WHERE job_id = ?", (job_id,))
        self.execute("INSERT INTO job_drivers (job_id, driver, started, seen) VALUES "
                     "(?, ?, ?, ?)", (job_id, driver[:300], now, now))

    def job_driver_lives(self, job_id: str) -> None:
        """The job's process says it lives (compute.runner's heartbeat)."""
        self.execute("UPDATE job_drivers SET seen = ? WHERE job_id = ?", (utcnow(), job_id))

    def job_driver(self, job_id: str) -> tuple[str, Any, Any] | None:
        """(driver, when it scheduled, when it last said it lived) of `job_id`; None
        where not recorded (before schema version 10); `seen` None before version 11."""
        rows = self.query("SELECT driver, started, seen FROM job_drivers WHERE job_id = ?",
                          (job_id,))
        return (str(rows[0][0]), rows[0][1], rows[0][2]) if rows else None

    def stop_job(self, job_id: str) -> None:
        """The job's tasks not done become `stopped`, no worker named (a run that ended
        before them: Ctrl-C, SIGTERM, an error)."""
        with self.transaction():
            self.execute("UPDATE jobs SET status = 'stopped', worker = NULL, finished = ? "
                         "WHERE job_id = ? AND status IN ('pending', 'running')",
                         (utcnow(), job_id))

    def job_summary(self, job_id: str) -> dict[str, int]:
        rows = self.query(
            "SELECT status, COUNT(*) FROM jobs WHERE job_id = ? GROUP BY status", (job_id,),
        )
        return {r[0]: int(r[1]) for r in rows}

    def job_list(self, limit: int = 20, kind: str | None = None) -> pa.Table:
        """The latest `limit` jobs, newest last: per job_id its kind, task counts by
        status, the patches its done tasks wrote, when it started and last finished. A
        re-run takes over the tasks its predecessor did not finish (they move to its
        job_id); the done ones stay with the run that did them."""
        counts = ", ".join(  # BIGINT: DuckDB's SUM is a 128-bit integer
            f"CAST(SUM(CASE WHEN status = '{status}' THEN {what} ELSE 0 END) AS BIGINT) "
            f"AS {name}" for status, what, name in (
                ("done", 1, "done"), ("failed", 1, "failed"), ("running", 1, "running"),
                ("pending", 1, "pending"), ("stopped", 1, "stopped"),
                ("done", "n_items", "patches")))
        where, params = ("WHERE kind = ? ", [kind]) if kind else ("", [])
        return self.query_arrow(
            f"SELECT * FROM (SELECT job_id, MIN(kind) AS kind, CAST(COUNT(*) AS BIGINT) "
            f"AS tasks, {counts}, MIN(started) AS started, MAX(finished) AS finished "
            f"FROM jobs {where}GROUP BY job_id ORDER BY MIN(started) DESC NULLS LAST, "
            "job_id DESC LIMIT ?) AS latest ORDER BY started NULLS FIRST, job_id",
            [*params, int(limit)])

    def unended_jobs(self) -> list[dict[str, Any]]:
        """Per job with a task not done (running, pending, stopped, failed): its tasks by
        those states and done, all of them, when it last moved (its latest task start or
        end), and its process (`driver`, `driver_started`, `driver_seen`; None before
        schema version 10, `driver_seen` before 11). One aggregate: the app polls it every 3 s, and the table holds a row per
        task of every job ever run (fetching the rows took 0.4 s at 100k)."""
        counts = ", ".join(
            f"CAST(SUM(CASE WHEN status = '{s}' THEN 1 ELSE 0 END) AS BIGINT) AS {s}"
            for s in ("running", "pending", "stopped", "failed", "done"))
        rows = self.query_arrow(
            f"SELECT j.*, d.driver, d.started AS driver_started, d.seen AS driver_seen "
            f"FROM (SELECT job_id, "
            f"{counts}, CAST(COUNT(*) AS BIGINT) AS tasks, MAX(started) AS started, "
            "MAX(finished) AS finished FROM jobs GROUP BY job_id HAVING SUM(CASE WHEN status "
            "<> 'done' THEN 1 ELSE 0 END) > 0) AS j LEFT JOIN job_drivers AS d ON "
            "d.job_id = j.job_id ORDER BY j.job_id").to_pylist()
        for r in rows:
            r["moved"] = max((t for t in (r.pop("started"), r.pop("finished")) if t), default=None)
        return rows

    def tasks(self, job_id: str | None = None) -> pa.Table:
        return self.query_arrow(
            f"SELECT {', '.join(TASK_COLUMNS)} FROM jobs"
            + (" WHERE job_id = ?" if job_id else "") + " ORDER BY task_id",
            (job_id,) if job_id else (),
        )
