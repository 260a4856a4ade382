"""The eominer app: every view of the mining loop, assembled per browser session.

    eominer serve --db duckdb:///path.duckdb          # the command
    panel serve eominer/ui/app.py --args --db URL      # Panel's own server
    from eominer.ui import App; App(db="duckdb:///...")  # a JupyterLab cell

Each browser session gets its own `App` (state, views); the process shares one store.
"""

from __future__ import annotations

import contextlib
from typing import Any

import panel as pn
import param
from panel.viewable import Viewer

from eominer.errors import EominerError

CSS = """
.eom-card.eom-active { box-shadow: 0 0 0 2px #1565c0; }
"""


SCOPE_TAB, SESSIONS_TAB = 0, 4  # positions in App.tabs


class App(Viewer):
    """The whole app for one browser session (or one notebook cell)."""

    db = param.String(default=None, allow_None=True, doc="database URL (default: workspace)")
    user = param.String(default=None, allow_None=True, doc="label author (default: login)")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        from eominer.ui.auth import current_user

        pn.extension("tabulator", "codeeditor", raw_css=[CSS], notifications=False)
        self.user_name = current_user(self.user)
        self.error: str | None = None
        try:
            self._build()
        except EominerError as exc:  # database locked by a batch job, schema too new...
            self.error = str(exc)

    def _build(self) -> None:
        from eominer.ui.mapview import MapView
        from eominer.ui.patchgrid import PatchGridView
        from eominer.ui.publish import PublishView
        from eominer.ui.review import QualityView, ReviewView
        from eominer.ui.rounds import RoundsView
        from eominer.ui.scope import ScopeView
        from eominer.ui.sessions import SessionsView
        from eominer.ui.sqlconsole import SQLConsole
        from eominer.ui.state import AppState, shared_store
        from eominer.ui.status import StatusLine

        self.state = AppState(shared_store(self.db), user=self.user_name)
        self.status = StatusLine(state=self.state)
        self.scope = ScopeView(state=self.state)
        self.map = MapView(state=self.state)
        self.grid = PatchGridView(state=self.state)
        self.rounds = RoundsView(state=self.state)
        self.review = ReviewView(state=self.state)
        self.check = QualityView(state=self.state)
        # beside the questions: review above a threshold, and the quality check
        self.side = pn.Tabs(("Label", self.grid), ("Review", self.review),
                            ("Quality", self.check), dynamic=False,
                            sizing_mode="stretch_width", css_classes=["eom-side-tabs"])
        self.side.param.watch(self._on_side_tab, "active")
        self.publish = PublishView(state=self.state)
        self.sql = SQLConsole(state=self.state)
        self.sessions = SessionsView(state=self.state)
        self.tabs = pn.Tabs(
            # scrolls on its own, as the Mine tab's side column: the status line under
            # the tabs is never drawn over the lower half of a long Scope tab
            ("Scope", pn.Column(self.scope, scroll=True, sizing_mode="stretch_width",
                                styles={"max-height": "calc(100vh - 190px)"},
                                css_classes=["eom-scope-scroll"])),
            ("Mine", pn.Row(
                pn.Column(self.map, sizing_mode="stretch_both", min_width=500),
                # scrolls on its own: the thumbnails never run under the status line
                # (bounded by the window, not the row: the map's row may be taller)
                pn.Column(self.rounds, self.side, width=560, sizing_mode="stretch_height",
                          scroll=True, css_classes=["eom-side"],
                          styles={"max-height": "calc(100vh - 190px)"}),
                sizing_mode="stretch_both")),
            ("Publish", self.publish),
            ("SQL", self.sql),
            ("Sessions", self.sessions),
            dynamic=False, sizing_mode="stretch_both", css_classes=["eom-tabs"])
        self.state.param.watch(self._to_mine, "session")
        self.state.param.watch(self._to_scope, "aoi")
        self.tabs.param.watch(self._on_tab, "active")
        self._open_linked_session()
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.add_periodic_callback(self._poll_jobs, period=3000)

    def _poll_jobs(self) -> None:
        """Every 3 s: the jobs not ended, read once (one aggregate, ~10 ms at 100k task
        rows) for the status line and the Resume offer; while the workspace is empty,
        whether products came."""
        from eominer.ui.state import poll_failed

        try:
            unended = self.state.store.unended_jobs()
        except Exception as exc:  # a poll must not stop the app: logged, asked again
            poll_failed("reading the unended jobs", exc)
        else:
            self.status.refresh_jobs(unended)
            self.scope.jobs.refresh(unended)
        self.publish.refresh()
        with contextlib.suppress(EominerError):  # busy: the next poll asks again
            self.scope.check_new_products()  # the first ingest shows without a reload

    def _on_side_tab(self, event: param.parameterized.Event) -> None:
        self.state.reviewing = event.new == 1
        self.review.shown = event.new == 1
        self.check.shown = event.new == 2

    def _to_mine(self, event: param.parameterized.Event) -> None:
        if event.new is not None:
            self.tabs.active = 1

    def _to_scope(self, event: param.parameterized.Event) -> None:
        """An area drawn on the map: on to Scope, where it starts the next session."""
        if event.new and self.tabs.active == 1:
            self.tabs.active = SCOPE_TAB

    def _on_tab(self, event: param.parameterized.Event) -> None:
        """What other processes added meanwhile (products, feature sets, sessions)
        appears when its tab is opened: no restart, no reload."""
        if event.new == SCOPE_TAB:
            self.scope.reload()
        elif event.new == SESSIONS_TAB:
            self.sessions.refresh()

    def _open_linked_session(self) -> None:
        """`?session=ID` in the URL reopens that session (a link shared in the team)."""
        args = pn.state.session_args if pn.state.curdoc is not None else {}
        raw = (args or {}).get("session")
        if raw:
            sid = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
            self.state.open_session(sid.strip())
            if self.state.session is None:  # unknown, private or stale: say it there
                self.tabs.active = SESSIONS_TAB

    def _error_page(self) -> pn.Column:
        return pn.Column(
            pn.pane.Alert(f"### The database cannot be opened\n\n{self.error}\n\n"
                          "Wait for the process that holds it to finish (or stop it), then "
                          "reload this page. Nothing you labelled is lost: labels are saved "
                          "as you click.",
                          alert_type="danger", css_classes=["eom-db-error"]),
            sizing_mode="stretch_width")

    def __panel__(self) -> pn.Column:
        if self.error:
            return self._error_page()
        return pn.Column(self.tabs, self.status, sizing_mode="stretch_both", min_height=700)

    def template(self) -> pn.template.BaseTemplate:
        """The page `eominer serve` shows: header with the user, the app in the main area."""
        # Bootstrap: its resources are served by Panel itself (the Fast design fetches
        # a web font from Google, which an offline or air-gapped site cannot reach)
        tpl = pn.template.BootstrapTemplate(
            title="eominer", header=[pn.pane.HTML(
                f'<span class="eom-user" style="color:white">user: {self.user_name}</span>')],
            main=[self.__panel__()], header_background="#1565c0", collapsed_sidebar=True)
        return tpl


def create_app(db: str | None = None) -> pn.template.BaseTemplate:
    """One app per browser session (pn.serve calls this for every new session)."""
    return App(db=db).template()


if __name__.startswith("bokeh"):  # `panel serve eominer/ui/app.py [--args --db URL]`
    import sys

    _args = sys.argv[1:]
    _db = _args[_args.index("--db") + 1] if "--db" in _args else None
    create_app(_db).servable()
