"""Find more like this across the archive: the nearest-neighbour index of one feature set
(`eominer index build`, learning/ann.py) searched from the app, over the whole archive or
the scope (ticked products, area, SQL filter). No feature matrix is loaded, only the
index's shards: it is how the app answers a scope larger than a session can hold in this
machine's memory (`AppState.archive_reason`, set when Start session is refused)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np
import panel as pn
import param
from panel.viewable import Viewer

from eominer.errors import SearchError
from eominer.ui.patchgrid import ThumbGrid
from eominer.ui.state import AppState

if TYPE_CHECKING:
    from eominer.learning.ann import Manifest


def parse_ids(text: str) -> list[int]:
    """'12, 40 41' -> [12, 40, 41]; a clear error for anything that is not an id."""
    out = []
    for part in text.replace(",", " ").split():
        try:
            out.append(int(part))
        except ValueError:
            raise SearchError(f"example {part!r} is not a patch id: give whole numbers, "
                              "e.g. 1204, 1388") from None
    return out


class ArchiveSearchView(Viewer):
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._reason = pn.pane.Alert("", alert_type="warning", visible=False,
                                     css_classes=["eom-archive-reason"],
                                     sizing_mode="stretch_width")
        self._examples = pn.widgets.TextInput(
            label="Example patch ids", placeholder="1204, 1388", width=260,
            css_classes=["eom-archive-examples"])
        self._yes = pn.widgets.Button(label="The session's yes labels", width=190,
                                      css_classes=["eom-archive-yes"])
        self._fs = pn.widgets.Select(label="Indexed feature set", width=330,
                                     css_classes=["eom-archive-fs"])
        self._level = pn.widgets.Select(label="Level (px)", width=110)
        self._top = pn.widgets.IntInput(label="How many", value=40, start=1, end=2000, width=100)
        self._in_scope = pn.widgets.Checkbox(
            label="only the scope (ticked products, area, SQL filter)", value=True)
        self._go = pn.widgets.Button(label="Find more like this", color="primary",
                                     width=180, css_classes=["eom-archive-search"])
        self._build = pn.widgets.Button(label="Build / update the index", width=190,
                                        css_classes=["eom-archive-build"])
        self._index = pn.pane.HTML("", css_classes=["eom-archive-index"],
                                   sizing_mode="stretch_width")
        self._summary = pn.pane.HTML("", css_classes=["eom-archive-summary"],
                                     sizing_mode="stretch_width")
        self._grid = ThumbGrid(self._act, buttons=False, size=96,
                               css_classes=["eom-archive-results"], sizing_mode="stretch_width",
                               empty_text="No search yet: give example patches and Find.")
        self.matches: np.ndarray = np.empty(0, np.int64)
        self.similarities: np.ndarray = np.empty(0)
        self._yes.on_click(lambda _: self._use_yes_labels())
        self._go.on_click(lambda _: self.find())
        self._build.on_click(lambda _: self.build_index())
        self._fs.param.watch(lambda _: self._show_index(), "value")
        self._level.param.watch(lambda _: self._show_index(), "value")
        self.state.param.watch(self._on_reason, "archive_reason")
        self.card = pn.Card(
            self._reason,
            pn.pane.HTML("<small>Ranks every patch of the archive (or of the scope) by its "
                         "distance to the examples in the index of one feature set: no "
                         "session, no memory limit. Click a result to add it to the "
                         "examples, then Find again.</small>"),
            pn.Row(self._examples, self._yes, self._fs, self._level, self._top),
            pn.Row(self._in_scope, self._go, self._build),
            self._index, self._summary, self._grid,
            title="Find more like this across the archive", collapsed=True,
            sizing_mode="stretch_width", css_classes=["eom-archive"])
        self.reload()

    # ---- choices ---------------------------------------------------------------------
    def reload(self) -> None:
        """Feature sets and levels from the store (Scope's reload calls this)."""
        s = self.state
        with s.work("archive index", quiet=True):
            sets = s.store.feature_sets()
            self._fs.options = {f"{f.name} v{f.version} ({f.dims}-D) {f.feature_set_id}":
                                f.feature_set_id for f in sets}
            ids = [f.feature_set_id for f in sets]
            if self._fs.value not in ids and ids:
                chosen = [f for f in s.feature_set_ids if f in ids]
                self._fs.value = chosen[0] if chosen else ids[-1]
            levels = s.store.patch_levels([p.product_id for p in s.store.product_list()])
            self._level.options = levels
            if levels and self._level.value not in levels:
                self._level.value = s.level if s.level in levels else levels[0]
            self._show_index()

    def _manifest(self) -> Manifest | None:
        from eominer.learning.ann import index_dir, read_manifest

        if not self._fs.value or self._level.value is None:
            return None
        return read_manifest(index_dir(self.state.store, self._fs.value, int(self._level.value)))

    def _show_index(self) -> None:
        m = self._manifest()
        if m is None or not m.shards:
            text = (f"No index of {self._fs.value} at level {self._level.value} yet: "
                    "Build it (a batch job; its progress shows under Batch jobs).")
        else:
            n = sum(int(e["n"]) for e in m.shards.values())
            text = (f"Index of {self._fs.value} at level {self._level.value}: {n:,} patches "
                    f"of {len(m.shards)} product(s).")
        self._index.object = f"<small>{html.escape(text)}</small>"

    def _on_reason(self, event: param.parameterized.Event) -> None:
        """Start session was refused for memory: open this card on the same scope."""
        if not event.new:
            return
        self._reason.object = (f"This scope cannot be a session on this machine ({event.new}). "
                               "Find more like this below searches it through the archive "
                               "index instead.")
        self._reason.visible = True
        self._in_scope.value = True
        if self.state.level in (self._level.options or []):
            self._level.value = self.state.level
        chosen = [f for f in self.state.feature_set_ids if f in self._fs.values]
        if chosen:
            self._fs.value = chosen[0]
        self.card.collapsed = False

    def _use_yes_labels(self) -> None:
        s = self.state
        with s.work("examples", quiet=True):
            if s.session is None:
                raise SearchError("no session is open: type example patch ids, or open a "
                                  "session with yes labels (Sessions tab)")
            ids, lab = s.labelled()
            yes = ids[lab > 0].tolist()
            if not yes:
                raise SearchError("the session has no yes label yet: label some patches")
            self._examples.value = ", ".join(str(i) for i in yes)
            if s.session.level in (self._level.options or []):
                self._level.value = s.session.level

    def _act(self, action: str | None, pid: int | None) -> None:
        """A result clicked: it becomes one more example (refine, then Find again)."""
        if pid is None:
            return
        ids = parse_ids(self._examples.value)
        if int(pid) not in ids:
            self._examples.value = ", ".join(str(i) for i in [*ids, int(pid)])
            self.state.say(f"patch {pid} added to the examples: Find again to refine")

    # ---- actions ---------------------------------------------------------------------
    def find(self) -> None:
        from eominer.learning.ann import search_archive
        from eominer.learning.aoi import as_aoi
        from eominer.ui.thumbnails import patch_thumbnails

        s = self.state
        with s.work("find more like this (archive index)"):
            like = parse_ids(self._examples.value)
            if not like:
                raise SearchError("give at least one example patch id (or take the "
                                  "session's yes labels)")
            if not self._fs.value:
                raise SearchError("no feature set in the store: extract features first")
            scoped = self._in_scope.value
            m = search_archive(
                s.store, like, self._fs.value, top=int(self._top.value),
                level=int(self._level.value) if self._level.value is not None else None,
                where=(s.where.strip() or None) if scoped else None,
                aoi=as_aoi(s.aoi) if scoped and s.aoi else None,
                product_ids=list(s.product_ids) if scoped and s.product_ids else None)
            self.matches, self.similarities = m.patch_ids, m.similarities
            windows = s.store.patch_windows(m.patch_ids.tolist())
            srcs: dict[int, str] = {}
            by_product: dict[str, list] = {}
            for w in windows:
                by_product.setdefault(w.product_id, []).append(w)
            for prod, ws in by_product.items():
                product = s.store.product(prod)
                if product is None:
                    raise SearchError(f"product {prod} is in the index but no longer in "
                                      f"{s.store.url}: rebuild the index (--rebuild)")
                for w, url in zip(ws, patch_thumbnails(product, [w.square for w in ws], False)):
                    srcs[w.patch_id] = url
            self._grid.items = [{"id": int(i), "src": srcs[int(i)], "label": None,
                                 "score": float(v)} for i, v in zip(m.patch_ids, m.similarities)]
            where = "the scope" if scoped and (s.product_ids or s.where or s.aoi) \
                else "the whole archive"
            self._summary.object = html.escape(
                f"{len(m.patch_ids)} patches most like {len(set(like))} example(s) among "
                f"{m.n_indexed:,} indexed, in {where} ({len(by_product)} product(s)); the "
                "number under each is its similarity.")

    def build_index(self) -> None:
        """`eominer index build FS --level L` as a batch job (Scope's job list follows it)."""
        from eominer.ui.jobs import launcher

        s = self.state
        with s.work("build the index"):
            if not self._fs.value or self._level.value is None:
                raise SearchError("choose a feature set and a level to index")
            fs, level = self._fs.value, str(int(self._level.value))
            job = launcher(s.store.url).start(
                ("index", fs, level), f"index {fs} at level {level}",
                ["index", "build", fs, "--level", level], s.user)
            s.say(f"{job.label} started in its own process: progress under Batch jobs",
                  "success")

    def __panel__(self) -> pn.Card:
        return self.card
