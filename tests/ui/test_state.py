"""eominer.ui.state without a browser."""

from __future__ import annotations

import numpy as np


def test_top_rows_match_a_full_sort():
    from eominer.ui.state import top_rows

    rng = np.random.default_rng(3)
    scores = rng.random(100_000).astype(np.float32)
    assert top_rows(scores, 40).tolist() == np.argsort(-scores, kind="stable")[:40].tolist()
    assert top_rows(scores[:5], 40).tolist() == np.argsort(-scores[:5])[:5].tolist()
    assert top_rows(np.empty(0, np.float32), 40).size == 0
