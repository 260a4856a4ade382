"""The status line: the latest message, a busy indicator, batch jobs running, and a
notice when the connection to the server is lost (`connection.py`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import panel as pn
import param
from panel.viewable import Viewer

from eominer.store.base import utcnow
from eominer.ui.connection import ConnectionWatch
from eominer.ui.state import AppState, poll_failed

_COLOURS = {"info": "#2a6099", "success": "#1e7b34", "warning": "#9a6700", "error": "#b3261e"}


class StatusLine(Viewer):
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._text = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["eom-status"],
                                  margin=(0, 10))
        self._spinner = pn.indicators.LoadingSpinner(value=False, size=20, margin=(5, 5))
        self._jobs = pn.pane.HTML("", css_classes=["eom-jobs"], margin=(0, 10))
        self._link = ConnectionWatch(css_classes=["eom-connection"], margin=(0, 10))
        self.state.param.watch(self._render, ["message", "severity", "busy"])
        self._render()

    def _render(self, *_: param.parameterized.Event) -> None:
        s = self.state
        colour = _COLOURS[s.severity]
        self._text.object = (f'<span style="color:{colour}" data-severity="{s.severity}">'
                             f"{_escape(s.message)}</span>")
        self._spinner.value = s.busy

    def refresh_jobs(self, unended: list[dict] | None = None) -> None:
        """Ray batch jobs recorded in the store (extract, change --pairs...): those at
        work, and those stopped or killed in the last day with tasks left, from
        `Store.unended_jobs` (`unended`: already read by the app's poll)."""
        from compute.runner import job_state

        try:
            jobs = [dict(j) for j in (
                self.state.store.unended_jobs() if unended is None else unended)]
        except Exception as exc:  # a poll must not stop the app: logged, asked again
            poll_failed("reading the jobs for the status line", exc)
            return
        for j in jobs:
            j["gone"] = job_state(j) == "killed"
        self._jobs.object = jobs_line(jobs, utcnow())

    def __panel__(self) -> pn.Row:
        return pn.Row(self._spinner, self._link, self._text, self._jobs,
                      sizing_mode="stretch_width",
                      styles={"border-top": "1px solid #ddd"})


def jobs_line(jobs: list[dict], now: dt.datetime) -> str:
    """What the status line says of the jobs not ended (`Store.unended_jobs`, with
    `gone`: killed, `compute.runner.job_state`). A job with a task
    running or pending is at work, unless its process is gone (kill -9, the system
    stopping it for memory, a crash); one whose run ended with tasks left `stopped`
    (Ctrl-C, SIGTERM, the app's Stop it, an error) is said apart. A re-run resumes both;
    they are said for a day after they last moved, not counted as "waiting" for ever."""
    def recent(j: dict) -> bool:
        return j["moved"] is None or now - j["moved"] < dt.timedelta(days=1)

    at_work = [j for j in jobs if (j["running"] or j["pending"]) and not j.get("gone")]
    killed = [j for j in jobs if j.get("gone") and recent(j)]
    stopped = [j for j in jobs if j["stopped"] and j not in at_work and j not in killed
               and recent(j)]
    parts = []
    if at_work:
        n = {k: sum(j[k] for j in at_work) for k in ("running", "pending", "done", "tasks")}
        parts.append(f"Ray jobs: {n['running']} tasks running, {n['pending']} waiting "
                     f"({n['done']}/{n['tasks']} done)")
    if stopped:
        parts.append(f"{len(stopped)} job(s) stopped with "
                     f"{sum(j['stopped'] for j in stopped)} task(s) left")
    if killed:
        left = sum(j["running"] + j["pending"] + j["stopped"] for j in killed)
        parts.append(f"{len(killed)} job(s) killed (the process is gone) with {left} "
                     "task(s) left")
    if stopped or killed:
        parts[-1] += ": Resume it under Scope's Batch jobs, or eominer jobs resume JOB_ID"
    return "; ".join(parts)


def _escape(text: str) -> str:
    import html

    return html.escape(text)
