"""How good is the ranking: precision and recall from a stratified verification sample.

Pure functions (numpy in, numbers out); the session side is `learning/quality_check.py`.

The population is the session's scope, every patch scored by one round. The *current
positives* are the patches whose score is at least a threshold `t`. The truth of a patch
is the analyst's answer. Patches whose answer is already known (any label, training or
verification) form two *census* strata (predicted positive / negative), counted in full.
The others are cut into sampled strata by score:

| stratum | scores | why |
|---|---|---|
| `positive` | s >= t | precision is their share of true positives |
| `near` | t/2 <= s < t | the negatives where positives hide most |
| `middle` | t/8 <= s < t/2 | |
| `far` | s < t/8 | the bulk: few positives each, many patches |

Sample sizes (`allocate`): half the sample (rounded up) goes to `positive`, which alone
decides the precision; the other half to the negative strata in proportion to
N_h * sqrt(p_h (1 - p_h)) (Neyman allocation for the total of positives, with the mean
score of the stratum, clipped to [0.02, 0.98], as the guess p_h of its share of
positives), at least 2 per non-empty stratum, never more than the stratum holds.
Each stratum is then a simple random sample without replacement (`draw`).

Estimates (`estimate`): with N_h patches in stratum h, n_h answered and y_h yes,
- estimated positives in h: T_h = N_h * y_h / n_h (exact for a census stratum);
- precision = sum over the predicted-positive strata of T_h / their N_h: unbiased;
- recall = (sum of T_h over the predicted-positive strata) / (sum of T_h over all
  strata): a ratio of two unbiased totals (consistent; its small-sample bias is that of
  a ratio estimator).
95 % intervals: stratified beta-binomial simulation with the finite-population
correction. In each sampled stratum the share of positives p_h is drawn from the Jeffreys
posterior Beta(y_h + 1/2, n_h - y_h + 1/2) and its N_h - n_h unseen patches hold
Binomial(N_h - n_h, p_h) positives; census strata are fixed. The lower bound is the 2.5 %
quantile of `draws` joint draws (fixed seed: the same labels give the same interval), the
upper bound the 97.5 % quantile of a second set. As in the modified Jeffreys interval
(Brown, Cai & DasGupta 2001, where L(0) = L(1) = 0 and U(n-1) = U(n) = 1), a stratum with
at most one answer on the side a bound moves it towards is drawn from Beta(y, n - y + 1)
(p = 0 when y = 0) for that bound, resp. Beta(y + 1, n - y) (p = 1 when y = n): for the
lower bound of precision and recall the predicted-positive strata move down and the
others up, for the upper bound the reverse. Without that, one positive found among four
answers of a stratum of 1600 patches put the whole recall interval below the truth: the
simulation's coverage fell to 87 %. Bounds are widened where needed to hold the point
estimate. Coverage measured by tests/learning/test_verification.py: 94-96 % for both
(docs/learning.md, "How good is it").

Assumptions: the answers are the truth (one analyst's judgement, no noise model); the
strata are fixed before the sample is drawn (one threshold per round); unanswered sample
patches are missing at random (the sample is shown in random order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SAMPLED = ("positive", "near", "middle", "far")
CENSUS = ("labelled_positive", "labelled_negative")
EDGES = (1.0 / 8.0, 1.0 / 2.0)  # the negative bins, as fractions of the threshold
MIN_PER_STRATUM = 2
P_CLIP = (0.02, 0.98)


@dataclass(frozen=True)
class Stratum:
    """One stratum of the verification design: `size` patches (N_h), `answered` of
    them verified (n_h), `positives` of those answered yes (y_h). `predicted` says its
    patches are current positives (score >= threshold)."""

    name: str
    size: int
    answered: int
    positives: int
    predicted: bool

    def __post_init__(self) -> None:
        if not 0 <= self.positives <= self.answered <= self.size:
            raise ValueError(f"stratum {self.name}: need 0 <= positives ({self.positives}) "
                             f"<= answered ({self.answered}) <= size ({self.size})")

    @property
    def census(self) -> bool:
        return self.answered == self.size

    @property
    def total(self) -> float:
        """Estimated positives in the stratum (N_h * y_h / n_h)."""
        return self.size * self.positives / self.answered if self.answered else math.nan


@dataclass(frozen=True)
class Estimate:
    """Precision and recall of the current positives with 95 % intervals (None where
    undefined: no current positive, or no positive at all)."""

    precision: float | None
    precision_low: float | None
    precision_high: float | None
    recall: float | None
    recall_low: float | None
    recall_high: float | None
    verified: int          # sampled patches answered (the labelled strata not counted)
    predicted_positive: int  # N of the current positives
    positives: float       # estimated positives in the whole scope

    def as_dict(self) -> dict[str, float | int | None]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def stratum_of(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Index into SAMPLED of every score: 0 positive, 1 near, 2 middle, 3 far."""
    s = np.asarray(scores, np.float64)
    t = float(threshold)
    out = np.full(len(s), 3, np.int8)
    out[s >= EDGES[0] * t] = 2
    out[s >= EDGES[1] * t] = 1
    out[s >= t] = 0
    return out


def allocate(sizes: Sequence[int], mean_scores: Sequence[float], n: int) -> np.ndarray:
    """Sample size per SAMPLED stratum for a sample of `n` (see the module's table)."""
    N = np.asarray(sizes, np.int64)
    if len(N) != len(SAMPLED):
        raise ValueError(f"expected {len(SAMPLED)} strata sizes, got {len(N)}")
    n = int(min(max(n, 0), N.sum()))
    out = np.zeros(len(N), np.int64)
    out[0] = min(N[0], math.ceil(n / 2))
    rest = n - out[0]
    neg = np.arange(1, len(N))
    p = np.clip(np.nan_to_num(np.asarray(mean_scores, np.float64)[neg], nan=0.5), *P_CLIP)
    weight = N[neg] * np.sqrt(p * (1 - p))
    # the floor first, then the rest in proportion (largest remainder), capped at N_h
    floor = np.minimum(N[neg], MIN_PER_STRATUM)
    if floor.sum() > rest:  # too small a sample for the floor: one each, largest first
        floor = np.zeros_like(floor)
        for i in np.argsort(-weight, kind="stable")[:rest]:
            floor[i] = min(1, N[neg][i])
    out[neg] = floor
    rest -= int(floor.sum())
    while rest > 0:
        room = N[neg] - out[neg]
        w = np.where(room > 0, weight, 0.0)
        if w.sum() <= 0:
            w = (room > 0).astype(np.float64)
        if w.sum() <= 0:
            break
        share = rest * w / w.sum()
        add = np.minimum(np.floor(share).astype(np.int64), room)
        if add.sum() == 0:  # the remainder: one to the largest share with room
            i = int(np.argmax(np.where(room > 0, share, -1.0)))
            add[i] = 1
        out[neg] += add
        rest -= int(add.sum())
    if rest > 0:  # negatives exhausted: the positive stratum takes what is left
        out[0] = min(N[0], out[0] + rest)
    return out


def draw(strata: np.ndarray, frame: np.ndarray, sizes: Sequence[int],
         rng: np.random.Generator) -> np.ndarray:
    """Rows of a stratified simple random sample: `sizes[h]` rows without replacement
    from the rows of stratum h where `frame` is true; returned in random order (an
    analyst who stops early leaves a random part unanswered)."""
    strata = np.asarray(strata)
    frame = np.asarray(frame, bool)
    picked = []
    for h, k in enumerate(sizes):
        rows = np.flatnonzero(frame & (strata == h))
        k = int(min(k, len(rows)))
        if k:
            picked.append(rng.choice(rows, size=k, replace=False))
    out = np.concatenate(picked) if picked else np.empty(0, np.int64)
    return rng.permutation(out).astype(np.int64)


def tally(scores: np.ndarray, threshold: float, known: np.ndarray, known_yes: np.ndarray,
          sampled: np.ndarray, sampled_yes: np.ndarray) -> list[Stratum]:
    """The strata of a design from per-patch facts (arrays aligned with `scores`):
    `known` patches (truth known before the sample: census, truth `known_yes`) and
    `sampled` ones (answered in the sample, `sampled_yes`). The rest are unanswered."""
    h = stratum_of(scores, threshold)
    known = np.asarray(known, bool)
    sampled = np.asarray(sampled, bool) & ~known
    pred = h == 0
    out = [Stratum(name, int((known & m).sum()), int((known & m).sum()),
                   int((known & m & np.asarray(known_yes, bool)).sum()), p)
           for name, m, p in ((CENSUS[0], pred, True), (CENSUS[1], ~pred, False))]
    yes = np.asarray(sampled_yes, bool)
    for i, name in enumerate(SAMPLED):
        m = (h == i) & ~known
        out.append(Stratum(name, int(m.sum()), int((m & sampled).sum()),
                           int((m & sampled & yes).sum()), i == 0))
    return [s for s in out if s.size > 0]


def estimate(strata: Sequence[Stratum], level: float = 0.95, draws: int = 20_000,
             seed: int = 0) -> Estimate:
    """Precision and recall of the predicted-positive strata, with `level` intervals
    (module docstring). Raises ValueError when a non-empty stratum has no answer: its
    share of positives is then unknown."""
    strata = [s for s in strata if s.size > 0]
    empty = [s.name for s in strata if s.answered == 0]
    if empty:
        raise ValueError(f"no answer yet in the strata {', '.join(empty)}: answer at least "
                         "one patch of each")
    pred = [s for s in strata if s.predicted]
    n_pred = sum(s.size for s in pred)
    tp = sum(s.total for s in pred)
    allpos = sum(s.total for s in strata)
    is_pred = np.asarray([s.predicted for s in strata], bool)
    alpha = (1.0 - level) / 2.0
    rng = np.random.default_rng(seed)
    # one set of draws per side: the low side of the positives' shares in the predicted
    # strata with the high side elsewhere, and the reverse (see the module docstring)
    low = _draws(strata, is_pred, rng, draws)
    high = _draws(strata, ~is_pred, rng, draws)
    precision = lo_p = hi_p = None
    if n_pred:
        precision = tp / n_pred
        lo_p = min(float(np.quantile(low[is_pred].sum(0) / n_pred, alpha)), precision)
        hi_p = max(float(np.quantile(high[is_pred].sum(0) / n_pred, 1 - alpha)), precision)
    recall = lo_r = hi_r = None
    if allpos > 0:
        recall = tp / allpos
        with np.errstate(invalid="ignore", divide="ignore"):
            r_lo = low[is_pred].sum(0) / low.sum(0)
            r_hi = high[is_pred].sum(0) / high.sum(0)
        r_lo, r_hi = r_lo[np.isfinite(r_lo)], r_hi[np.isfinite(r_hi)]
        lo_r = min(float(np.quantile(r_lo, alpha)) if len(r_lo) else recall, recall)
        hi_r = max(float(np.quantile(r_hi, 1 - alpha)) if len(r_hi) else recall, recall)
    return Estimate(precision=precision, precision_low=lo_p, precision_high=hi_p,
                    recall=recall, recall_low=lo_r, recall_high=hi_r,
                    # a sampled stratum answered whole counts too: every answer the
                    # analyst gave to this check, as many as the app asked for
                    verified=sum(s.answered for s in strata if s.name in SAMPLED),
                    predicted_positive=int(n_pred), positives=float(allpos))


def _draws(strata: Sequence[Stratum], down: np.ndarray, rng: np.random.Generator,
           draws: int) -> np.ndarray:
    """Positives per stratum, `draws` joint draws: census strata fixed; a sampled
    stratum's share p ~ Beta(y, n - y + 1) where `down` (the low side; 0 when y = 0),
    Beta(y + 1, n - y) elsewhere; its unseen patches Binomial(N - n, p)."""
    out = np.zeros((len(strata), draws), np.float64)
    for i, s in enumerate(strata):
        if s.census:
            out[i] = s.positives
            continue
        y, n = s.positives, s.answered
        a, b = y + 0.5, n - y + 0.5
        if down[i] and y <= 1:
            a, b = y, n - y + 1
        elif not down[i] and y >= n - 1:
            a, b = y + 1, n - y
        p = rng.beta(a, b, draws) if a > 0 and b > 0 else np.full(draws, 0.0 if a == 0 else 1.0)
        out[i] = s.positives + rng.binomial(s.size - s.answered, p)
    return out
