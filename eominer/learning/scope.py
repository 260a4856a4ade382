"""A session's scope: the patches of some products at one grid level, their features,
and (cascade) the patches under a coarser session's published positives.

`max_cloud` leaves out the patches whose `cloud_fraction` is above it; a patch whose
cloud fraction is unknown (NULL: Sentinel-1, or a product without a cloud mask) stays in:
unknown is not cloudy. `aoi_wkt` keeps the patches whose WGS84 box intersects the area
(`aoi.py`); `where` keeps those for which the analyst's WHERE over the view `scope_rows`
holds (run on the read-only user-SQL path, `Store.where_patch_ids`). An AOI or a WHERE
that keeps nothing is refused with what it was tried on, before any session is written.

Both `session` and `cascade` import this module; it imports neither.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from eominer.errors import SessionError

if TYPE_CHECKING:
    from eominer.store import Store


def feature_signature(feature_set_ids: Sequence[str], names: list[str], patch_ids: np.ndarray,
                      X: np.ndarray) -> str:
    """Fingerprint of the raw feature matrix: ids, columns, rows and column sums."""
    h = hashlib.sha1()
    h.update(json.dumps([list(feature_set_ids), names]).encode())
    h.update(np.asarray(patch_ids, np.int64).tobytes())
    sums = X.sum(axis=0, dtype=np.float64) if X.size else np.zeros(0)
    h.update(",".join(f"{v:.6g}" for v in sums.tolist()).encode())
    return h.hexdigest()[:16]


def set_weights(names: Sequence[str]) -> np.ndarray | None:
    """Per-set standardisation of a session over several feature sets: after every column
    is standardised (SessionData), the columns of feature set s are scaled by
    sqrt(D / (S * d_s)) (D columns in all, S sets, d_s columns in set s), so each set adds
    the same share D / S of the total variance, whatever its width: a 128-column set does
    not drown a 24-column one in the distances (RBF, diverse) or the penalty (logistic).
    The total variance stays D, so one-set sessions are unchanged (None: nothing to do).
    Columns are `<feature_set_id>__<column>` (Store.read_features); the sets used are
    the session's `feature_set_ids`."""
    sets = [n.split("__", 1)[0] for n in names]
    width = {s: sets.count(s) for s in dict.fromkeys(sets)}
    if len(width) < 2:
        return None
    return np.asarray([np.sqrt(len(sets) / (len(width) * width[s])) for s in sets], np.float32)


def weigh_feature_sets(data) -> None:
    """Apply `set_weights` to a SessionData in place (its `std` absorbs the weights, so
    `(x - data.mean) / data.std` still maps raw features into the session's space)."""
    w = set_weights(data.names)
    if w is not None:
        data.X *= w.astype(data.X.dtype)
        data.std = (data.std / w).astype(data.std.dtype)


def load_scope(store: Store, product_ids: Sequence[str], level: int,
               feature_set_ids: Sequence[str], within: np.ndarray | None = None,
               max_cloud: float | None = None, aoi_wkt: str | None = None,
               where: str | None = None,
               ) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, int]:
    """Features of the scope: (patch_ids, raw X, names, centres, n_missing)."""
    for pid in product_ids:
        if not store.product_exists(pid):
            raise SessionError(f"product {pid!r} is not in {store.url}: ingest it first")
    patches = store.scope_patches(list(product_ids), level)
    pids = patches["patch_id"].to_numpy().astype(np.int64)
    if within is not None:
        pids = pids[np.isin(pids, within)]
    if max_cloud is not None and len(pids):
        pids = _clear_enough(patches, pids, float(max_cloud), list(product_ids), level)
    if aoi_wkt and len(pids):
        pids = _inside(patches, pids, aoi_wkt, list(product_ids), level)
    if where and len(pids):
        kept = pids[np.isin(pids, store.where_patch_ids(where, level, list(product_ids)))]
        if len(kept) == 0:
            raise SessionError(
                f"empty scope: the WHERE {where!r} keeps none of the {len(pids)} patches at "
                f"level {level} in products {list(product_ids)}: loosen it (try it with "
                "eominer sql \"SELECT COUNT(*) FROM scope_rows WHERE ...\")")
        pids = kept
    if len(pids) == 0:
        levels = store.patch_levels(list(product_ids))
        raise SessionError(
            f"empty scope: no patches at level {level} in products {list(product_ids)} "
            f"(levels there: {levels or 'none'})"
            + ("; the coarse session published no positive patch" if within is not None else "")
        )
    ids, X, names = store.read_features(list(feature_set_ids), list(product_ids), level)
    keep = np.isin(ids, pids)
    ids, X = ids[keep], X[keep]
    if len(ids) == 0:
        raise SessionError(
            f"no features for the {len(pids)} patches of the scope in feature sets "
            f"{list(feature_set_ids)}: " + covering_hint(store, product_ids, level)
        )
    cx = (patches["min_x"].to_numpy() + patches["max_x"].to_numpy()) / 2
    cy = (patches["min_y"].to_numpy() + patches["max_y"].to_numpy()) / 2
    all_ids = patches["patch_id"].to_numpy().astype(np.int64)
    at = np.searchsorted(all_ids, ids)
    centres = np.stack([cx[at], cy[at]], axis=1)
    return ids, X, names, centres, int(len(pids) - len(ids))


def _clear_enough(patches, pids: np.ndarray, max_cloud: float, product_ids: list[str],
                  level: int) -> np.ndarray:
    """`pids` without the patches whose cloud fraction is above `max_cloud` (NULL kept;
    MonetDB may read a NULL REAL back as NaN, kept too). Compared at the column's precision
    (REAL): a stored 0.3 is float32(0.3), just above the double 0.3, and stays in."""
    all_ids = patches["patch_id"].to_numpy().astype(np.int64)
    cloud = patches["cloud_fraction"].to_numpy(zero_copy_only=False).astype(np.float32)
    cloudy = all_ids[cloud > np.float32(max_cloud)]  # NaN compares False: unknown stays in
    kept = pids[~np.isin(pids, cloudy)]
    if len(kept) == 0:
        raise SessionError(
            f"empty scope: all {len(pids)} patches at level {level} in products {product_ids} "
            f"have a cloud fraction above {max_cloud:g}; raise --max-cloud or pick other products"
        )
    return kept


def covering_hint(store: Store, product_ids: Sequence[str], level: int) -> str:
    """What to do when the chosen feature sets have no features for a scope: the sets
    that do cover it, else `eominer extract`."""
    covering = store.covering_feature_sets(list(product_ids), level)
    if covering:
        return (f"use the feature sets with features for these products at level {level}: "
                f"{', '.join(covering)}")
    return f"run `eominer extract` for these products (no feature set covers them at level {level})"


def _inside(patches, pids: np.ndarray, aoi_wkt: str, product_ids: list[str],
            level: int) -> np.ndarray:
    """`pids` whose WGS84 box intersects the AOI; none: a SessionError that says so."""
    import shapely

    from eominer.learning.aoi import AOI, boxes_in_aoi, no_patch_message

    all_ids = patches["patch_id"].to_numpy().astype(np.int64)
    at = np.searchsorted(all_ids, pids)
    cols = [patches[c].to_numpy()[at] for c in ("min_lon", "min_lat", "max_lon", "max_lat")]
    kept = pids[boxes_in_aoi(*cols, shapely.from_wkt(aoi_wkt))]
    if len(kept) == 0:
        bounds = (float(cols[0].min()), float(cols[1].min()), float(cols[2].max()),
                  float(cols[3].max()))
        raise SessionError(no_patch_message(
            AOI(shapely.from_wkt(aoi_wkt), "stored area"), len(pids),
            bounds, f"at level {level} in products {product_ids}"))
    return kept


def descendants(store: Store, product_ids: Sequence[str], ids: np.ndarray, from_level: int,
                to_level: int) -> np.ndarray:
    """Patch ids at `to_level` inside the patches `ids` of `from_level`."""
    current = np.asarray(ids, np.int64)
    for lv in sorted((v for v in store.patch_levels(product_ids) if to_level <= v < from_level),
                     reverse=True):
        t = store.scope_patches(product_ids, lv)
        parents = t["parent_id"].fill_null(-1).to_numpy().astype(np.int64)
        current = t["patch_id"].to_numpy().astype(np.int64)[np.isin(parents, current)]
    return current


def cascade_scope(store: Store, parent: str | None, product_ids: Sequence[str],
                  level: int) -> np.ndarray | None:
    """Cascade: the patches of `level` under the parent session's published positives
    (None: no parent, the whole level is the scope)."""
    if not parent:
        return None
    record = store.session(parent)
    if record is None:
        raise SessionError(f"parent session {parent!r} of this cascade is not in {store.url}")
    return descendants(store, product_ids, store.positive_annotations(parent), record.level,
                       int(level))
