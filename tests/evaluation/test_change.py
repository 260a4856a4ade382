"""The change evaluator on OSCD: per-city results pooled into 'overall'."""

from __future__ import annotations

import pytest

from eominer.errors import ConfigError, ProductReadError
from eominer.evaluation.change import evaluate


def test_one_city_pools_into_overall(oscd_root) -> None:
    seen = []
    results, overall = evaluate(oscd_root, ["bercy"], ["cva"], progress=seen.append)
    (r,) = results
    assert seen == results and r.city == "bercy" and r.method == "cva"
    assert r.scores.n == 395 * 360 and 0 <= r.masked_fraction < 0.5
    o = overall["cva"]
    assert (o.tp, o.fp, o.fn, o.tn) == (r.scores.tp, r.scores.fp, r.scores.fn, r.scores.tn)
    assert o.auprc == pytest.approx(r.scores.auprc)
    assert r.scores.auprc > 1046 / (395 * 360)  # better than chance


def test_unknown_city_and_method_are_named(oscd_root) -> None:
    with pytest.raises(ProductReadError, match="no labels for atlantis under .*known cities"):
        evaluate(oscd_root, ["atlantis"], ["cva"])
    with pytest.raises(ConfigError, match="unknown change method 'pca'"):
        evaluate(oscd_root, ["bercy"], ["pca"])
