"""Benchmark: what the app's status line costs the server every 3 s per browser session.

    python bench/bench_status_jobs.py [--tasks 100000]

A `jobs` table of `--tasks` rows (1,000-task extract jobs, all done but 4 tasks of one
still running, as on an archive after a few hundred products) in a fresh DuckDB
workspace, one of them stopped with a recorded command. Timed: `Store.unended_jobs()`
with `jobs_line` (one aggregate per job, what the status line asks), `stopped_jobs`
(what Batch jobs offers to resume) and, in the same run, what the status line asked
before: every task row (`Store.tasks()`). Each is the median of 5 calls.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def main() -> None:
    from eominer.store import open_store
    from eominer.store.base import utcnow
    from eominer.ui.jobs import stopped_jobs
    from eominer.ui.status import jobs_line

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    n = ap.parse_args().tasks
    with tempfile.TemporaryDirectory() as tmp, open_store(f"duckdb:///{tmp}/db.duckdb") as store:
        for j in range(max(1, n // 1000)):
            store.schedule_tasks(f"extract-{j:05d}", "extract", [
                {"task_id": f"{j}/{i}", "product_id": f"P{j}", "feature_set_id": "fs",
                 "block": i, "n_items": 4096} for i in range(1000)])
        with store.transaction():
            now = utcnow()
            store.execute("UPDATE jobs SET status = 'done', started = ?, finished = ?",
                          (now, now))
            store.execute("UPDATE jobs SET status = 'running' WHERE job_id = 'extract-00000' "
                          "AND block < 4")
            store.execute("UPDATE jobs SET status = 'stopped' WHERE job_id = 'extract-00001' "
                          "AND block >= 500")
            store.record_job_command("extract-00001", "eominer extract --features spectral",
                                     tmp, "ana")

        def timed(fn: Callable[[], Any]) -> tuple[float, str]:
            times, line = [], ""
            for _ in range(5):
                t0 = time.perf_counter()
                line = fn()
                times.append(time.perf_counter() - t0)
            return statistics.median(times), line

        now = utcnow()
        agg, line = timed(lambda: jobs_line(store.unended_jobs(), now))
        offer, offers = timed(lambda: stopped_jobs(store))
        rows, _ = timed(lambda: len(store.tasks().to_pylist()))
    print(f"{n:,} task rows: the status line's query {agg * 1e3:.1f} ms ({line!r})")
    print(f"Batch jobs' offer to resume {offer * 1e3:.1f} ms ({list(offers)!r})")
    print(f"every task row, as the status line read them before: {rows * 1e3:.0f} ms; "
          f"ratio {rows / agg:.0f} x")


if __name__ == "__main__":
    main()
