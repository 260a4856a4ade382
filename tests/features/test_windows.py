"""features/windows.py: the window gatherer under the descriptors."""

from __future__ import annotations

import numpy as np

from eominer.features.windows import grid_windows, window_cells


def test_window_cells_on_and_off_the_grid() -> None:
    a = np.arange(2 * 8 * 12, dtype=np.float32).reshape(2, 8, 12)
    w = np.array([[4, 8, 4, 4], [0, 0, 4, 4], [1, 3, 4, 4], [2, 2, 2, 3]])
    got = {}
    for idx, cells in window_cells(a, w):
        for i, c in zip(idx, cells):
            got[int(i)] = c
    for i, (y, x, h, wd) in enumerate(w):
        np.testing.assert_array_equal(got[i], a[:, y:y + h, x:x + wd].reshape(2, -1))
    assert grid_windows((8, 12), 4).tolist()[:2] == [[0, 0, 4, 4], [0, 4, 4, 4]]
