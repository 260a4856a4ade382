"""Sessions: the user's sessions and the team's shared ones; reopen, rename, share,
duplicate, archive, delete (archived ones), refine to a finer level (the cascade). A session's link
(`?session=ID`) reopens it (see app.py)."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import panel as pn
import param
from panel.viewable import Viewer

from eominer.learning.manage import SessionSummary
from eominer.ui.state import AppState
from eominer.ui.tables import table_frame

# what tells sessions apart first; the long lists last, cut to a width (whole on hover)
COLUMNS = ["name", "owner", "concept", "labels", "rounds", "last activity", "shared",
           "status", "created", "products", "feature sets", "session_id"]
LONG = {"products": 300, "feature sets": 360}
# their types when no session is listed (ui/tables.py)
SESSION_DTYPES = {"labels": "int64", "rounds": "int64", "last activity": "datetime64[ns]",
                  "created": "datetime64[ns]"}


class SessionsView(Viewer):
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._table = pn.widgets.Tabulator(
            None, selectable=1, disabled=True, show_index=False, height=300,
            sizing_mode="stretch_width", css_classes=["eom-sessions"], widths=LONG,
            configuration={"columnDefaults": {"tooltip": True},
                           # an empty list says how to fill it (short: Tabulator centres
                           # it over all the columns, wider than a laptop's window)
                           "placeholder": "No session here: start one in Scope"})
        self._archived = pn.widgets.Checkbox(label="show archived", value=False)
        self._archived.param.watch(lambda e: self._show_archived(e.new), "value")
        self._open = pn.widgets.Button(label="Reopen", color="primary", width=110,
                                       css_classes=["eom-reopen"])
        self._name = pn.widgets.TextInput(placeholder="new name", width=220,
                                          css_classes=["eom-rename-text"])
        self._rename = pn.widgets.Button(label="Rename", width=90, css_classes=["eom-rename"])
        self._share = pn.widgets.Button(label="Share / unshare", width=130,
                                        css_classes=["eom-share"])
        self._archive = pn.widgets.Button(label="Archive / restore", width=140,
                                          css_classes=["eom-archive"])
        # archived sessions only (shown with "show archived"); the first click asks
        self._delete = pn.widgets.Button(label="Delete", color="danger", width=90,
                                         visible=False, css_classes=["eom-delete"])
        self._armed: str | None = None  # the session a first Delete click named
        self._dup_fs = pn.widgets.MultiChoice(label="Duplicate with feature sets", width=360)
        self._dup_model = pn.widgets.Select(label="and model", width=150)
        self._duplicate = pn.widgets.Button(label="Duplicate", width=110,
                                            css_classes=["eom-duplicate"])
        self._refine_level = pn.widgets.Select(label="Refine to level (px)", width=150,
                                               css_classes=["eom-refine-level"])
        self._refine = pn.widgets.Button(label="Refine", width=90, css_classes=["eom-refine"])
        self._stale = pn.Column(visible=False, sizing_mode="stretch_width")
        self._hidden = pn.pane.Markdown("", visible=False, css_classes=["eom-hidden-sessions"])
        self._rerank = pn.widgets.Button(label="Re-rank the same labels on the new features",
                                         color="warning", css_classes=["eom-rerank"])
        self._open.on_click(lambda _: self._on_open())
        self._rename.on_click(lambda _: self._act("rename", self._do_rename))
        self._share.on_click(lambda _: self._act("share", self._do_share))
        self._archive.on_click(lambda _: self._act("archive", self._do_archive))
        self._delete.on_click(lambda _: self._act("delete", self._do_delete))
        self._duplicate.on_click(lambda _: self._act("duplicate", self._do_duplicate))
        self._refine.on_click(lambda _: self._act("refine", self._do_refine))
        self._table.param.watch(lambda _: self._refine_levels(), "selection")
        self._rerank.on_click(lambda _: self.state.open_session(self.state.stale_session,
                                                                accept_feature_change=True))
        self.state.param.watch(lambda _: self._show_stale(), "stale_session")
        self._rows: list[SessionSummary] = []
        self.refresh()

    # ---- data --------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the sessions this user may see (theirs and the shared ones)."""
        from eominer.learning.manage import private_of_others, session_summaries
        from eominer.learning.models import MODEL_KINDS

        s = self.state
        with s.work("list sessions", quiet=True):
            # the selection is a row index: kept by session id across a new order (the
            # rows go by last activity, and another window may have added one)
            chosen = [self._rows[i].record.session_id for i in self._table.selection
                      if i < len(self._rows)][:1]
            self._rows = session_summaries(s.store, s.user, archived=self._archived.value)
            self._table.value = table_frame(
                [[r.record.name, r.record.owner, r.record.concept, r.labels, r.rounds,
                  r.last_activity, "yes" if r.shared else "", r.record.status,
                  r.record.created, ", ".join(r.record.product_ids),
                  ", ".join(r.record.feature_set_ids), r.record.session_id]
                 for r in self._rows],
                COLUMNS, SESSION_DTYPES)
            others = private_of_others(s.store, s.user, archived=self._archived.value)
            n = sum(others.values())
            # user names are the users' own text: escaped, as Markdown passes HTML through
            self._hidden.object = (
                f"{n} session{'s' if n > 1 else ''} of other users "
                f"({', '.join(f'{html.escape(o)}: {k}' for o, k in sorted(others.items()))}) "
                f"{'are' if n > 1 else 'is'} not shared with you ({html.escape(s.user)}): the "
                "owner shares with Share / unshare, or `eominer session share SID --user "
                "OWNER`") if n else ""
            self._hidden.visible = bool(n)
            sets = s.store.feature_sets()
            self._dup_fs.options = {f"{f.name} v{f.version} {f.feature_set_id}":
                                    f.feature_set_id for f in sets}
            self._dup_model.options = list(MODEL_KINDS)
            if not chosen and s.session is not None:
                # the open session, selected: Rename, Refine... act on it by default
                chosen = [s.session.session_id]
            self.select(chosen[0] if chosen else "")

    def _selected(self) -> SessionSummary | None:
        sel = self._table.selection
        if not sel or sel[0] >= len(self._rows):
            self.state.say("select a session in the list first", "warning")
            return None
        return self._rows[sel[0]]

    def select(self, session_id: str) -> None:
        """Programmatic selection (tests, JupyterLab)."""
        self._table.selection = [i for i, r in enumerate(self._rows)
                                 if r.record.session_id == session_id][:1]

    # ---- actions -------------------------------------------------------------------
    def _on_open(self) -> None:
        row = self._selected()
        if row is not None:
            self.state.open_session(row.record.session_id)

    def _act(self, what: str, fn: Callable[[SessionSummary], None]) -> None:
        row = self._selected()
        if row is None:
            return
        with self.state.work(what):
            fn(row)
        self.refresh()

    def _do_rename(self, row: SessionSummary) -> None:
        from eominer.learning.manage import rename

        rename(self.state.store, row.record.session_id, self.state.user, self._name.value)
        self.state.say(f"session {row.record.session_id} renamed {self._name.value.strip()!r}",
                       "success")

    def _do_share(self, row: SessionSummary) -> None:
        from eominer.learning.manage import share

        share(self.state.store, row.record.session_id, self.state.user, not row.shared)
        self.state.say(f"session {row.record.session_id} "
                       + ("is private again" if row.shared else "is shared with the team"),
                       "success")

    def _do_archive(self, row: SessionSummary) -> None:
        from eominer.learning.manage import archive

        back = row.record.status == "archived"
        archive(self.state.store, row.record.session_id, self.state.user, not back)
        self.state.say(f"session {row.record.session_id} "
                       + ("restored" if back else "archived (show archived to see it)"),
                       "success")

    def _show_archived(self, on: bool) -> None:
        self._delete.visible = on
        self._armed = None
        self.refresh()

    def _do_delete(self, row: SessionSummary) -> None:
        """The first click names what would go; a second click on the same session
        deletes it (eominer.learning.manage.delete: archived sessions of their owner)."""
        from eominer.learning.manage import delete

        sid = row.record.session_id
        if self.state.session is not None and self.state.session.session_id == sid:
            self.state.say(f"session {sid} is open in this window: open another one (or "
                           "reload the page) before deleting it", "warning")
            return
        if self._armed != sid and row.record.status == "archived":
            self._armed = sid
            self.state.say(f"delete session {sid} ({row.record.name}) with its {row.labels} "
                           f"label(s) and {row.rounds} round(s)? Click Delete again to delete "
                           "it; this cannot be undone", "warning")
            return
        self._armed = None
        n = delete(self.state.store, sid, self.state.user)
        self.state.say(f"session {sid} deleted with {n['labels']} label(s)", "success")

    def _do_duplicate(self, row: SessionSummary) -> None:
        from eominer.learning.manage import duplicate

        copy = duplicate(self.state.store, row.record.session_id, self.state.user,
                         feature_set_ids=list(self._dup_fs.value) or None,
                         model_kind=self._dup_model.value or None)
        self.state.say(f"session {copy.session_id} is a copy of {row.record.session_id} "
                       "with its labels: reopen it to go on", "success")

    def _refine_levels(self) -> None:
        """The grid levels finer than the selected session's, for "Refine to level"."""
        sel = self._table.selection
        if not sel or sel[0] >= len(self._rows):
            self._refine_level.param.update(options=[], value=None)
            return
        rec = self._rows[sel[0]].record
        levels = self.state.store.patch_levels(list(rec.product_ids))
        finer = sorted((v for v in levels if v < rec.level), reverse=True)
        self._refine_level.param.update(options=finer, value=finer[0] if finer else None)

    def _do_refine(self, row: SessionSummary) -> None:
        from eominer.learning.manage import refine

        level = self._refine_level.value
        if not level:
            self.state.say(f"session {row.record.session_id} is at the finest grid level "
                           f"({row.record.level} px): nothing to refine to", "warning")
            return
        fine = refine(self.state.store, row.record.session_id, self.state.user, int(level))
        self.state.say(f"session {row.record.session_id} published; session {fine.session_id} "
                       f"refines it at {level} px over {fine.data.n} patches", "success")
        self.state.open_session(fine.session_id)

    def _show_stale(self) -> None:
        sid = self.state.stale_session
        self._stale.visible = bool(sid)
        self._stale.objects = [pn.pane.Alert(
            f"The features of session {sid} were re-extracted since it started: its labels "
            "were given on the old features. Re-rank them on the new features, or start a "
            "new session.", alert_type="warning", css_classes=["eom-stale"]),
            self._rerank] if sid else []

    def __panel__(self) -> pn.Column:
        return pn.Column(
            pn.Row(pn.pane.Markdown("### Sessions"), self._archived),
            self._stale,
            self._table,
            self._hidden,
            pn.Row(self._open, self._name, self._rename, self._share, self._archive,
                   self._delete),
            pn.Row(self._dup_fs, self._dup_model, self._duplicate),
            pn.Row(self._refine_level, self._refine),
            sizing_mode="stretch_width",
        )
