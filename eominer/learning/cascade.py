"""Cascaded active learning (EOminer): learn at a coarse grid level, then carry only
the positive coarse patches down to a finer level and continue there.

The coarse session is published first; the fine session's scope is every patch of the
finer level whose ancestor is a published positive of the coarse session (each patch
points to the patch of the next coarser level that contains it, `patches.parent_id`).
"""

from __future__ import annotations

import dataclasses

from eominer.errors import SessionError
from eominer.learning.scope import descendants
from eominer.learning.session import Session

__all__ = ["cascade", "descendants"]


def cascade(coarse: Session, fine_level: int, *, name: str | None = None,
            owner: str | None = None, threshold: float | None = None,
            model_kind: str | None = None, strategy: str | None = None,
            feature_set_ids: list[str] | None = None) -> Session:
    """Publish `coarse` and create the finer-level session over its positive patches
    (the scope itself is found by `scope.cascade_scope`, from the parent session)."""
    levels = coarse.store.patch_levels(coarse.product_ids)
    if fine_level not in levels or fine_level >= coarse.level:
        raise SessionError(
            f"cannot cascade from level {coarse.level} to {fine_level}: the finer level must "
            f"be smaller than {coarse.level} and one of the grid levels {levels}"
        )
    # the fine session starts from the coarse one's parameters as they were: the
    # threshold that prunes the coarse ranking is not the fine ranking's
    params = dataclasses.replace(coarse.params, parent_session=None)
    coarse.publish(threshold)
    rec = coarse.record
    return Session.create(
        coarse.store, name or f"{rec.name} @ {fine_level}px", owner or rec.owner,
        coarse.concept, coarse.product_ids, fine_level,
        feature_set_ids or coarse.feature_set_ids,
        model_kind=model_kind or rec.model_kind, strategy=strategy or rec.strategy,
        params=params, parent_session=coarse.session_id,
    )
