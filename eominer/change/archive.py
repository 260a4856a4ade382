"""The archive's change sets: every pair's change features in one feature set.

`eominer change` stores a pair's per-patch scores (`change_<method>`) and `diff_tails`
as a set of that pair alone, on its first date's patches: its parameters name both
dates. A session over several places, or `eominer apply` of its model to a pair mapped
later, needs one set across pairs. So each pair's rows are also written to
`archive_<name>` (`archive_change_selftrain_regression`, `archive_diff_tails`): the same
columns and parameters less the dates, rows on the first date of every pair mapped with
them. A product that is the first date of two pairs holds the rows of the one recorded
last (`archive_source`); which dates they were computed from is recorded with them
(`feature_row_sources`). Removing a product takes out the rows computed from it, and
puts back those of the first date's other pair, recorded last, where it has one (its
own set still holds them: `refill`); the set stays (`Store.thinned_rows_from`).

A session's default sets (`Store.covering_feature_sets`) leave an archive set out when a
pair's own set of the same kind covers the scope (one first date: the pair's set, as
before); over several first dates, the pairs' own sets cover none, and the archive set
is the one that does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.store.pairs import CHANGE_PAIR_KIND, PAIR_KEYS

if TYPE_CHECKING:
    from eominer.store import Store
    from eominer.store.features import FeatureSet
    from eominer.store.removal import Refill

PREFIX = "archive_"


def is_archive(fs: FeatureSet) -> bool:
    return fs.name.startswith(PREFIX)


def is_pair_set(fs: FeatureSet) -> bool:
    """A set of one change pair (its params name the dates), of which an archive set is
    made."""
    return not is_archive(fs) and "first" in fs.params and "second" in fs.params \
        and (fs.name.startswith("change_") or fs.name == "diff_tails")


def archive_params(params: dict[str, Any]) -> dict[str, Any]:
    """A pair set's parameters less those naming its dates (`PAIR_KEYS`): the archive
    set's identity."""
    return {k: v for k, v in params.items() if k not in PAIR_KEYS}


def archive_of(pair_set: FeatureSet) -> tuple[str, dict[str, Any]]:
    """The name and parameters of the archive set that gathers `pair_set`'s kind."""
    return PREFIX + pair_set.name, archive_params(pair_set.params)


def same_kind(archive: FeatureSet, pair_set: FeatureSet) -> bool:
    return is_pair_set(pair_set) and archive_of(pair_set) == (archive.name, archive.params)


def write_archive(store: Store, pair_set: FeatureSet, first_id: str, sources: Sequence[str],
                  patch_ids: np.ndarray, values: np.ndarray) -> FeatureSet:
    """`pair_set`'s rows (on `first_id`'s patches) into its archive set, in place of
    what an earlier pair of `first_id` wrote there, with the dates they come from
    (`sources`). In the caller's transaction."""
    name, params = archive_of(pair_set)
    fs = store.register_feature_set(name, pair_set.version, params, list(pair_set.columns),
                                    sensor=pair_set.sensor, sources=sources)
    store.execute(f"DELETE FROM {fs.table_name} WHERE patch_id IN "
                  "(SELECT patch_id FROM patches WHERE product_id = ?)", (first_id,))
    store.write_features(fs, patch_ids, values)
    store.record_row_sources(fs.feature_set_id, first_id, sources)
    return fs


def pair_dates(pair_set: FeatureSet) -> list[str]:
    """The products a pair's set was computed from: its dates, a fused pair's S1 dates."""
    return [str(pair_set.params[k]) for k in PAIR_KEYS if pair_set.params.get(k)]


def copy_pair_rows(store: Store, pair_set: FeatureSet, first: str) -> FeatureSet | None:
    """The rows a pair's own set holds on `first` (every level) into its archive set, in
    place of `first`'s rows there; nothing is recomputed. None: it holds none."""
    got = [store.read_features([pair_set.feature_set_id], [first], lv)[:2] for lv in sorted(
        {lv for _, lv in store.feature_levels(pair_set.feature_set_id, [first])})]
    got = [(ids, X) for ids, X in got if len(ids)]
    if not got:
        return None
    with store.transaction():
        return write_archive(store, pair_set, first, pair_dates(pair_set),
                             np.concatenate([ids for ids, _ in got]),
                             np.concatenate([X for _, X in got]))


def archive_pair_set(store: Store, pair_set_id: str | None) -> FeatureSet | None:
    """A pair's set mapped before archive sets existed: its rows join the archive set,
    unless its first date has rows there already (the upgrade to schema version 12,
    `Store.backfill_archive_sets`, newest pair first; a resumed `eominer change --pairs`
    job). None when there is nothing to do."""
    pair_set = store.feature_set(pair_set_id) if pair_set_id else None
    if pair_set is None or not is_pair_set(pair_set):
        return None
    name, params = archive_of(pair_set)
    first = str(pair_set.params["first"])
    existing = store.planned_feature_set(name, pair_set.version, params,
                                         list(pair_set.columns), pair_set.sensor)
    if store.feature_set(existing.feature_set_id) is not None and len(
            store.feature_patch_ids(existing, first)):
        return None
    return copy_pair_rows(store, pair_set, first)


def archive_source(store: Store, archive: FeatureSet, first: str,
                   without: str | None = None) -> FeatureSet | None:
    """The pair's own set whose rows `first` holds in `archive`: that of its change pair
    of the archive's kind recorded last; `without`: the last of those that do not
    involve that product."""
    for (params,) in store.query(
            "SELECT params FROM product_pairs WHERE kind = ? AND first_id = ? "
            "ORDER BY created DESC, pair_id", (CHANGE_PAIR_KIND, first)):
        p = json.loads(params or "{}")
        for key in ("feature_set_id", "tails_feature_set_id"):
            fs = store.feature_set(p[key]) if p.get(key) else None
            if fs is not None and same_kind(archive, fs) and without not in pair_dates(fs):
                return fs
    return None


def refill(store: Store, archive: FeatureSet, first: str, removed: str) -> Refill | None:
    """`first`'s rows of an archive set once `removed` is gone: those of its change pair
    of the set's kind recorded last without it, from that pair's own set."""
    from eominer.store.removal import Refill

    src = archive_source(store, archive, first, without=removed)
    if src is None:
        return None
    return Refill(src.feature_set_id, lambda: copy_pair_rows(store, src, first))
