"""Rounds: Learn runs a round (the overlay and the grid update in place), Undo removes
this user's last label, a small chart shows labels and quality per round."""

from __future__ import annotations

import panel as pn
import param
from panel.viewable import Viewer

from eominer.ui.state import AppState


class RoundsView(Viewer):
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._learn = pn.widgets.Button(name="Learn (l)", button_type="primary", width=120,
                                        css_classes=["eom-learn"])
        self._undo = pn.widgets.Button(name="Undo last label (u)", width=160,
                                       css_classes=["eom-undo"])
        self._auto = pn.widgets.Checkbox.from_param(self.state.param.learn_on_label,
                                                    name="Learn after every label")
        self._learn.on_click(lambda _: self.state.learn())
        self._undo.on_click(lambda _: self.state.undo())
        self._summary = pn.pane.HTML("", css_classes=["eom-rounds-summary"])
        self._chart = pn.pane.HoloViews(None, height=170, sizing_mode="stretch_width")
        self.state.param.watch(lambda _: self._render(),
                               ["scores_version", "labels_version", "session"])
        self._render()

    def _render(self) -> None:
        import holoviews as hv

        s = self.state
        if s.session is None:
            self._summary.object = "<i>no session yet</i>"
            self._chart.object = None
            return
        with s.work("rounds", quiet=True):
            rounds = s.session.rounds()
            ids, y = s.labelled()
            q = s.last_round.quality if s.last_round is not None else {}
            flip = q.get("flip_rate")
            prec = q.get("precision")
            self._summary.object = (
                f"<b>{len(rounds)}</b> rounds; your labels: <b>{len(ids)}</b> "
                f"({int((y == 1).sum())} yes, {int((y == -1).sum())} no)"
                + (f"; ranking change {flip:.1%}" if flip is not None else "")
                + (f"; precision estimate {prec:.0%}" if prec is not None else "")
                + (f"<br><i>{q.get('advice')}</i>" if q.get("advice") else ""))
            if rounds:
                xs = [r["round"] for r in rounds]
                labels = hv.Curve((xs, [r["n_labels"] for r in rounds]), "round", "labels",
                                  label="labels").opts(color="#1565c0")
                change = hv.Curve((xs, [(r["ranking_change"] or 0.0) * 100 for r in rounds]),
                                  "round", "labels", label="ranking change %").opts(
                    color="#ef6c00")
                precision = hv.Curve(
                    (xs, [(r["precision_estimate"] or 0.0) * 100 for r in rounds]),
                    "round", "labels", label="precision estimate %").opts(color="#2e7d32")
                self._chart.object = (labels * change * precision).opts(
                    hv.opts.Curve(responsive=True, height=160, tools=["hover"],
                                  show_grid=True),
                    hv.opts.Overlay(legend_position="top_left"))

    def __panel__(self):
        return pn.Column(pn.Row(self._learn, self._undo, self._auto), self._summary,
                         self._chart, sizing_mode="stretch_width")
