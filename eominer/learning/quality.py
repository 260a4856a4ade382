"""How far to trust the ranking, and when to stop.

- ranking change: the share of patches whose side of the boundary (score >= 0.5)
  flipped since the previous round, plus the overlap of the two top-k lists. Few flips
  over consecutive rounds means new labels no longer change the answer.
- precision estimate: the analyst labels a small random sample of the patches the model
  calls positive (purpose 'verify'); those labels are not used for training, so the
  share of confirmed positives is an unbiased precision estimate (Wilson 95% interval).
- stop suggestion: ranking change below `flip_tol` for `patience` rounds that had new
  answers, and, if a verification sample exists, its precision at least
  `target_precision`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from eominer.learning.strategies import largest


def ranking_change(prev: np.ndarray | None, cur: np.ndarray, k: int = 100) -> dict:
    """Flip rate across 0.5 and top-k overlap between two score vectors (same rows)."""
    if prev is None or len(prev) != len(cur):
        return {"flip_rate": None, "topk_overlap": None}
    flips = float(np.count_nonzero((prev >= 0.5) != (cur >= 0.5))) / max(len(cur), 1)
    k = min(k, len(cur))
    # the top k by a strided-sample threshold, ties by row (`largest`): a full
    # argpartition of each vector cost ~0.1 s at 10M patches, more than the round's pick
    a = set(largest(prev, k).tolist())
    b = set(largest(cur, k).tolist())
    return {"flip_rate": flips, "topk_overlap": len(a & b) / k}


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def precision_estimate(verify_labels: np.ndarray) -> dict:
    """Precision from verification labels (+1 confirmed, -1 rejected)."""
    v = np.asarray(verify_labels)
    if len(v) == 0:
        return {"precision": None, "precision_low": None, "precision_high": None,
                "n_verified": 0}
    ok = int((v == 1).sum())
    lo, hi = wilson(ok, len(v))
    return {"precision": ok / len(v), "precision_low": lo, "precision_high": hi,
            "n_verified": int(len(v))}


def verification_sample(scores: np.ndarray, n: int, exclude: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
    """A uniform random sample of the predicted positives not yet labelled."""
    pos = np.flatnonzero(scores >= 0.5)
    pos = np.setdiff1d(pos, exclude, assume_unique=False)
    if len(pos) == 0:
        return pos.astype(np.int64)
    return np.sort(rng.choice(pos, size=min(n, len(pos)), replace=False)).astype(np.int64)


def stability_evidence(rounds: Sequence[Any]) -> list[float | None]:
    """The rounds' ranking changes (`ranking_change`) that say something about stability,
    oldest first. A round fitted on the same answers as the round before it (Learn
    clicked again, no new label) changes the ranking by ~0 and would read as "stable";
    it is left out. Rounds stored without their training set always count."""
    out: list[float | None] = []
    before = None
    for r in rounds:
        if not (r.labels and r.labels == before):
            out.append(r.ranking_change)
        before = r.labels
    return out


def suggest_stop(flip_history: list[float | None], precision: float | None,
                 flip_tol: float = 0.01, patience: int = 2,
                 target_precision: float = 0.8) -> tuple[bool, str]:
    recent = [f for f in flip_history[-patience:] if f is not None]
    stable = len(recent) == patience and max(recent) < flip_tol
    if not stable:
        last = recent[-1] if recent else None
        if last is None:
            return False, "not enough rounds to judge stability yet"
        if last >= flip_tol:
            return False, f"ranking still changing: {last:.1%} of patches flipped last round"
        calm = 0  # the latest rounds below the tolerance
        for f in reversed(recent):
            if f >= flip_tol:
                break
            calm += 1
        more = patience - calm
        return False, (f"{last:.1%} of patches flipped last round: {more} more round(s) "
                       "with new answers like it to call the ranking stable")
    if precision is None:
        return True, (f"ranking stable (< {flip_tol:.0%} flips for {patience} rounds); "
                      "verify a random sample to estimate precision before publishing")
    if precision >= target_precision:
        return True, f"ranking stable and verified precision {precision:.0%}: publish"
    return False, (f"ranking stable but verified precision {precision:.0%} is below "
                   f"{target_precision:.0%}: label more examples near the boundary")
