"""eominer.learning.verification against brute force: synthetic populations with a known
truth, the whole design (strata, allocation, stratified sample, estimate) repeated over
400 seeds. Precision is unbiased, the totals of positives are unbiased, recall is close
to unbiased where the sample is large enough, and the 95 % intervals cover the truth in
90-99 % of the repetitions."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.learning import verification as v

REPS = 400


def population(seed: int, n: int, a: float, b: float, calib, n_known: int):
    """Scores ~ Beta(a, b); truth ~ Bernoulli(calib(score)); `n_known` patches labelled."""
    rng = np.random.default_rng(seed)
    s = rng.beta(a, b, n)
    y = rng.random(n) < np.clip(calib(s), 0.0, 1.0)
    known = np.zeros(n, bool)
    known[rng.choice(n, n_known, replace=False)] = True
    return s, y, known


POPULATIONS = {
    # calibrated scores, most positives hidden below the threshold (recall ~0.12)
    "calibrated": (population(1, 5000, 0.5, 4, lambda s: s, 30), 0.5, 40),
    # a step: rare positives (1 %) far below the threshold, many near it
    "step": (population(3, 5000, 1, 6, lambda s: np.where(s > 0.3, 0.8, 0.01), 30), 0.5, 40),
    # high recall, many predicted positives, another threshold and sample size
    "high_recall": (population(4, 2000, 2, 2, lambda s: s ** 2, 50), 0.4, 60),
}


def repeat(pop, t: float, n: int) -> dict:
    s, y, known = pop
    h = v.stratum_of(s, t)
    frame = ~known
    sizes = [int((frame & (h == i)).sum()) for i in range(4)]
    means = [float(s[frame & (h == i)].mean()) for i in range(4)]
    alloc = v.allocate(sizes, means, n)
    est, cover, totals = [], [], []
    for r in range(REPS):
        rows = v.draw(h, frame, alloc, np.random.default_rng(1000 + r))
        sampled = np.zeros(len(s), bool)
        sampled[rows] = True
        e = v.estimate(v.tally(s, t, known, y, sampled, y), draws=2000, seed=r)
        est.append((e.precision, e.recall))
        totals.append(e.positives)
        cover.append((e.precision_low, e.precision_high, e.recall_low, e.recall_high))
    pred = s >= t
    truth_p, truth_r = y[pred].mean(), y[pred].sum() / y.sum()
    c = np.asarray(cover)
    return {"alloc": alloc, "est": np.asarray(est), "totals": np.asarray(totals),
            "truth": (truth_p, truth_r, int(y.sum())),
            "cover_p": float(np.mean((c[:, 0] <= truth_p) & (truth_p <= c[:, 1]))),
            "cover_r": float(np.mean((c[:, 2] <= truth_r) & (truth_r <= c[:, 3])))}


@pytest.mark.parametrize("name", list(POPULATIONS))
def test_unbiased_and_covering(name):
    pop, t, n = POPULATIONS[name]
    out = repeat(pop, t, n)
    truth_p, truth_r, positives = out["truth"]
    assert out["alloc"].sum() == n
    # precision: an unbiased estimate (its standard error over 400 reps is < 0.005)
    assert abs(out["est"][:, 0].mean() - truth_p) < 0.015, (out["est"][:, 0].mean(), truth_p)
    # the estimated number of positives in the scope: unbiased (within 3 standard errors)
    se = out["totals"].std() / np.sqrt(REPS)
    assert abs(out["totals"].mean() - positives) < 3 * se + 1, (out["totals"].mean(), positives)
    # 95 % intervals: measured 94.0-94.8 % for precision, 94.8-95.8 % for recall
    assert 0.90 <= out["cover_p"] <= 0.99, out["cover_p"]
    assert 0.90 <= out["cover_r"] <= 0.99, out["cover_r"]
    if name == "high_recall":  # a ratio estimator: unbiased within 0.02 with enough sample
        assert abs(out["est"][:, 1].mean() - truth_r) < 0.02, (out["est"][:, 1].mean(), truth_r)
    else:  # rare positives in large strata: the ratio's small-sample bias stays < 0.07
        assert abs(out["est"][:, 1].mean() - truth_r) < 0.07, (out["est"][:, 1].mean(), truth_r)


def test_allocation_and_strata():
    s = np.asarray([0.9, 0.5, 0.49, 0.25, 0.2, 0.0625, 0.01])
    assert v.stratum_of(s, 0.5).tolist() == [0, 0, 1, 1, 2, 2, 3]
    # half to the positives, the floor of 2 per negative stratum, the rest by N * sd
    a = v.allocate([100, 300, 300, 3000], [0.7, 0.35, 0.15, 0.01], 40)
    assert a.tolist()[0] == 20 and a.sum() == 40 and (a[1:] >= 2).all()
    assert v.allocate([3, 1, 0, 5], [0.7, 0.4, np.nan, 0.01], 40).tolist() == [3, 1, 0, 5]
    assert v.allocate([0, 10, 10, 10], [np.nan, 0.3, 0.1, 0.01], 6).sum() == 6
    rows = v.draw(v.stratum_of(s, 0.5), np.ones(7, bool), [1, 1, 1, 1],
                  np.random.default_rng(0))
    assert sorted(v.stratum_of(s, 0.5)[rows].tolist()) == [0, 1, 2, 3]


def test_census_and_bad_input():
    # everything known: exact values, zero-width intervals
    strata = [v.Stratum("labelled_positive", 10, 10, 8, True),
              v.Stratum("labelled_negative", 90, 90, 2, False)]
    e = v.estimate(strata)
    assert (e.precision, e.precision_low, e.precision_high) == (0.8, 0.8, 0.8)
    assert (e.recall, e.recall_low, e.recall_high) == (0.8, 0.8, 0.8)
    # the same labels give the same interval (fixed seed)
    sampled = [v.Stratum("positive", 50, 10, 7, True), v.Stratum("far", 500, 10, 1, False)]
    assert v.estimate(sampled) == v.estimate(sampled)
    e = v.estimate(sampled)
    assert e.precision == pytest.approx(0.7) and e.positives == pytest.approx(85.0)
    assert e.recall == pytest.approx(35 / 85)
    assert e.precision_low < 0.7 < e.precision_high and e.recall_low < e.recall < e.recall_high
    assert e.verified == 20
    # a sampled stratum answered whole (2 positives left, both asked) is every answer of
    # the check too; the labelled strata are not
    e = v.estimate([v.Stratum("labelled_positive", 10, 10, 8, True),
                    v.Stratum("positive", 2, 2, 2, True), v.Stratum("far", 500, 18, 1, False)])
    assert e.verified == 20 and e.precision == pytest.approx(10 / 12)
    with pytest.raises(ValueError, match="no answer yet in the strata far"):
        v.estimate([v.Stratum("positive", 50, 10, 7, True), v.Stratum("far", 500, 0, 0, False)])
    with pytest.raises(ValueError, match="need 0 <= positives"):
        v.Stratum("far", 5, 6, 1, False)
    # no current positive: precision undefined; no positive anywhere: recall undefined
    e = v.estimate([v.Stratum("far", 500, 10, 0, False)])
    assert e.precision is None and e.recall is None
