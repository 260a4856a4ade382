"""eominer.learning.quality: the estimates a user reads to decide when to stop."""

from __future__ import annotations

import numpy as np

from eominer.learning.quality import precision_estimate, ranking_change, suggest_stop


def test_quality_estimates():
    a = np.asarray([0.1, 0.6, 0.7, 0.2], np.float32)
    b = np.asarray([0.5, 0.1, 0.7, 0.2], np.float32)
    ch = ranking_change(a, b, k=2)
    assert ch["flip_rate"] == 0.5 and ch["topk_overlap"] == 0.5
    p = precision_estimate(np.asarray([1, 1, 1, -1]))
    assert p["precision"] == 0.75 and 0.3 < p["precision_low"] < 0.75 < p["precision_high"]
    assert suggest_stop([0.2, 0.005, 0.004], 0.9)[0] is True
    assert suggest_stop([0.2, 0.005, 0.004], 0.5)[0] is False
    assert suggest_stop([0.005, 0.2], None)[0] is False
