"""The status line: the latest message, a busy indicator, batch jobs running, and a
notice when the connection to the server is lost (`connection.py`)."""

from __future__ import annotations

import panel as pn
import param
from panel.viewable import Viewer

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
        """Ray batch jobs recorded in the store (extract, change --pairs)."""
        try:
            t = self.state.store.tasks().to_pylist()
        except Exception:  # jobs table of an older database: nothing to show
            return
        running = [r for r in t if r["status"] == "running"]
        pending = [r for r in t if r["status"] in ("pending", "scheduled")]
        if running or pending:
            jobs = sorted({r["job_id"] for r in running + pending})
            done = sum(1 for r in t if r["job_id"] in jobs and r["status"] == "done")
            total = sum(1 for r in t if r["job_id"] in jobs)
            self._jobs.object = (f"Ray jobs: {len(running)} tasks running, {len(pending)} "
                                 f"waiting ({done}/{total} done)")
        else:
            self._jobs.object = ""

    def __panel__(self):
        return pn.Row(self._spinner, self._link, self._text, self._jobs,
                      sizing_mode="stretch_width",
                      styles={"border-top": "1px solid #ddd"})


def _escape(text: str) -> str:
    import html

    return html.escape(text)
