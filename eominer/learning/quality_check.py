"""A session's quality check: the stratified verification sample of its latest round,
the precision / recall estimate from the answers, stored with that round.

    ids, t = quality_sample(s, threshold=0.5, n=40)  # ask the analyst these
    s.label(pid, +1 or -1, "ana", purpose="verify")  # each answer (kept out of training)
    est = check_quality(s)                           # estimate, stored with the round

The design and the estimator are in `verification.py`. What is known before the sample
(every labelled patch, training or verification answers of earlier rounds) is counted in
full (census strata, the most recent label of a patch is its truth); the sample is the
patches whose most recent label is a verification answer given in this round
(`labels.round`). The threshold is fixed by the round's first sample (stored as
`rounds.verify_threshold`): the strata must not change under a sample already drawn;
another threshold needs a new round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import SessionError
from eominer.learning import verification as v

if TYPE_CHECKING:
    from eominer.learning.session import Session
    from eominer.store.records import RoundRecord

DEFAULT_N = 40


def checked_round(session: Session) -> RoundRecord:
    """The round a check refers to: the latest, which must have a ranking."""
    done = session.rounds()
    if not done or not done[-1].fitted:
        raise SessionError(
            "no ranking to check: the latest round has no model (label at least one "
            "positive patch, then Learn)")
    return done[-1]


def latest_labels(session: Session) -> dict[int, tuple[int, str, int]]:
    """Per labelled patch its most recent label over all users: (label, purpose, round)."""
    out: dict[int, tuple[int, str, int]] = {}
    for r in session.store.session_labels(session.session_id).to_pylist():  # oldest first
        out[int(r["patch_id"])] = (int(r["label"]), str(r["purpose"]), int(r["round"]))
    return out


def design_facts(session: Session, round_no: int) -> dict[str, np.ndarray]:
    """Per patch of the scope (aligned with `session.patch_ids`): known (census) and its
    truth, sampled in round `round_no` and its answer."""
    n = session.data.n
    facts = {k: np.zeros(n, bool) for k in ("known", "known_yes", "sampled", "sampled_yes")}
    labels = latest_labels(session)
    if labels:
        ids = np.fromiter(labels, np.int64, len(labels))
        rows = session.data.rows(ids)
        vals = list(labels.values())
        yes = np.asarray([lab == 1 for lab, _, _ in vals], bool)
        sample = np.asarray([p == "verify" and r == round_no for _, p, r in vals], bool)
        facts["known"][rows[~sample]] = True
        facts["known_yes"][rows[~sample]] = yes[~sample]
        facts["sampled"][rows[sample]] = True
        facts["sampled_yes"][rows[sample]] = yes[sample]
    return facts


def quality_sample(session: Session, threshold: float = 0.5,
                   n: int = DEFAULT_N) -> tuple[np.ndarray, float]:
    """Patch ids of a stratified random sample of the latest round's unlabelled patches,
    in random order, and the threshold it uses (the round's, if it was checked before).
    Answer each with `label(..., purpose='verify')`, then `check_quality`."""
    r = checked_round(session)
    if not 0.0 < float(threshold) <= 1.0:
        raise SessionError(f"the score threshold must be in (0, 1], got {threshold!r}")
    if n < 1:
        raise SessionError(f"a verification sample needs at least 1 patch, got {n}")
    t = float(r.verify_threshold) if r.verify_threshold is not None else float(threshold)
    if r.verify_threshold is None:
        session.store.set_round_verification(session.session_id, r.round,
                                             {"verify_threshold": t})
    scores = session.current_scores()
    facts = design_facts(session, r.round)
    frame = ~(facts["known"] | facts["sampled"])
    h = v.stratum_of(scores, t)
    sizes = [int((frame & (h == i)).sum()) for i in range(len(v.SAMPLED))]
    means = [float(scores[frame & (h == i)].mean()) if k else float("nan")
             for i, k in enumerate(sizes)]
    rng = np.random.default_rng([int(session.params.seed), r.round,
                                 int(facts["sampled"].sum()), int(n)])
    rows = v.draw(h, frame, v.allocate(sizes, means, n), rng)
    return session.patch_ids[rows], t


def strata(session: Session) -> list[v.Stratum]:
    """The strata of the latest round's check as the labels stand now."""
    r = checked_round(session)
    if r.verify_threshold is None:
        raise SessionError(f"round {r.round} has no verification sample yet: ask for one "
                           "(the app's Check quality, or `eominer session verify`)")
    facts = design_facts(session, r.round)
    return v.tally(session.current_scores(), float(r.verify_threshold), facts["known"],
                   facts["known_yes"], facts["sampled"], facts["sampled_yes"])


def check_quality(session: Session) -> v.Estimate | None:
    """Estimate precision and recall of the latest round's positives from its
    verification answers and store them with the round. None (nothing stored) while a
    stratum has no answer yet."""
    r = checked_round(session)
    try:
        est = v.estimate(strata(session))
    except ValueError:
        return None
    session.store.set_round_verification(session.session_id, r.round, round_values(
        est, float(r.verify_threshold)))
    return est


def round_values(est: v.Estimate, threshold: float) -> dict[str, Any]:
    """The `rounds` columns of a check."""
    return {"verify_threshold": threshold, "precision_estimate": est.precision,
            "precision_low": est.precision_low, "precision_high": est.precision_high,
            "recall_estimate": est.recall, "recall_low": est.recall_low,
            "recall_high": est.recall_high, "verified_n": est.verified,
            "positives_estimate": est.positives}


def interval_text(value: float | None, low: float | None, high: float | None) -> str:
    """'12.3 % (95 % CI 4.5–30.1 %)', or 'n/a' (the app and the CLI say it alike)."""
    if value is None:
        return "n/a"
    return f"{100 * value:.1f} % (95 % CI {100 * low:.1f}–{100 * high:.1f} %)"


def stored(r: RoundRecord) -> dict[str, Any]:
    """A round's stored check, as `Session.quality()` reports it ({} if none)."""
    if r.verified_n is None:
        return {}
    return {"precision": r.precision_estimate, "precision_low": r.precision_low,
            "precision_high": r.precision_high, "recall": r.recall_estimate,
            "recall_low": r.recall_low, "recall_high": r.recall_high,
            "n_verified": r.verified_n, "threshold": r.verify_threshold,
            "positives": r.positives_estimate, "round": r.round}
