"""eominer.ui.mapview without a browser."""

from __future__ import annotations


def test_outline_columns_carry_colour_strings():
    from eominer.ui.mapview import _rect_data

    rects = [(0.0, 1.0, 2.0, 3.0, "#00c853"), (4.0, 5.0, 6.0, 7.0, "#ff1744")]
    data = _rect_data(rects, ["left", "bottom", "right", "top", "line_color"])
    assert data == {"left": [0.0, 4.0], "bottom": [1.0, 5.0], "right": [2.0, 6.0],
                    "top": [3.0, 7.0], "line_color": ["#00c853", "#ff1744"]}
