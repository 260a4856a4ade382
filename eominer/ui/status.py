"""The status line: the latest message, a busy indicator, batch jobs running, and a
notice when the connection to the server is lost (`connection.py`)."""

from __future__ import annotations

import datetime as dt

import panel as pn
import param
from panel.viewable import Viewer

from eominer.store.base import utcnow
from eominer.ui.connection import ConnectionWatch
from eominer.ui.state import AppState

_COLOURS = {"info": "#2a6099", "success": "#1e7b34", "warning": "#9a6700", "error": "#b3261e"}


class StatusLine(Viewer):
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._text = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["eom-status"],
                                  margin=(0, 10))
        self._spinner = pn.indicators.LoadingSpinner(value=False, size=20, margin=(5, 5))
        self._jobs = pn.pane.HTML("", css_classes=["eom-jobs"], margin=(0, 10))
        self._link = ConnectionWatch(css_classes=["eom-connection"], margin=(0, 10))
        self.state.param.watch(self._render, ["message", "severity", "busy"])
        self._render()

    def _render(self, *_) -> None:
        s = self.state
        colour = _COLOURS[s.severity]
        self._text.object = (f'<span style="color:{colour}" data-severity="{s.severity}">'
                             f"{_escape(s.message)}</span>")
        self._spinner.value = s.busy

    def refresh_jobs(self) -> None:
        """Ray batch jobs recorded in the store (extract, change --pairs...): those at
        work (a task running), and those stopped in the last day with tasks left."""
        try:
            t = self.state.store.tasks().to_pylist()
        except Exception:  # jobs table of an older database: nothing to show
            return
        self._jobs.object = jobs_line(t, utcnow())

    def __panel__(self):
        return pn.Row(self._spinner, self._link, self._text, self._jobs,
                      sizing_mode="stretch_width",
                      styles={"border-top": "1px solid #ddd"})


def jobs_line(tasks: list[dict], now: dt.datetime) -> str:
    """What the status line says of the `jobs` rows. A job with a task running or
    pending is at work; one whose run ended with tasks left `stopped` (Ctrl-C, SIGTERM,
    the app's Stop it, an error; a re-run resumes it) is counted apart, for a day after
    it ended, not as tasks "waiting" for ever."""
    running = {r["job_id"] for r in tasks if r["status"] in ("running", "pending")}
    left = {r["job_id"] for r in tasks if r["status"] == "stopped"} - running
    moved: dict[str, dt.datetime] = {}
    for r in tasks:
        for when in (r["started"], r["finished"]):
            if when is not None and r["job_id"] in left:
                moved[r["job_id"]] = max(moved.get(r["job_id"], when), when)
    recent = sorted(j for j in left if now - moved.get(j, now) < dt.timedelta(days=1))
    parts = []
    if running:
        mine = [r for r in tasks if r["job_id"] in running]
        n = {k: sum(r["status"] in v for r in mine) for k, v in (
            ("running", ("running",)), ("waiting", ("pending",)),
            ("done", ("done",)))}
        parts.append(f"Ray jobs: {n['running']} tasks running, {n['waiting']} waiting "
                     f"({n['done']}/{len(mine)} done)")
    if recent:
        n_left = sum(r["job_id"] in recent and r["status"] == "stopped" for r in tasks)
        parts.append(f"{len(recent)} job(s) stopped with {n_left} task(s) left: Resume it "
                     "under Scope's Batch jobs, or eominer jobs resume JOB_ID")
    return "; ".join(parts)


def _escape(text: str) -> str:
    import html

    return html.escape(text)
