"""A feature column as the session's prior: the ranking it gives with no label, which
the labels then take over.

A session whose concept one column already ranks (new construction and a change layer's
`change_prob_mean`) starts its rounds from that ranking instead of from a handful of
labels. Each score s of the model becomes

    s' = sigmoid(logit(s) + w(n) z),   w(n) = weight * half / (half + n)

where z is the column standardised over the session's patches and n the round's label
count (half = 0 or infinite: w stays `weight`). It is a score transform like the spatial context, so
the strategy picks from the mixed ranking, the ranking shown, published and exported is
the mixed one, and a saved model carries the column, its statistics and w at its round
(`eominer apply` scores the archive the same way). Measured on OSCD, docs/learning.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from eominer.errors import SessionError

if TYPE_CHECKING:
    from eominer.learning.compact import CompactMatrix
    from eominer.store import Store

EPS = 1e-6  # scores are clipped to [EPS, 1 - EPS] before the logit


def find_column(names: Sequence[str], spec: str) -> int:
    """The index of column `spec` among the session's `names` ("set__column"): the full
    name, or a column name that one set alone has; SessionError listing the candidates."""
    if spec in names:
        return list(names).index(spec)
    hits = [i for i, n in enumerate(names) if n.split("__", 1)[-1] == spec]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise SessionError(f"prior column {spec!r} is in several feature sets of the session: "
                           f"name one of {[names[i] for i in hits]}")
    short = sorted({n.split("__", 1)[-1] for n in names})
    raise SessionError(f"prior column {spec!r} is not among the session's features; its "
                       f"columns are {short[:40]}{' ...' if len(short) > 40 else ''}")


def where_column_is(store: Store, spec: str, product_ids: Sequence[str], level: int,
                    feature_set_ids: Sequence[str]) -> str:
    """What to do when prior column `spec` is not among a session's sets: the stored
    sets that have it, and which of the scope's products they have rows for at `level`
    (a change set has rows on its pair's first date only, so a scope of every product
    leaves it out). "" when no set has it."""
    short = spec.split("__", 1)[-1]
    hints = []
    for fs in store.feature_sets():
        if fs.feature_set_id in feature_set_ids or short not in fs.columns:
            continue
        covered = sorted({p for p, lv in store.feature_levels(fs.feature_set_id, product_ids)
                          if lv == int(level)})
        if len(covered) == len(set(product_ids)):
            hints.append(f"feature set {fs.feature_set_id} ({fs.name}) has it for every "
                         f"product of the scope: add it to --features")
        elif covered:
            hints.append(f"feature set {fs.feature_set_id} ({fs.name}) has it for "
                         f"{len(covered)} of the scope's {len(set(product_ids))} products at "
                         f"level {level} ({', '.join(covered[:5])}"
                         f"{' ...' if len(covered) > 5 else ''}): give those with --product "
                         f"and the set with --features")
        else:
            hints.append(f"feature set {fs.feature_set_id} ({fs.name}) has it, for none of "
                         f"the scope's products at level {level}")
    return "; ".join(hints[:5])


@dataclass(frozen=True)
class Prior:
    """Column `index` of the session's standardised features, its mean and standard
    deviation over the session's patches, and the weight schedule."""

    column: str
    index: int
    mean: float
    std: float
    weight: float
    half: float

    @classmethod
    def of(cls, X: np.ndarray | CompactMatrix, names: Sequence[str], spec: str, weight: float,
           half: float) -> Prior:
        """The prior of column `spec` over the session matrix X (float32 or compact)."""
        i = find_column(names, spec)
        v = column(X, i).astype(np.float64)
        return cls(names[i], i, float(v.mean()), float(v.std()) or 1.0, float(weight),
                   float(half))

    def weight_at(self, n_labels: int) -> float:
        if self.half <= 0.0 or self.half == float("inf"):  # never fades (inf / inf: NaN)
            return self.weight
        return self.weight * self.half / (self.half + max(int(n_labels), 0))

    def z(self, X: np.ndarray | CompactMatrix) -> np.ndarray:
        """The standardised prior column of session-space rows X (float32)."""
        out = column(X, self.index)
        out -= np.float32(self.mean)
        out /= np.float32(self.std)
        return out


def column(X: np.ndarray | CompactMatrix, i: int) -> np.ndarray:
    """Column i of a float32 matrix or a `CompactMatrix`, as a new float32 array."""
    codes = getattr(X, "codes", None)
    if codes is not None:  # int8 codes: offset + scale * code
        return codes[:, i].astype(np.float32) * X.scale[i] + X.offset[i]
    return np.array(np.asarray(X)[:, i], np.float32)


def mix(scores: np.ndarray, z: np.ndarray, weight: float) -> np.ndarray:
    """sigmoid(logit(scores) + weight z) in float32, in place on `scores`."""
    from eominer.learning.models import sigmoid

    if weight == 0.0:
        return scores
    np.clip(scores, EPS, 1.0 - EPS, out=scores)
    logit = np.log(scores / (np.float32(1.0) - scores))
    logit += np.float32(weight) * z
    return sigmoid(logit, out=scores)
