"""The multi-knowledge query: the patches most like some examples, among those that an SQL
WHERE (metadata, annotations, labels) and an area of interest keep.

    r = search(store, like=[1201, 1305], top=100, aoi="area.geojson",
               where="acquired >= DATE '2017-01-01' AND cloud_fraction < 0.1")
    r.table()                 # rank, patch_id, product_id, distance, similarity
    r = save_search(store, r) # rows in search_results: join them in SQL (docs/learning.md)

What "most like" means (the same as a session's "find similar"):
- the candidates are the patches of `level` (in `product_ids`, default every product)
  whose WGS84 box intersects the AOI and for which the WHERE over `scope_rows` holds, and
  that have features in every feature set;
- the features are standardised with the candidates' own mean and standard deviation
  (`SessionData`, as a session over that scope does), the examples with the same map;
- the query is the centroid of the examples' standardised vectors; patches rank by the
  Euclidean distance to it (the order of the mean squared distance to the examples; one
  example: exactly `Session.find_similar`'s order), smaller patch_id first on a tie; the
  examples themselves are left out;
- similarity = 1 / (1 + distance² / d), d the number of features: 1 for the centroid
  itself, 0.5 at one standard deviation per feature on average.

The ranking is exact: one float32 GEMV scores every candidate, a bound on its rounding
error keeps every patch that could be in the top k, and those few are ranked on float64
distances (tests/learning/test_search.py compares with a brute-force float64 sort).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from eominer.errors import SearchError
from eominer.learning.aoi import AOI, as_aoi, boxes_in_aoi, no_patch_message, stored_aoi
from eominer.learning.compact import LEVELS, CompactMatrix
from eominer.learning.engine import SessionData
from eominer.learning.models import row_sq_norms
from eominer.store.base import utcnow
from eominer.store.scope import check_where

if TYPE_CHECKING:
    from eominer.store import Store

_U = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32


@dataclass(frozen=True)
class SearchResult:
    """Ranked patches of one search, best first, and what the search was."""

    patch_ids: np.ndarray
    product_ids: tuple[str, ...]
    distances: np.ndarray  # Euclidean, standardised feature space, float64
    similarities: np.ndarray
    like: tuple[int, ...]
    level: int
    feature_set_ids: tuple[str, ...]
    where: str | None
    aoi_wkt: str | None
    top: int
    n_candidates: int  # patches the AOI and the WHERE keep
    n_missing: int  # of those, without features (not ranked)
    search_id: str | None = None  # once saved
    missing_hint: str = ""  # where n_missing: which products lack the sets, what covers them

    def table(self) -> pa.Table:
        return pa.table({
            "rank": pa.array(np.arange(1, len(self.patch_ids) + 1, dtype=np.int32)),
            "patch_id": pa.array(self.patch_ids),
            "product_id": pa.array(list(self.product_ids), pa.string()),
            "distance": pa.array(self.distances),
            "similarity": pa.array(self.similarities),
        })


def nearest(X: np.ndarray, patch_ids: np.ndarray, centre: np.ndarray, k: int,
            exclude: np.ndarray | None = None, sq_norms: np.ndarray | None = None,
            ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the `k` nearest rows of `X` (float32, or a CompactMatrix: then exact on its
    float32 rows) to `centre` (float64), ranked by the float64 squared distance, then
    patch_id; returns (rows, squared distances).

    ||x||² - 2 x·c + ||c||² in float32 differs from the exact value by less than
    (2γ_d + 6u)(||x||² + ||c||²) (γ_d = d·u, any summation order); `err` is twice that. Every
    row whose lower bound is within the k-th smallest upper bound is re-ranked exactly."""
    n, d = X.shape
    c32 = centre.astype(np.float32)
    sq = sq_norms if sq_norms is not None else row_sq_norms(X)
    dist = X @ c32
    dist *= np.float32(-2.0)
    dist += sq
    dist += np.float32(c32 @ c32)
    extra = 0.0
    if isinstance(X, CompactMatrix):  # its GEMV sums offset and scale * code terms apart
        a = np.abs(X.offset.astype(np.float64)) + LEVELS * np.abs(X.scale.astype(np.float64))
        extra = float(a @ a)
    err = (sq + np.float32(centre @ centre + extra)) * np.float32(4 * (d + 4) * _U)
    if exclude is not None and len(exclude):
        dist[exclude] = np.inf
    k = min(int(k), int(np.isfinite(dist).sum()))
    if k <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    bound = np.partition(dist + err, k - 1)[k - 1]
    cand = np.flatnonzero(dist - err <= bound)
    exact = ((X[cand].astype(np.float64) - centre) ** 2).sum(axis=1)
    order = np.lexsort((patch_ids[cand], exact))[:k]
    return cand[order].astype(np.int64), exact[order]


def candidate_ids(store: Store, level: int, *, where: str | None = None,
                  aoi: AOI | None = None, product_ids: Sequence[str] | None = None,
                  timeout_s: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """(patch ids, their product ids) of `level` that the AOI and the WHERE keep, sorted.
    The AOI's bounding box prefilters in SQL; the polygon test is exact (shapely)."""
    if product_ids:
        unknown = sorted(set(product_ids) - store.existing_products(product_ids))
        if unknown:
            raise SearchError(f"product(s) {', '.join(unknown)} are not in {store.url}: "
                              "`eominer products` lists the ids")
    boxes = store.lonlat_boxes(level, product_ids, bbox=aoi.bounds if aoi else None)
    ids = boxes["patch_id"].to_numpy().astype(np.int64)
    prods = np.asarray(boxes["product_id"].to_pylist(), dtype=object)
    if aoi is not None:
        cols = [boxes[c].to_numpy() for c in ("min_lon", "min_lat", "max_lon", "max_lat")]
        keep = boxes_in_aoi(*cols, aoi.geometry)
        if not keep.any():
            n = store.lonlat_boxes(level, product_ids).num_rows
            raise SearchError(no_patch_message(aoi, n, None, f"at level {level}"))
        ids, prods = ids[keep], prods[keep]
    if where:
        keep = np.isin(ids, store.where_patch_ids(where, level, product_ids, timeout_s))
        if not keep.any():
            raise SearchError(f"the WHERE {where!r} keeps none of the {len(ids)} patches at "
                              f"level {level}" + (" inside the area of interest" if aoi else "")
                              + ": loosen it")
        ids, prods = ids[keep], prods[keep]
    return ids, prods


def search(store: Store, like: Sequence[int], *, top: int = 100, where: str | None = None,
           aoi: Any = None, feature_set_ids: Sequence[str] | None = None,
           level: int | None = None, product_ids: Sequence[str] | None = None,
           timeout_s: float = 60.0) -> SearchResult:
    """The `top` patches most like the examples `like` among those the AOI (path, WKT,
    geometry or AOI) and the WHERE (over scope_rows) keep; see the module's doc."""
    examples = sorted({int(i) for i in like})
    if not examples:
        raise SearchError("give at least one example patch id (--like ID,ID)")
    if int(top) < 1:
        raise SearchError(f"top must be at least 1, got {top}")
    levels = store.patch_levels_of(examples)
    unknown = [i for i in examples if i not in levels]
    if unknown:
        raise SearchError(f"example patch(es) {unknown} are not in {store.url}")
    level = _level(levels, level)
    fs_ids = _feature_sets(store, examples, feature_set_ids)
    area = stored_aoi(as_aoi(aoi)) if aoi is not None else None
    cond = check_where(where) if where else None
    cand, cand_prods = candidate_ids(store, level, where=cond, aoi=area,
                                     product_ids=product_ids, timeout_s=timeout_s)
    ex_prods = store.products_of_patches(examples)
    products = sorted(set(cand_prods.tolist()) | set(ex_prods))
    ids, X, _ = store.read_features(fs_ids, products, level)
    ex_at = np.searchsorted(ids, examples)
    ok = (ex_at < len(ids)) & (ids[np.minimum(ex_at, len(ids) - 1)] == examples)
    if not ok.all():
        raise SearchError(f"example patch(es) {np.asarray(examples)[~ok].tolist()} have no "
                          f"features in {fs_ids}: run `eominer extract` for their products")
    X_ex = X[ex_at].copy()
    inside = np.isin(ids, cand, assume_unique=True)
    n_have = int(inside.sum())
    if n_have == 0:
        raise SearchError(f"none of the {len(cand)} patches the search keeps has features in "
                          f"{fs_ids}: run `eominer extract` for their products")
    data = SessionData(ids if inside.all() else ids[inside], X if inside.all() else X[inside])
    del X
    q = (X_ex - data.mean) / data.std
    q[~np.isfinite(q)] = 0.0
    centre = q.astype(np.float64).mean(axis=0)
    skip = np.searchsorted(data.patch_ids, examples)
    skip = skip[(skip < data.n) & (data.patch_ids[np.minimum(skip, data.n - 1)] == examples)]
    rows, d2 = nearest(data.X, data.patch_ids, centre, top, skip, data.sq_norms)
    pids = data.patch_ids[rows]
    prod_of = dict(zip(cand.tolist(), cand_prods.tolist()))
    hint = _missing_hint(store, cand, cand_prods, ids, products, level) \
        if n_have < len(cand) else ""
    return SearchResult(
        patch_ids=pids, product_ids=tuple(prod_of[int(p)] for p in pids),
        distances=np.sqrt(d2), similarities=1.0 / (1.0 + d2 / data.X.shape[1]),
        like=tuple(examples), level=level, feature_set_ids=tuple(fs_ids), where=cond,
        aoi_wkt=area.wkt if area else None, top=int(top), n_candidates=len(cand),
        n_missing=len(cand) - n_have, missing_hint=hint)


def _missing_hint(store: Store, cand: np.ndarray, cand_prods: np.ndarray, ids: np.ndarray,
                  products: list[str], level: int) -> str:
    """The products whose patches the sets leave unranked (a change pair's sets hold its
    first date only), and the sets that would rank every product searched."""
    lacking = sorted(set(cand_prods[~np.isin(cand, ids)].tolist()))
    covering = store.covering_feature_sets(products, level)
    named = ", ".join(lacking[:3]) + (f" and {len(lacking) - 3} more" if len(lacking) > 3
                                      else "")
    return f"products without them: {named}; " + (
        f"--features {','.join(covering)} covers every product searched" if covering
        else "no feature set covers every product searched: run `eominer extract` for them")


def save_search(store: Store, result: SearchResult, owner: str | None = None) -> SearchResult:
    """Write the search and its rows (`searches`, `search_results`); returns it with its id."""
    sid = uuid.uuid4().hex[:16]
    store.insert_search(
        sid, owner=owner, level=result.level, feature_set_ids=json.dumps(result.feature_set_ids),
        like_ids=json.dumps(list(result.like)), where_sql=result.where, aoi_wkt=result.aoi_wkt,
        top=result.top, n_candidates=result.n_candidates, created=utcnow(),
        patch_ids=result.patch_ids, distances=result.distances,
        similarities=result.similarities)
    return dataclasses.replace(result, search_id=sid)


def _level(levels: dict[int, int], level: int | None) -> int:
    found = sorted(set(levels.values()))
    if level is None:
        if len(found) > 1:
            raise SearchError(f"the examples are at several levels {found}: give examples of "
                              "one level, or choose one with --level")
        return found[0]
    other = sorted(p for p, lv in levels.items() if lv != int(level))
    if other:
        raise SearchError(f"example patch(es) {other} are not at level {level} (they are at "
                          f"{sorted({levels[p] for p in other})}): give examples of level "
                          f"{level}, or search at their level")
    return int(level)


def _feature_sets(store: Store, examples: list[int],
                  given: Sequence[str] | None) -> list[str]:
    from eominer.store.archive import is_archive, is_dates, same_kind

    if given:  # ids, or the names of sets that are alone of their name
        return store.resolve_feature_sets(given)
    # every set the examples have, together, each once: a set whose features of both
    # dates are there (they hold its columns at date 1) goes, as in a session's default
    # sets, and so does a change pair's own set whose archive set is there (the same rows
    # on its first date, and the archive's cover every other pair's first date too)
    held = store.feature_sets_holding(examples)
    dated = {str(fs.params.get("source")) for fs in held if is_dates(fs)}
    sets = [fs.feature_set_id for fs in held if fs.feature_set_id not in dated and not any(
        is_archive(a) and same_kind(a, fs) for a in held)]
    if not sets:
        raise SearchError(f"no feature set has features for every example {examples}: run "
                          "`eominer extract` for their products, or give --features")
    return sets
