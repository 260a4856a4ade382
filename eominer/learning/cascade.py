"""Cascaded active learning (EOminer): learn at a coarse grid level, then carry only
the positive coarse patches down to a finer level and continue there.

The coarse session is published first; the fine session's scope is every patch of the
finer level whose ancestor is a published positive of the coarse session (each patch
points to the patch of the next coarser level that contains it, `patches.parent_id`).
"""

from __future__ import annotations

import numpy as np

from eominer.errors import SessionError


def descendants(store, product_ids: list[str], ids: np.ndarray, from_level: int,
                to_level: int) -> np.ndarray:
    """Patch ids at `to_level` inside the patches `ids` of `from_level`."""
    current = np.asarray(ids, np.int64)
    for lv in sorted((v for v in store.patch_levels(product_ids) if to_level <= v < from_level),
                     reverse=True):
        t = store.scope_patches(product_ids, lv)
        parents = t["parent_id"].fill_null(-1).to_numpy().astype(np.int64)
        current = t["patch_id"].to_numpy().astype(np.int64)[np.isin(parents, current)]
    return current


def cascade(coarse, fine_level: int, *, name: str | None = None, owner: str | None = None,
            threshold: float | None = None, model_kind: str | None = None,
            strategy: str | None = None, feature_set_ids: list[str] | None = None):
    """Publish `coarse` and create the finer-level session over its positive patches."""
    from eominer.learning.session import Session

    levels = coarse.store.patch_levels(coarse.product_ids)
    if fine_level not in levels or fine_level >= coarse.level:
        raise SessionError(
            f"cannot cascade from level {coarse.level} to {fine_level}: the finer level must "
            f"be smaller than {coarse.level} and one of the grid levels {levels}"
        )
    coarse.publish(threshold)
    return Session.create(
        coarse.store, name or f"{coarse.row['name']} @ {fine_level}px",
        owner or coarse.row["owner"], coarse.concept, coarse.product_ids, fine_level,
        feature_set_ids or coarse.feature_set_ids,
        model_kind=model_kind or coarse.row["model_kind"],
        strategy=strategy or coarse.row["strategy"],
        params={k: v for k, v in coarse.params.items() if k != "parent_session"},
        parent_session=coarse.session_id,
    )
