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


def test_rounds_on_the_answers_of_the_round_before_do_not_count():
    from types import SimpleNamespace as R

    from eominer.learning.quality import stability_evidence

    a, b = ((1, 1), (2, -1)), ((1, 1), (2, -1), (3, -1))
    rounds = [R(labels=a, ranking_change=None), R(labels=a, ranking_change=0.0),
              R(labels=b, ranking_change=0.004), R(labels=b, ranking_change=0.0),
              R(labels=None, ranking_change=0.3), R(labels=None, ranking_change=0.2)]
    assert stability_evidence(rounds) == [None, 0.004, 0.3, 0.2]
    assert suggest_stop(stability_evidence(rounds[:4]), None)[0] is False
    assert suggest_stop([r.ranking_change for r in rounds[:4]], None)[0] is True  # before
    assert suggest_stop([None, 0.004], None) == (
        False, "0.4% of patches flipped last round: 1 more round(s) with new answers like "
        "it to call the ranking stable")
    assert suggest_stop([0.3, 0.2], None)[1] == \
        "ranking still changing: 20.0% of patches flipped last round"
