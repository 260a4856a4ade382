"""Patch grid: the batch the model asks about, as thumbnails with yes / no / skip, and
a second tab with the current top results. Clicking a thumbnail centres the map on it.

Keys (when no text field has the focus): y yes, n no, s skip (for the highlighted
thumbnail), arrows or j/k move the highlight, l learn, u undo, f false colour.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import panel as pn
import param
from panel.custom import JSComponent
from panel.viewable import Viewer

from eominer.errors import ProductReadError
from eominer.ui.state import AppState, Soon
from eominer.ui.thumbnails import patch_thumbnails

_ESM = """
const KEYS = {y: 'yes', n: 'no', s: 'skip', l: 'learn', u: 'undo', f: 'false'}

export function render({model, el, view}) {
  let active = 0
  let offline = false
  // answers sent but not yet confirmed by the server: shown as such, never as done
  const pending = new Set()
  const draw = () => {
    const items = model.items
    if (active >= items.length) active = Math.max(0, items.length - 1)
    el.innerHTML = items.length ? '' : `<div class="eom-empty">${model.empty_text}</div>`
    const wrap = document.createElement('div')
    wrap.className = 'eom-grid'
    wrap.style.cssText = 'display:flex;flex-wrap:wrap;gap:8px'
    items.forEach((it, i) => {
      const card = document.createElement('div')
      const wait = pending.has(it.id)
      card.className = 'eom-card' + (i === active && model.keyboard ? ' eom-active' : '')
        + (wait ? (offline ? ' eom-unsaved' : ' eom-pending') : '')
      card.dataset.id = it.id
      const ring = i === active && model.keyboard ? '#1565c0' :
        (it.label === 1 ? '#00c853' : (it.label === -1 ? '#ff1744' : '#ccc'))
      card.style.cssText = `border:3px solid ${ring};border-radius:4px;padding:3px;width:${model.size + 6}px;font:11px sans-serif` + (wait ? ';opacity:0.6' : '')
      const score = it.score === null || it.score === undefined ? '' : ` ${it.score.toFixed(2)}`
      const note = !wait ? '' : (offline ? ' <b class="eom-note" style="color:#b3261e">not saved</b>'
                                         : ' <i class="eom-note">saving…</i>')
      card.innerHTML = `<img class="eom-thumb" src="${it.src}" width="${model.size}" height="${model.size}" style="cursor:pointer;display:block" title="patch ${it.id}: click to centre the map">`
        + `<div>#${it.id}${score}${note}</div>`
        + (model.buttons ? `<div style="display:flex;gap:2px">`
          + `<button class="eom-yes" data-act="yes" style="flex:1">yes</button>`
          + `<button class="eom-no" data-act="no" style="flex:1">no</button>`
          + `<button class="eom-skip" data-act="skip" style="flex:1">skip</button></div>` : '')
      wrap.appendChild(card)
    })
    el.appendChild(wrap)
  }
  const send = (act, id) => {
    if (offline) return
    model.send_msg({action: act, id: id})  // first: redrawing the cards takes ~20 ms
    if ((act === 'yes' || act === 'no') && id !== null) { pending.add(id); draw() }
  }
  draw()
  model.on('items', draw)
  model.on('msg:custom', (msg) => { if (pending.delete(msg.done)) draw() })
  view.model.document.on_event('connection_lost', () => { offline = true; draw() })
  el.addEventListener('click', (e) => {
    const card = e.target.closest('.eom-card')
    if (!card) return
    send(e.target.dataset.act || 'centre', Number(card.dataset.id))
  })
  if (model.keyboard) {
    const onKey = (e) => {
      // only while this grid is on screen (Bokeh hides inactive tabs with visibility:
      // hidden), not from the Scope, Publish or SQL tab
      if (!el.checkVisibility({visibilityProperty: true})) return
      const t = e.composedPath()[0]
      if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' ||
                t.isContentEditable || (t.closest && t.closest('.ace_editor')))) return
      if (e.ctrlKey || e.metaKey || e.altKey) return
      const items = model.items
      if (['ArrowRight', 'ArrowDown', 'j'].includes(e.key)) { active = Math.min(active + 1, items.length - 1); draw(); e.preventDefault(); return }
      if (['ArrowLeft', 'ArrowUp', 'k'].includes(e.key)) { active = Math.max(active - 1, 0); draw(); e.preventDefault(); return }
      const act = KEYS[e.key]
      if (!act) return
      const it = items[active]
      send(act, it ? it.id : null)
      e.preventDefault()
    }
    document.addEventListener('keydown', onKey)
    return () => document.removeEventListener('keydown', onKey)
  }
}
"""


class ThumbGrid(JSComponent):
    """Thumbnails with answer buttons; sends {action, id} to Python."""

    items = param.List(default=[])
    size = param.Integer(default=112)
    buttons = param.Boolean(default=True)
    keyboard = param.Boolean(default=False)
    empty_text = param.String(default="")
    _esm = _ESM

    def __init__(self, on_action: Callable[[str | None, int | None], None],
                 **params: Any) -> None:
        super().__init__(**params)
        self._on_action = on_action

    def _handle_msg(self, msg: dict[str, Any]) -> None:
        try:
            self._on_action(msg.get("action"), msg.get("id"))
        finally:  # the browser shows an answer as saving... until this arrives
            self._send_msg({"done": msg.get("id")})


class PatchGridView(Viewer):
    state = param.ClassSelector(class_=AppState)
    false_colour = param.Boolean(default=False, label="False colour")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._batch = ThumbGrid(self._act, keyboard=True, css_classes=["eom-batch"],
                                sizing_mode="stretch_width",
                                empty_text="No questions yet: start a session in Scope.")
        self._top = ThumbGrid(self._act, buttons=True, css_classes=["eom-top"],
                              sizing_mode="stretch_width",
                              empty_text="No ranking yet: label some patches and Learn.")
        self._thumbs: dict[tuple[int, bool], str] = {}
        # drawn after the map's overlay has gone out (`Soon`), once per click
        self.state.param.watch(Soon(self._render_batch), ["batch", "labels_version"])
        self.state.param.watch(Soon(self._render_top), ["top", "labels_version"])
        self.param.watch(lambda _: (self._render_batch(), self._render_top()), "false_colour")
        self._tabs = pn.Tabs(("Next batch", self._batch), ("Top results", self._top),
                             dynamic=False, sizing_mode="stretch_width")
        self._tabs.param.watch(lambda _: self._render_top(), "active")

    def _act(self, action: str | None, pid: int | None) -> None:
        s = self.state
        if action == "learn":
            s.learn()
        elif action == "undo":
            s.undo()
        elif action == "false":
            self.false_colour = not self.false_colour
        elif pid is None:
            return
        elif action == "yes":
            s.label(int(pid), 1)
        elif action == "no":
            s.label(int(pid), -1)
        elif action == "skip":
            s.skip(int(pid))
        elif action == "centre":
            if s.product_id != self._product_of(int(pid)):
                s.product_id = self._product_of(int(pid))
            s.focus = None
            s.focus = int(pid)

    def _product_of(self, pid: int) -> str:
        w = self.state.patch_windows([pid])
        return w[0].product_id if w else self.state.product_id

    def _items(self, ids: list[int]) -> list[dict]:
        s = self.state
        if not ids:
            return []
        fc = self.false_colour
        need = [i for i in ids if (i, fc) not in self._thumbs]
        if need:
            by_product: dict[str, list[tuple[int, tuple[int, int, int]]]] = {}
            for pid, win in zip(need, s.patch_windows(need)):
                by_product.setdefault(win.product_id, []).append((pid, win.square))
            for prod, entries in by_product.items():
                product = s.store.product(prod)
                if product is None:
                    raise ProductReadError(f"product {prod} is no longer in {s.store.url}: "
                                           "re-ingest it")
                urls = patch_thumbnails(product, [w for _, w in entries], fc)
                for (pid, _), url in zip(entries, urls):
                    self._thumbs[(pid, fc)] = url
        lab_ids, lab = s.labelled()
        mine = dict(zip(lab_ids.tolist(), lab.tolist()))
        scores = s.scores_of(ids)
        return [{"id": int(i), "src": self._thumbs[(i, fc)], "label": mine.get(int(i)),
                 "score": sc} for i, sc in zip(ids, scores)]

    def _render_batch(self) -> None:
        with self.state.work("thumbnails", quiet=True):
            self._batch.items = self._items(list(self.state.batch))

    def _render_top(self) -> None:
        """Drawn only while its tab is shown (and when it is opened): a label click does
        not wait for 24 hidden thumbnails."""
        if self._tabs.active != 1:
            return
        with self.state.work("thumbnails", quiet=True):
            self._top.items = self._items(list(self.state.top)[:24])

    def __panel__(self) -> pn.Column:
        return pn.Column(
            pn.FlexBox(pn.widgets.Checkbox.from_param(self.param.false_colour),
                   pn.pane.HTML('<small>keys: <b>y</b> yes, <b>n</b> no, <b>s</b> skip, '
                                '&larr;&rarr; move, <b>l</b> learn, <b>u</b> undo, '
                                '<b>f</b> false colour; click a thumbnail to centre the map'
                                '</small>'), sizing_mode="stretch_width"),
            self._tabs, sizing_mode="stretch_width")
