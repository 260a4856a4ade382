"""Features of both dates: for a change pair, each patch of its first date with a feature
set's columns at date 1, at date 2 and their difference (`dates_<name>`).

A concept that is a change ("new construction") is seen in both dates, not in one: on
OSCD's nine pairs the features of both dates lift a session's AP by 0.025-0.036 at 25,
50 and 200 labels and the out-of-fold ceiling from 0.517 to 0.548 (docs/learning.md, "A
product session over the nine pairs"). `eominer change ... --features spectral,gabor`
writes them for its pairs, from the sets extracted on both dates (no pixel is read).

Like the archive's change sets (eominer.store.archive), one set holds every pair's rows,
on each pair's first date, named `dates_<source set name>` with the source set's id as
its identity. A first date holds the rows of its change pair recorded last: every
`eominer change` run of an ingested pair rewrites the first date's rows of each
`dates_` set whose source both dates have, recording the second date as their source
(`feature_row_sources`), and removing a product takes out the rows computed from it and
puts back those of the first date's other pair, where one is left (`refill`,
`Store.thinned_rows_from`). Both dates must be on one grid (a patch is matched by its
level and pixel offsets): the pairs of one tile are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from eominer.errors import FeatureError
from eominer.store.archive import DATES_PREFIX as PREFIX
from eominer.store.archive import is_dates

if TYPE_CHECKING:
    from eominer.store import Store
    from eominer.store.features import FeatureSet
    from eominer.store.removal import Refill

VERSION = 1
PARTS = ("t1", "t2", "d")  # date 1, date 2, date 2 - date 1


def columns(source: FeatureSet) -> list[str]:
    return [f"{c}_{part}" for part in PARTS for c in source.columns]


def window_keys(store: Store, product_id: str, ids: np.ndarray) -> np.ndarray:
    """A key per patch id of the product: its level and pixel offsets (equal for the
    same window of two products on one grid)."""
    t = store.patches(product_id)
    pid = t["patch_id"].to_numpy().astype(np.int64)
    key = (t["level"].to_numpy().astype(np.int64) << 40) \
        | (t["y_off"].to_numpy().astype(np.int64) << 20) | t["x_off"].to_numpy().astype(np.int64)
    order = np.argsort(pid)
    return key[order][np.searchsorted(pid[order], ids)]


def pair_rows(store: Store, source: FeatureSet, first: str, second: str,
              level: int) -> tuple[np.ndarray, np.ndarray]:
    """(first-date patch ids, [date 1, date 2, date 2 - date 1]) at `level`, for the
    windows both dates have features of `source` in."""
    ids1, X1, _ = store.read_features([source.feature_set_id], [first], level)
    ids2, X2, _ = store.read_features([source.feature_set_id], [second], level)
    key1, key2 = window_keys(store, first, ids1), window_keys(store, second, ids2)
    at = {k: i for i, k in enumerate(key2.tolist())}
    rows = np.asarray([at.get(k, -1) for k in key1.tolist()], np.int64)
    ok = rows >= 0
    a, b = X1[ok], X2[rows[ok]]
    return ids1[ok], np.concatenate([a, b, b - a], axis=1)


def same_grid(store: Store, first: str, second: str) -> bool:
    a, b = store.product(first), store.product(second)
    return a is not None and b is not None and (a.crs, a.transform, a.width, a.height) == (
        b.crs, b.transform, b.width, b.height)


def check_sources(store: Store, sources: Sequence[FeatureSet],
                  pairs: Sequence[tuple[str, str]]) -> None:
    """Before any work: both dates of each pair on one grid, with rows of each source;
    else a FeatureError naming what to run."""
    for first, second in pairs:
        if not same_grid(store, first, second):
            raise FeatureError(f"{first} and {second} are not on one grid: the features of "
                               "both dates match a patch by its window, which needs one "
                               "grid (the products of one tile share it)")
        for fs in sources:
            lacking = [p for p in (first, second) if not store.feature_levels(
                fs.feature_set_id, [p])]
            if lacking:
                raise FeatureError(
                    f"{', '.join(lacking)} have no {fs.name} features ({fs.feature_set_id}): "
                    f"run `eominer extract --features {fs.name} --products "
                    f"{','.join(lacking)}` first")


def register(store: Store, source: FeatureSet) -> FeatureSet:
    return store.register_feature_set(PREFIX + source.name, VERSION,
                                      {"source": source.feature_set_id}, columns(source),
                                      sensor=source.sensor)


def write_pair(store: Store, dates: FeatureSet, first: str, second: str) -> int:
    """The first date's rows of `dates` from the pair (first, second), in place of an
    earlier pair's; returns the rows written. In the caller's transaction."""
    source = store.require_feature_set(str(dates.params["source"]))
    store.register_feature_set(dates.name, dates.version, dates.params, list(dates.columns),
                               sensor=dates.sensor, sources=(first, second))
    store.delete_product_rows(dates, first)
    n = 0
    for _, level in store.feature_levels(source.feature_set_id, [first]):
        ids, X = pair_rows(store, source, first, second, level)
        if len(ids):
            store.write_features(dates, ids, X)
            n += len(ids)
    store.record_row_sources(dates.feature_set_id, first, (second,))
    return n


def refill(store: Store, dates: FeatureSet, first: str, removed: str) -> Refill | None:
    """`first`'s rows once `removed` is gone: from the other date of its change pair
    recorded last without it, when both dates have the source set on one grid."""
    from eominer.store.removal import Refill

    last = store.last_change_pair(first, without=removed)
    source = str(dates.params.get("source"))
    if last is None or not same_grid(store, first, last[1]) or not all(
            store.feature_levels(source, [p]) for p in (first, last[1])):
        return None
    return Refill(f"{first} -> {last[1]}", lambda: write_pair(store, dates, first, last[1]))


def refresh(store: Store, first: str, second: str) -> list[str]:
    """After a change run of (first, second): the first date's rows of every `dates_`
    set whose source both dates have, from this pair (the pair recorded last). Returns
    the sets written. In the caller's transaction."""
    if not same_grid(store, first, second):
        return []
    written = []
    for fs in store.feature_sets():
        if not is_dates(fs):
            continue
        source = store.feature_set(str(fs.params.get("source")))
        if source is None or not all(store.feature_levels(source.feature_set_id, [p])
                                     for p in (first, second)):
            continue
        write_pair(store, fs, first, second)
        written.append(fs.feature_set_id)
    return written
