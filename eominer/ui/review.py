"""Review and Quality: the two tabs beside "Label" in the Mine view.

Review: a score threshold; the patches scoring at least that, best first, 40 thumbnails
a page, with their count. Click thumbnails to select them (or "Select page"), then
"Yes" or "No" labels all the selected patches in one transaction and re-fits the ranking
(`AppState.label_many`). The selection is `AppState.review_ids`, which the map outlines.

Quality: "Check quality" asks for a stratified random sample of the latest round's
patches (learning/verification.py); each yes / no is a verification answer (never used
for training), and the precision / recall estimate beside the rounds chart follows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import panel as pn
import param
from panel.custom import JSComponent
from panel.viewable import Viewer

from eominer.errors import ProductReadError
from eominer.ui.patchgrid import ThumbGrid
from eominer.ui.state import AppState, Soon
from eominer.ui.thumbnails import patch_thumbnails

PAGE = 40

_ESM = """
export function render({model, el}) {
  const draw = () => {
    const sel = new Set(model.selected)
    el.innerHTML = model.items.length ? '' : `<div class="eom-empty">${model.empty_text}</div>`
    const wrap = document.createElement('div')
    wrap.className = 'eom-grid'
    wrap.style.cssText = 'display:flex;flex-wrap:wrap;gap:6px'
    model.items.forEach((it) => {
      const on = sel.has(it.id)
      const card = document.createElement('div')
      card.className = 'eom-card' + (on ? ' eom-selected' : '')
      card.dataset.id = it.id
      const ring = on ? '#ff6d00' : (it.label === 1 ? '#00c853' : (it.label === -1 ? '#ff1744' : '#ccc'))
      card.style.cssText = `border:3px solid ${ring};border-radius:4px;padding:2px;width:${model.size + 6}px;font:11px sans-serif;cursor:pointer` + (on ? ';background:#fff3e0' : '')
      card.innerHTML = `<img class="eom-thumb" src="${it.src}" width="${model.size}" height="${model.size}" style="display:block" title="patch ${it.id}: click to select">`
        + `<label style="display:flex;gap:3px;align-items:center"><input type="checkbox" class="eom-pick" ${on ? 'checked' : ''}>#${it.id} ${it.score.toFixed(2)}</label>`
      wrap.appendChild(card)
    })
    el.appendChild(wrap)
  }
  draw()
  model.on('items', draw)
  model.on('selected', draw)
  el.addEventListener('click', (e) => {
    const card = e.target.closest('.eom-card')
    if (!card) return
    e.preventDefault()
    model.send_msg({action: 'toggle', id: Number(card.dataset.id)})
  })
}
"""


class ReviewGrid(JSComponent):
    """Thumbnails to select: a click toggles one; `selected` is drawn as an orange ring."""

    items = param.List(default=[])
    selected = param.List(default=[])
    size = param.Integer(default=96)
    empty_text = param.String(default="")
    _esm = _ESM

    def __init__(self, on_toggle: Callable[[int], None], **params: Any) -> None:
        super().__init__(**params)
        self._on_toggle = on_toggle

    def _handle_msg(self, msg: dict[str, Any]) -> None:
        if msg.get("action") == "toggle" and msg.get("id") is not None:
            self._on_toggle(int(msg["id"]))


class Thumbs:
    """Thumbnail data URLs of session patches, read per product and kept per browser
    session (the Label grid keeps its own)."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self._urls: dict[int, str] = {}

    def items(self, ids: list[int]) -> list[dict]:
        s = self.state
        need = [i for i in ids if i not in self._urls]
        if need:
            by_product: dict[str, list[tuple[int, tuple[int, int, int]]]] = {}
            for pid, win in zip(need, s.patch_windows(need)):
                by_product.setdefault(win.product_id, []).append((pid, win.square))
            for prod, entries in by_product.items():
                product = s.store.product(prod)
                if product is None:
                    raise ProductReadError(f"product {prod} is no longer in {s.store.url}: "
                                           "re-ingest it")
                for (pid, _), url in zip(entries, patch_thumbnails(
                        product, [w for _, w in entries], False)):
                    self._urls[pid] = url
        lab_ids, lab = s.labelled()
        mine = dict(zip(lab_ids.tolist(), lab.tolist()))
        scores = s.scores_of(ids)
        return [{"id": int(i), "src": self._urls[i], "label": mine.get(int(i)),
                 "score": 0.0 if sc is None else sc} for i, sc in zip(ids, scores)]


def above(scores: np.ndarray | None, threshold: float) -> np.ndarray:
    """Rows scoring at least `threshold`, best first (ties by row)."""
    if scores is None:
        return np.empty(0, np.int64)
    rows = np.flatnonzero(scores >= np.float32(threshold))
    return rows[np.lexsort((rows, -scores[rows]))]


class ReviewView(Viewer):
    state = param.ClassSelector(class_=AppState)
    shown = param.Boolean(default=False, doc="its tab is on screen (set by the app)")
    page = param.Integer(default=0)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        s = self.state
        self._slider = pn.widgets.FloatSlider.from_param(
            s.param.review_threshold, name="Score at least", step=0.01,
            css_classes=["eom-review-threshold"], sizing_mode="stretch_width")
        self._count = pn.pane.HTML("", css_classes=["eom-review-count"])
        self._prev = pn.widgets.Button(label="◀", width=40, css_classes=["eom-review-prev"])
        self._next = pn.widgets.Button(label="▶", width=40, css_classes=["eom-review-next"])
        self._all = pn.widgets.Button(label="Select page", width=100,
                                      css_classes=["eom-review-select-page"])
        self._clear = pn.widgets.Button(label="Clear", width=70, css_classes=["eom-review-clear"])
        self._yes = pn.widgets.Button(label="Yes for selected", color="success",
                                      width=150, css_classes=["eom-review-yes"])
        self._no = pn.widgets.Button(label="No for selected", color="danger", width=150,
                                     css_classes=["eom-review-no"])
        self._grid = ReviewGrid(self._toggle, css_classes=["eom-review-grid"],
                                sizing_mode="stretch_width",
                                empty_text="No patch above the threshold (or no ranking yet).")
        self._thumbs = Thumbs(s)
        self._rows = np.empty(0, np.int64)
        self._key: tuple | None = None
        self._prev.on_click(lambda _: self._turn(-1))
        self._next.on_click(lambda _: self._turn(1))
        self._all.on_click(lambda _: self._select_page())
        self._clear.on_click(lambda _: setattr(s, "review_ids", []))
        self._yes.on_click(lambda _: self._label(1))
        self._no.on_click(lambda _: self._label(-1))
        # after the map's overlay has gone out (`Soon`), once per click
        self._reset_due = False
        self._refresh_soon = Soon(lambda: self._refresh(reset=self._take_reset()))
        s.param.watch(lambda _: self._refresh_later(reset=True),
                      ["review_threshold", "scores_version", "session"])
        s.param.watch(lambda _: self._refresh_later(), ["labels_version"])
        s.param.watch(self._on_selected, "review_ids")
        self.param.watch(lambda _: self._refresh(), ["shown", "page"])
        self._on_selected()
        self._refresh()

    # ---- callbacks: the core does the work --------------------------------------
    def _toggle(self, pid: int) -> None:
        ids = list(self.state.review_ids)
        self.state.review_ids = [i for i in ids if i != pid] if pid in ids else [*ids, pid]

    def _select_page(self) -> None:
        ids = list(self.state.review_ids)
        self.state.review_ids = ids + [i for i in self._page_ids() if i not in ids]

    def _turn(self, step: int) -> None:
        last = max(0, (len(self._rows) - 1) // PAGE)
        self.page = min(max(self.page + step, 0), last)

    def _label(self, value: int) -> None:
        ids = list(self.state.review_ids)
        if not ids:
            self.state.say("select patches first (click their thumbnails)", "warning")
            return
        if self.state.label_many(ids, value):
            self.state.review_ids = []

    def _on_selected(self, *_: param.parameterized.Event) -> None:
        n = len(self.state.review_ids)
        self._yes.label = f"Yes for {n} selected"
        self._no.label = f"No for {n} selected"
        self._yes.disabled = self._no.disabled = n == 0
        self._grid.selected = list(self.state.review_ids)

    # ---- drawing ----------------------------------------------------------------
    def _page_ids(self) -> list[int]:
        s = self.state
        if s.session is None or not len(self._rows):
            return []
        rows = self._rows[self.page * PAGE:(self.page + 1) * PAGE]
        return [int(i) for i in s.session.patch_ids[rows]]

    def _refresh_later(self, reset: bool = False) -> None:
        self._reset_due = self._reset_due or reset
        self._refresh_soon()

    def _take_reset(self) -> bool:
        reset, self._reset_due = self._reset_due, False
        return reset

    def _refresh(self, reset: bool = False) -> None:
        """The count always (one pass over the scores); the sorted page and its
        thumbnails only while the tab is on screen: a label click with the tab hidden
        does not sort a million scores."""
        s = self.state
        if reset and self.page:
            self.page = 0  # its watcher calls back here
            return
        if s.scores is None or s.session is None:
            self._rows, self._key = np.empty(0, np.int64), None
            self._count.object = "<i>no ranking yet: label some patches and Learn</i>"
            if self.shown:
                self._grid.items = []
            return
        key = (id(s.session), s.scores_version, float(s.review_threshold))
        if self.shown and key != self._key:
            self._key = key
            self._rows = above(s.scores, s.review_threshold)
        n = len(self._rows) if key == self._key else \
            int(np.count_nonzero(s.scores >= np.float32(s.review_threshold)))
        pages = max(1, -(-n // PAGE))
        by = f" by {s.session.params.prior} alone (no fitted round yet)" if s.prior_only else ""
        self._count.object = (
            f"<b class='eom-above'>{n}</b> patches score &ge; {s.review_threshold:.2f}{by}; page "
            f"{min(self.page + 1, pages)} of {pages}; click thumbnails to select them")
        if not self.shown:
            return
        with s.work("thumbnails", quiet=True):
            self._grid.items = self._thumbs.items(self._page_ids())

    def __panel__(self) -> pn.Column:
        return pn.Column(
            self._slider, self._count,
            pn.FlexBox(self._prev, self._next, self._all, self._clear, self._yes, self._no),
            self._grid, sizing_mode="stretch_width", css_classes=["eom-review"])


class QualityView(Viewer):
    state = param.ClassSelector(class_=AppState)
    shown = param.Boolean(default=False, doc="its tab is on screen (set by the app)")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        s = self.state
        self._n = pn.widgets.IntInput(label="Sample size", value=40, start=4, end=400,
                                      width=110, css_classes=["eom-check-n"])
        self._check = pn.widgets.Button(label="Check quality", color="primary",
                                        width=140, css_classes=["eom-check"])
        self._check.on_click(lambda _: s.check_quality(int(self._n.value)))
        self._info = pn.pane.HTML("", css_classes=["eom-check-info"])
        self._grid = ThumbGrid(self._act, css_classes=["eom-check-grid"], size=96,
                               sizing_mode="stretch_width",
                               empty_text="Check quality asks for a sample to verify.")
        self._thumbs = Thumbs(s)
        s.param.watch(lambda _: setattr(s, "check_ids", []), ["scores_version", "session"])
        s.param.watch(lambda _: self._refresh(), ["check_ids", "review_threshold"])
        self.param.watch(lambda _: self._refresh(), "shown")
        self._refresh()

    def _act(self, action: str | None, pid: int | None) -> None:
        if pid is None:
            return
        if action in ("yes", "no"):
            self.state.verify(int(pid), 1 if action == "yes" else -1)
        elif action == "skip":
            self.state.check_ids = [p for p in self.state.check_ids if p != int(pid)]
        elif action == "centre":
            s = self.state
            w = s.patch_windows([int(pid)])
            if w and s.product_id != w[0].product_id:
                s.product_id = w[0].product_id
            s.focus = None
            s.focus = int(pid)

    def _refresh(self) -> None:
        s = self.state
        left = len(s.check_ids)
        self._info.object = (
            f"The current positives score &ge; <b>{s.review_threshold:.2f}</b> (the Review "
            "slider). A stratified random sample: half among them, half among the others, "
            "more where positives hide; answers are kept out of training. "
            + (f"<b class='eom-check-left'>{left}</b> to answer." if left else ""))
        if not left and self._grid.items:
            self._grid.items = []
        elif left and self.shown:
            with s.work("thumbnails", quiet=True):
                self._grid.items = self._thumbs.items(list(s.check_ids))

    def __panel__(self) -> pn.Column:
        return pn.Column(pn.Row(self._n, self._check), self._info, self._grid,
                         sizing_mode="stretch_width", css_classes=["eom-quality-check"])
