"""What a terminal shows while a runner job works: a rich progress bar with the rate and
an ETA, and optionally one JSON line per committed task in a log file (for scripts, the
app's job list, and the kill-and-resume test, which waits for the first one), and one
per line a task says of itself (`compute.runner.task_says`: `{"said": ...}`)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from compute.runner import Task, says_to


@dataclass
class JobProgress:
    """`on_start`, `on_task` and `on_finish` callbacks of `run_job`, drawing one bar: it
    counts the tasks finished (commits come every 1-10 s, a bar that followed them
    would stall), the rate and the log lines the tasks committed."""

    label: str
    bar: Any  # rich.progress.Progress
    log: IO[str] | None = None
    t0: float = field(default_factory=time.perf_counter)
    bar_id: Any = None
    finished: int = 0

    def print(self, text: str) -> None:
        self.bar.console.print(text, highlight=False, soft_wrap=True)

    def said(self, line: str) -> None:
        """What a task says of itself (`compute.runner.task_says`): above the bar, and a
        log line `{"said": ...}` (the app's job list shows the last one)."""
        self.print(line)
        if self.log:
            self.log.write(json.dumps({"said": line}) + "\n")
            self.log.flush()

    def on_start(self, total: int, to_run: int) -> None:
        if total and not to_run:  # no bar of 0/0 tasks either
            self.print(f"all {total} tasks already done: nothing to run")
            return
        if total > to_run:
            self.print(f"{total - to_run} of {total} tasks already done: resuming")
        self.bar_id = self.bar.add_task(self.label, total=to_run, rate="-")
        self.t0 = time.perf_counter()

    def on_finish(self, finished: int, to_run: int) -> None:
        self.finished = finished
        self.bar.update(self.bar_id, completed=finished)

    def on_task(self, done: int, to_run: int, patches: int, task: Task, worker: str) -> None:
        rate = patches / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.bar_id, completed=max(done, self.finished), rate=f"{rate:,.0f}")
        if self.log:
            self.log.write(json.dumps({"task_id": task.task_id, "done": done, "of": to_run,
                                       "patches": patches, "worker": worker}) + "\n")
            self.log.flush()


@contextlib.contextmanager
def job_progress(label: str, log_path: str | None = None) -> Iterator[JobProgress]:
    """A bar for one job (tasks done of to run, patch rows per second, elapsed, ETA);
    stopped cleanly on Ctrl-C so the terminal is left as it was."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("tasks"),
        TextColumn("{task.fields[rate]} patches/s"), TimeElapsedColumn(),
        TextColumn("ETA"), TimeRemainingColumn(),
    )
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(log_path, "a", encoding="utf-8")) if log_path else None
        stack.enter_context(bar)
        progress = JobProgress(label, bar, log)
        stack.enter_context(says_to(progress.said))
        try:
            yield progress
        except KeyboardInterrupt as exc:
            bar.stop()
            print(f"{label} interrupted: finished tasks are saved; re-run the same command "
                  "to resume", file=sys.stderr)
            exc.said = True  # the CLI adds no second line
            raise
