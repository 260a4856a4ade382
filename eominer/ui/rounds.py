"""Rounds: Learn runs a round (the overlay and the grid update in place), Undo removes
this user's last label, a small chart shows labels and quality per round, and the line
under it the latest quality check (precision and recall of the current positives with
their 95 % intervals, as stored with the round: learning/quality_check.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import panel as pn
import param
from panel.viewable import Viewer

from eominer.ui.state import AppState, Soon
from eominer.ui.words import plural

if TYPE_CHECKING:
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    from eominer.store import RoundRecord


class RoundsView(Viewer):
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._learn = pn.widgets.Button(label="Learn (l)", color="primary", width=120,
                                        css_classes=["eom-learn"])
        self._undo = pn.widgets.Button(label="Undo last label (u)", width=160,
                                       css_classes=["eom-undo"])
        self._auto = pn.widgets.Checkbox.from_param(self.state.param.learn_on_label,
                                                    name="Learn after every label",
                                                    css_classes=["eom-auto-learn"])
        self._learn.on_click(lambda _: self.state.learn())
        self._undo.on_click(lambda _: self.state.undo())
        self._summary = pn.pane.HTML("", css_classes=["eom-rounds-summary"])
        self._source, self._fig = _chart()
        fig = self._fig
        self._chart = pn.pane.Bokeh(fig, height=170, sizing_mode="stretch_width",
                                    css_classes=["eom-rounds-chart"])
        self._quality = pn.pane.HTML("", css_classes=["eom-quality"])
        self._shown: list | None = None  # the rounds the chart shows
        # after the map's overlay has gone out (`Soon`): it reads the rounds from the store
        self.state.param.watch(Soon(self._render),
                               ["scores_version", "labels_version", "session",
                                "quality_version"])
        self._render()

    def _render(self) -> None:
        s = self.state
        if s.session is None:
            self._summary.object = "<i>no session yet</i>"
            self._quality.object = ""
            self._set_rounds([])
            return
        with s.work("rounds", quiet=True):
            rounds = s.session.rounds()
            ids, y = s.labelled()
            q = s.last_round.quality if s.last_round is not None else {}
            flip = q.get("flip_rate")
            self._quality.object = quality_line(rounds)
            self._summary.object = (
                f"<b>{len(rounds)}</b> {plural(len(rounds), 'round')}; your labels: "
                f"<b>{len(ids)}</b> "
                f"({int((y == 1).sum())} yes, {int((y == -1).sum())} no)"
                + (f"; ranking change {flip:.1%}" if flip is not None else "")
                + (f"<br><i>{q.get('advice')}</i>" if q.get("advice") else ""))
            self._set_rounds(rounds)

    def _set_rounds(self, rounds: list[RoundRecord]) -> None:
        """Replace the chart's data in place, only when the rounds changed (a label
        click does not redraw it; a new round sends a few numbers)."""
        key = [(r.round, r.n_labels, r.precision_estimate, r.recall_estimate,
                r.verified_n) for r in rounds]
        if key == self._shown:
            return
        self._shown = key
        # explicit ranges: Bokeh's data ranges of an empty chart (no session, no round
        # yet) are NaN, and BokehJS warns "could not set initial ranges" on every page
        steps = [r.round for r in rounds] or [1]
        self._fig.x_range.update(start=min(steps) - 0.5, end=max(steps) + 0.5)
        self._fig.y_range.update(start=0, end=max(10.0, 1.1 * max(
            (r.n_labels for r in rounds), default=0)))
        self._source.data = {
            "round": [r.round for r in rounds],
            "labels": [r.n_labels for r in rounds],
            # no estimate yet is a gap in the line, not a misleading 0 %
            "change": _percent([r.ranking_change for r in rounds]),
            "precision": _percent([r.precision_estimate for r in rounds]),
            "precision_low": _percent([r.precision_low for r in rounds]),
            "precision_high": _percent([r.precision_high for r in rounds]),
            "recall": _percent([r.recall_estimate for r in rounds]),
            "recall_low": _percent([r.recall_low for r in rounds]),
            "recall_high": _percent([r.recall_high for r in rounds]),
        }

    def __panel__(self) -> pn.Column:
        return pn.Column(pn.Row(self._learn, self._undo, self._auto), self._summary,
                         self._chart, self._quality, sizing_mode="stretch_width")


def quality_line(rounds: list[RoundRecord]) -> str:
    """The latest check: its round, threshold, answers, precision and recall with their
    intervals (in %, one decimal; the stored values, rounded)."""
    checked = [r for r in rounds if r.verified_n is not None]
    if not checked:
        return ("<i>no quality check yet: Quality &rarr; Check quality estimates precision "
                "and recall</i>")
    r = checked[-1]
    stale = r.round != rounds[-1].round
    return (f"<span class='eom-quality-round' data-round='{r.round}'>round {r.round}</span>"
            f" check (score &ge; {r.verify_threshold:.2f}, {r.verified_n} answers): "
            f"precision <b class='eom-precision'>{_interval(r.precision_estimate, r.precision_low, r.precision_high)}</b>, "
            f"recall <b class='eom-recall'>{_interval(r.recall_estimate, r.recall_low, r.recall_high)}</b>"
            + (f", ~{r.positives_estimate:.0f} positives in the scope"
               if r.positives_estimate is not None else "")
            + ("<br><i>the ranking changed since: check again</i>" if stale else ""))


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    from eominer.learning.quality_check import interval_text

    return interval_text(value, low, high)


def _percent(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else 100.0 * v for v in values], np.float64)


def _chart() -> tuple[ColumnDataSource, figure]:
    """Labels per round (left axis) and the quality estimates in % (right axis): one
    Bokeh figure per browser session whose data source is updated in place."""
    from bokeh.models import ColumnDataSource, Legend, LinearAxis, Range1d
    from bokeh.plotting import figure

    src = ColumnDataSource({k: [] for k in (
        "round", "labels", "change", "precision", "precision_low", "precision_high",
        "recall", "recall_low", "recall_high")})
    fig = figure(height=160, sizing_mode="stretch_width", toolbar_location=None,
                 tools="hover", x_axis_label="round", y_axis_label="labels",
                 x_range=Range1d(0.5, 1.5), y_range=Range1d(0, 10))
    fig.xaxis.ticker.min_interval = 1  # rounds are whole numbers
    fig.extra_y_ranges = {"pct": Range1d(0, 100)}
    fig.add_layout(LinearAxis(y_range_name="pct", axis_label="%"), "right")
    labels = fig.line("round", "labels", source=src, color="#1565c0", line_width=2)
    fig.scatter("round", "labels", source=src, color="#1565c0", size=5)
    change = fig.line("round", "change", source=src, color="#ef6c00", line_width=2,
                      y_range_name="pct")
    precision = fig.line("round", "precision", source=src, color="#2e7d32", line_width=2,
                         y_range_name="pct")
    # the checks' 95 % intervals as whiskers around their points
    fig.segment("round", "precision_low", "round", "precision_high", source=src,
                color="#2e7d32", line_width=6, alpha=0.3, y_range_name="pct")
    fig.scatter("round", "precision", source=src, color="#2e7d32", size=6, y_range_name="pct")
    recall = fig.line("round", "recall", source=src, color="#6a1b9a", line_width=2,
                      y_range_name="pct")
    fig.segment("round", "recall_low", "round", "recall_high", source=src, color="#6a1b9a",
                line_width=6, alpha=0.3, y_range_name="pct")
    fig.scatter("round", "recall", source=src, color="#6a1b9a", size=6, y_range_name="pct")
    fig.hover.tooltips = [("round", "@round"), ("labels", "@labels"),
                          ("ranking change", "@change{0.0} %"),
                          ("precision", "@precision{0.0} % (@precision_low{0.0}-@precision_high{0.0})"),
                          ("recall", "@recall{0.0} % (@recall_low{0.0}-@recall_high{0.0})")]
    # one line above the plot: inside it, the legend hid the lines it names
    fig.add_layout(Legend(items=[("labels", [labels]), ("ranking change %", [change]),
                                 ("precision %", [precision]), ("recall %", [recall])],
                          orientation="horizontal", location="center", margin=0, padding=2,
                          spacing=12, label_text_font_size="10px", label_height=12,
                          glyph_height=10, border_line_alpha=0), "above")
    return src, fig
