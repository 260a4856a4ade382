"""Sets that hold every change pair's rows, each on its pair's first date: the archive's
change sets (`archive_<name>`) and the features of both dates (`dates_<name>`).

`eominer change` stores a pair's per-patch scores (`change_<method>`) and `diff_tails`
as a set of that pair alone, on its first date's patches: its parameters name both
dates (a "pair set"). A session over several places, or `eominer apply` of its model to
a pair mapped later, needs one set across pairs. So each pair's rows are also written to
`archive_<name>` (`archive_change_selftrain_regression`, `archive_diff_tails`): the same
columns and parameters less the dates, rows on the first date of every pair mapped with
them. A product that is the first date of two pairs holds the rows of the one recorded
last (`archive_source`); which dates they were computed from is recorded with them
(`feature_row_sources`). Removing a product takes out the rows computed from it, and
puts back those of the first date's other pair, recorded last, where it has one (its
own set still holds them: `archive_refill`); the set stays (`Store.thinned_rows_from`).
The features of both dates are computed by eominer.change.dates; only their name is
here, because the store tells such sets apart.

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

from eominer.store.base import StoreBase
from eominer.store.pairs import CHANGE_PAIR_KIND, PAIR_KEYS

if TYPE_CHECKING:
    from eominer.store.features import FeatureSet
    from eominer.store.removal import Refill

ARCHIVE_PREFIX = "archive_"
DATES_PREFIX = "dates_"


def is_archive(fs: FeatureSet) -> bool:
    return fs.name.startswith(ARCHIVE_PREFIX)


def is_dates(fs: FeatureSet) -> bool:
    """The features of both dates of a set (eominer.change.dates)."""
    return fs.name.startswith(DATES_PREFIX)


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
    return ARCHIVE_PREFIX + pair_set.name, archive_params(pair_set.params)


def same_kind(archive: FeatureSet, pair_set: FeatureSet) -> bool:
    return is_pair_set(pair_set) and archive_of(pair_set) == (archive.name, archive.params)


def pair_dates(pair_set: FeatureSet) -> list[str]:
    """The products a pair's set was computed from: its dates, a fused pair's S1 dates."""
    return [str(pair_set.params[k]) for k in PAIR_KEYS if pair_set.params.get(k)]


class ArchiveMixin(StoreBase):
    def write_archive(self, pair_set: FeatureSet, first_id: str, sources: Sequence[str],
                      patch_ids: np.ndarray, values: np.ndarray) -> FeatureSet:
        """`pair_set`'s rows (on `first_id`'s patches) into its archive set, in place of
        what an earlier pair of `first_id` wrote there, with the dates they come from
        (`sources`). In the caller's transaction."""
        name, params = archive_of(pair_set)
        fs = self.register_feature_set(name, pair_set.version, params,
                                       list(pair_set.columns), sensor=pair_set.sensor,
                                       sources=sources)
        self.delete_product_rows(fs, first_id)
        self.write_features(fs, patch_ids, values)
        self.record_row_sources(fs.feature_set_id, first_id, sources)
        return fs

    def copy_pair_rows(self, pair_set: FeatureSet, first: str) -> FeatureSet | None:
        """The rows a pair's own set holds on `first` (every level) into its archive set,
        in place of `first`'s rows there; nothing is recomputed. None: it holds none."""
        got = [self.read_features([pair_set.feature_set_id], [first], lv)[:2]
               for lv in sorted({lv for _, lv in self.feature_levels(
                   pair_set.feature_set_id, [first])})]
        got = [(ids, X) for ids, X in got if len(ids)]
        if not got:
            return None
        with self.transaction():
            return self.write_archive(pair_set, first, pair_dates(pair_set),
                                      np.concatenate([ids for ids, _ in got]),
                                      np.concatenate([X for _, X in got]))

    def archive_pair_set(self, pair_set_id: str | None) -> FeatureSet | None:
        """A pair's set mapped before archive sets existed: its rows join the archive set,
        unless its first date has rows there already (the upgrade to schema version 12,
        `backfill_archive_sets`, newest pair first; a resumed `eominer change --pairs`
        job). None when there is nothing to do."""
        pair_set = self.feature_set(pair_set_id) if pair_set_id else None
        if pair_set is None or not is_pair_set(pair_set):
            return None
        first = str(pair_set.params["first"])
        existing = self.archive_set_of(pair_set)
        if existing is not None and len(self.feature_patch_ids(existing, first)):
            return None
        return self.copy_pair_rows(pair_set, first)

    def archive_sets_of(self, feature_set_ids: Sequence[str]) -> dict[str, FeatureSet]:
        """Of these sets, each change pair's own one -> the archive's set of its kind,
        where one was written (what a model of a pair's set reads for other products)."""
        out = {}
        for fid in feature_set_ids:
            fs = self.feature_set(fid)
            archive = self.archive_set_of(fs) if fs is not None and is_pair_set(fs) else None
            if archive is not None:
                out[fid] = archive
        return out

    def archive_set_of(self, pair_set: FeatureSet) -> FeatureSet | None:
        """The archive's set of a pair's own set's kind (same method and parameters, every
        mapped pair's rows), if one was written."""
        name, params = archive_of(pair_set)
        planned = self.planned_feature_set(name, pair_set.version, params,
                                           list(pair_set.columns), pair_set.sensor)
        return self.feature_set(planned.feature_set_id)

    def backfill_archive_sets(self) -> None:
        """The archive's change sets from the change pairs recorded before they existed
        (the upgrade to schema version 12): each pair's own sets' rows, the pair
        recorded last of each first date first, so that it is the one a first date
        holds."""
        for (params,) in self.query(
                "SELECT params FROM product_pairs WHERE kind = ? ORDER BY created DESC, "
                "pair_id", (CHANGE_PAIR_KIND,)):
            p = json.loads(params or "{}")
            for key in ("feature_set_id", "tails_feature_set_id"):
                self.archive_pair_set(p.get(key))

    def archive_source(self, archive: FeatureSet, first: str,
                       without: str | None = None) -> FeatureSet | None:
        """The pair's own set whose rows `first` holds in `archive`: that of its change
        pair of the archive's kind recorded last; `without`: the last of those that do
        not involve that product."""
        for (params,) in self.query(
                "SELECT params FROM product_pairs WHERE kind = ? AND first_id = ? "
                "ORDER BY created DESC, pair_id", (CHANGE_PAIR_KIND, first)):
            p = json.loads(params or "{}")
            for key in ("feature_set_id", "tails_feature_set_id"):
                fs = self.feature_set(p[key]) if p.get(key) else None
                if fs is not None and same_kind(archive, fs) \
                        and without not in pair_dates(fs):
                    return fs
        return None

    def archive_refill(self, archive: FeatureSet, first: str, removed: str,
                       ) -> Refill | None:
        """`first`'s rows of an archive set once `removed` is gone: those of its change
        pair of the set's kind recorded last without it, from that pair's own set."""
        from eominer.store.removal import Refill

        src = self.archive_source(archive, first, without=removed)
        if src is None:
            return None
        return Refill(src.feature_set_id, lambda: self.copy_pair_rows(src, first))
