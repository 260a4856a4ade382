"""The change evaluator on OSCD: per-city results pooled into 'overall'."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import ConfigError, ProductReadError
from eominer.evaluation.change import CityResult, chosen_elsewhere, evaluate
from eominer.evaluation.change_metrics import from_confusion


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


def test_each_city_gets_the_method_that_did_best_on_the_others(oscd_root) -> None:
    cities = ["bercy", "paris", "saclay_e"]
    results, overall = evaluate(oscd_root, cities, ["cva", "irmad"])
    picks, s = chosen_elsewhere(results)
    counts = {(r.city, r.method): np.array([r.scores.tp, r.scores.fp, r.scores.fn,
                                            r.scores.tn]) for r in results}
    total = np.zeros(4, dtype=np.int64)
    for city in cities:
        f1 = {}
        for m in ("cva", "irmad"):
            tp, fp, fn, _ = sum(counts[c, m] for c in cities if c != city)
            f1[m] = 2 * tp / (2 * tp + fp + fn)
        assert picks[city] == max(f1, key=f1.get)
        total += counts[city, picks[city]]
    assert (s.tp, s.fp, s.fn, s.tn) == tuple(int(v) for v in total)
    # the same changed pixels, whichever map scores them
    assert s.tp + s.fn == overall["cva"].tp + overall["cva"].fn
    assert np.isnan(s.auprc)
    # Otsu's maps never beat the best threshold, in a city or pooled
    assert all(r.scores.f1 <= r.scores.f1_bound for r in results)
    for m, o in overall.items():
        assert o.f1 <= o.f1_bound
        # pooled, at least the lowest city's best (a ratio of sums lies between its parts)
        assert o.f1_bound >= min(r.scores.f1_bound for r in results if r.method == m)


def test_a_city_is_never_scored_with_its_own_best_method() -> None:
    """Method b wins in city z only (60 hits against 40); a wins on the other cities,
    so z is scored with a."""
    def result(city: str, method: str, tp: int, fp: int) -> CityResult:
        return CityResult(city, method, from_confusion(tp, fp, 100 - tp, 1000, 0.5), 0.5,
                          0.0, 0.0)
    results = [result("x", "a", 80, 20), result("x", "b", 40, 60),
               result("y", "a", 70, 30), result("y", "b", 30, 70),
               result("z", "a", 40, 60), result("z", "b", 60, 40)]
    picks, s = chosen_elsewhere(results)
    assert picks == {"x": "a", "y": "a", "z": "a"}
    assert (s.tp, s.fp, s.fn) == (80 + 70 + 40, 20 + 30 + 60, 20 + 30 + 60)
    with pytest.raises(ValueError, match="two cities or more"):
        chosen_elsewhere(results[:2])
