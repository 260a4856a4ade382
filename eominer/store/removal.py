"""Taking a product out of the database (`Store.remove_product`, called by
eominer.removal for `eominer products remove` and the app), and what a removal would
take: the sessions that hold it, the feature sets computed from its pixels, which go
whole, and of the sets kept per product (`feature_row_sources`) the rows computed from
it. How those rows are computed again from another partner or pair (`Refill`) is the
business of the modules that write such sets; eominer.removal passes it in. Only the
upgrade to schema version 13 (`backfill_feature_row_sources`) reads the kinds of set
(eominer.store.archive)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eominer.errors import StoreError
from eominer.store.archive import is_archive, is_dates, pair_dates
from eominer.store.base import StoreBase
from eominer.store.fusion import FUSED_SENSOR
from eominer.store.pairs import CHANGE_PAIR_KIND, PAIR_KEYS

if TYPE_CHECKING:
    from eominer.store.features import FeatureSet


def _pair_files(layer_path: str | None, params: str) -> list[str]:
    """A pair's files: its layer and any `*_path` its parameters name (the binary map)."""
    try:
        extra = json.loads(params or "{}")
    except ValueError:
        extra = {}
    named = [v for k, v in extra.items() if k.endswith("_path") and isinstance(v, str)]
    return [p for p in (layer_path, *named) if p]


@dataclass(frozen=True)
class Refill:
    """How a product's rows of a set kept per product come back once one of the products
    they were computed from is removed: `write` writes them from `source` (in the
    removal's transaction; it records their new sources), after `prepare`, run before
    that transaction, has read what takes long (pixels)."""

    source: str  # for the report: a pair's own set id, "first -> second", S1 partners
    write: Callable[[], object]
    prepare: Callable[[], object] | None = None


# how a product's rows of a set kept per product are computed again once the product
# given last is removed: (set, product, removed) -> a Refill, or None
RefillFinder = Callable[["FeatureSet", str, str], "Refill | None"]


@dataclass(frozen=True)
class RemovedProduct:
    """What `remove_product` took out of the database, and the files it leaves."""

    product_id: str
    ard_path: str
    source_path: str
    patches: int
    feature_rows: int  # over every feature set
    annotations: int
    search_results: int
    pair_ids: tuple[str, ...]
    layer_paths: tuple[str, ...]  # change / fusion layers of those pairs
    # of those files, the ones this database's original names too (Store.copied_from)
    shared: tuple[str, ...] = ()
    copied_from: str | None = None
    # feature sets computed from its pixels for other products' patches, dropped whole
    dropped_sets: tuple[str, ...] = ()
    # sets that keep their other rows (`thinned_rows_from`): set id -> the products whose
    # rows went (a fused set's S2 partners; an archive change or `dates_` set's first
    # dates)
    thinned_sets: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # of those products, the ones whose rows came back from another partner or pair of
    # theirs: (set id, product, what from: `Refill.source`)
    refilled: tuple[tuple[str, str, str], ...] = ()


_DELETE_THEM = ("delete those sessions first if they can go (eominer session archive SID, "
                "then eominer session delete SID)")


def _first_five(items: list[str]) -> str:
    return ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")


class RemovalMixin(StoreBase):
    def remove_product(self, product_id: str, dry_run: bool = False,
                       refill: RefillFinder | None = None) -> RemovedProduct:
        """Take a product out of the database in one transaction: its row, its patches,
        their features in every feature set, their annotations (`eominer apply`'s
        scores) and saved-search rows, the pairs it is part of, and the feature sets
        computed from its pixels for other products' patches (`feature_sets_from`), but
        of a set kept per product only the rows computed from it (`thinned_rows_from`),
        computed again from another partner or pair where one is left: `refill(set,
        product, removed)` says how (eominer.removal.refill_for, which knows the kinds
        of set; None: they stay out).
        Refused, writing nothing, while a session's scope holds it (archived ones too:
        their labels are an analyst's work) or uses such a set. Its files are the
        caller's (eominer.removal). `dry_run`: what it would take, nothing written."""
        rows = self.query("SELECT ard_path, source_path, ingested FROM products "
                          "WHERE product_id = ?", (product_id,))
        if not rows:
            raise StoreError(f"product {product_id!r} is not in {self.url}: `eominer products` "
                             "lists the ids")
        self.refuse_if_held(product_id)
        mine = "SELECT patch_id FROM patches WHERE product_id = ?"
        pairs = self.query("SELECT pair_id, layer_path, params, created FROM product_pairs "
                           "WHERE first_id = ? OR second_id = ? ORDER BY pair_id",
                           (product_id, product_id))
        origin = self.copied_from()
        shared: list[str] = []
        if origin is not None:  # written before the copy: the original's files too
            if rows[0][2] < origin[1]:
                shared.append(rows[0][0])
            shared += [f for p in pairs if p[3] < origin[1] for f in _pair_files(*p[1:3])]
        thinned = self.thinned_rows_from(product_id)  # its partners' rows only are stale
        kept = {fs.feature_set_id for fs, _ in thinned}
        derived = [fs for fs in self.feature_sets_from(product_id)  # stale whole
                   if fs.feature_set_id not in kept]
        gone = {fs.table_name for fs in derived}
        tables = [t for (t,) in self.query("SELECT table_name FROM feature_sets ORDER BY "
                                           "table_name") if t not in gone]

        def theirs(partners: Sequence[str]) -> str:
            return ("SELECT patch_id FROM patches WHERE product_id IN "
                    f"({', '.join('?' for _ in partners)})")

        def count(table: str, rows: str = mine, *params: str) -> int:
            return int(self.query(f"SELECT COUNT(*) FROM {table} WHERE patch_id IN ({rows})",
                                  params or (product_id,))[0][0])

        # a product's rows computed again without it, by the set's kind
        refills = [(fs, p, r) for fs, partners in thinned for p in partners
                   if refill is not None and (r := refill(fs, p, product_id)) is not None]
        if not dry_run:  # what takes long (pixels), before the transaction holds the file
            for _, _, r in refills:
                if r.prepare is not None:
                    r.prepare()
        with self.transaction():
            feature_rows = sum(count(t) for t in tables)  # the dropped sets' rows go whole
            feature_rows += sum(count(fs.table_name, theirs(partners), *partners)
                                for fs, partners in thinned if partners)
            counts = {t: count(t) for t in ("annotations", "search_results", "patches")}
            if not dry_run:
                for fs in derived:
                    self.drop_feature_set(fs.feature_set_id)
                for fs, partners in thinned:
                    if partners:
                        self.execute(f"DELETE FROM {fs.table_name} WHERE patch_id IN "
                                     f"({theirs(partners)})", partners)
                    # its rows' sources and the partners': their rows went (a refill
                    # records the new ones); the set's sources are those left
                    fid = fs.feature_set_id
                    for p in (product_id, *partners):
                        self.execute("DELETE FROM feature_row_sources WHERE feature_set_id "
                                     "= ? AND product_id = ?", (fid, p))
                    # (listed here: monetdbe ran a DELETE with a bound NOT IN subquery as a
                    # no-op inside this transaction)
                    left = {s for srcs in self.row_sources(fid).values() for s in srcs}
                    for p in self.feature_set_sources(fid):
                        if p == product_id or p not in left:
                            self.execute("DELETE FROM feature_set_sources WHERE "
                                         "feature_set_id = ? AND product_id = ?", (fid, p))
                for _, _, r in refills:
                    r.write()
                for table in (*tables, "annotations", "search_results", "patches"):
                    self.execute(f"DELETE FROM {table} WHERE patch_id IN ({mine})",
                                 (product_id,))
                # its own rows went with its patches, in any set kept per product
                self.execute("DELETE FROM feature_row_sources WHERE product_id = ?",
                             (product_id,))
                self.execute("DELETE FROM product_pairs WHERE first_id = ? OR second_id = ?",
                             (product_id, product_id))
                self.execute("DELETE FROM products WHERE product_id = ?", (product_id,))
        return RemovedProduct(
            product_id=product_id, ard_path=rows[0][0], source_path=rows[0][1] or "",
            patches=counts["patches"],
            feature_rows=feature_rows, annotations=counts["annotations"],
            search_results=counts["search_results"], pair_ids=tuple(p[0] for p in pairs),
            layer_paths=tuple(path for p in pairs for path in _pair_files(*p[1:3])),
            shared=tuple(shared), copied_from=origin[0] if origin else None,
            dropped_sets=tuple(fs.feature_set_id for fs in derived),
            thinned_sets=tuple((fs.feature_set_id, partners) for fs, partners in thinned),
            refilled=tuple((fs.feature_set_id, p, r.source) for fs, p, r in refills))

    def refuse_if_held(self, product_id: str) -> None:
        """A StoreError naming the sessions whose scope holds the product, or that use a
        feature set computed from it, if any."""
        users = self.sessions_holding(product_id)
        if not users:
            self._refuse_if_features_used(product_id)
            return
        named = _first_five([f"{sid} ({name}{', archived' if st == 'archived' else ''})"
                             for sid, name, st in users])
        raise StoreError(
            f"product {product_id!r} is in the scope of {len(users)} session(s): {named}; "
            "their labels would lose their patches. Nothing was removed: a session keeps "
            f"its products, archived too; {_DELETE_THEM}")

    def thinned_rows_from(self, product_id: str) -> list[tuple[FeatureSet, tuple[str, ...]]]:
        """The sets computed from this product's pixels that are kept per product (a fused
        S1+S2 set, the archive's change sets, the features of both dates: rows in
        `feature_row_sources`), each with the products whose rows there were computed
        from it: those rows go, the set and its other rows stay (its own rows, if any,
        go with its patches). Every other set computed from its pixels goes whole
        (`feature_sets_from`)."""
        sets = self.feature_sets_from(product_id)
        kept = self.kept_per_product([fs.feature_set_id for fs in sets])
        partners = self.rows_computed_from(product_id)
        return [(fs, partners.get(fs.feature_set_id, ())) for fs in sets
                if fs.feature_set_id in kept]

    def last_change_pair(self, first: str, without: str | None = None,
                         ) -> tuple[str, ...] | None:
        """The dates (first, second and a fused pair's S1 dates) of `first`'s change pair
        recorded last (`without`: of those that do not involve that product): the pair
        whose features of both dates `first` holds (eominer.change.dates)."""
        for second, params in self.query(
                "SELECT second_id, params FROM product_pairs WHERE kind = ? AND first_id = ? "
                "ORDER BY created DESC, pair_id", (CHANGE_PAIR_KIND, first)):
            extra = [str(v) for k, v in json.loads(params or "{}").items()
                     if k in PAIR_KEYS and v]
            dates = (first, str(second), *extra)
            if without not in dates:
                return dates
        return None

    def backfill_feature_row_sources(self) -> None:
        """`feature_row_sources` of the sets kept per product written before they were
        recorded (the upgrade to schema version 13), from the pairs that wrote them: a
        first date's rows of an archive change set, the dates of its pair of the set's
        kind recorded last; of a `dates_` set, the second date of its change pair
        recorded last; an S2 product's rows of a fused set, its S1 partners among the
        set's sources."""
        for fs in self.feature_sets():
            fid = fs.feature_set_id
            if not (is_archive(fs) or is_dates(fs) or fs.sensor == FUSED_SENSOR):
                continue  # not kept per product: nothing to record
            for (product,) in self.query(
                    f"SELECT DISTINCT p.product_id FROM {fs.table_name} f JOIN patches p ON "
                    "p.patch_id = f.patch_id ORDER BY p.product_id"):
                if is_archive(fs):
                    src = self.archive_source(fs, product)
                    sources = pair_dates(src) if src is not None else []
                elif is_dates(fs):
                    last = self.last_change_pair(product)
                    sources = [last[1]] if last is not None else []
                else:
                    known = set(self.feature_set_sources(fid))
                    sources = [p["s1_id"] for p in self.fusion_pairs(product)
                               if p["s1_id"] in known]
                if sources:
                    self.record_row_sources(fid, product, sources)

    def _refuse_if_features_used(self, product_id: str) -> None:
        thinned = {fs.feature_set_id: set(partners)
                   for fs, partners in self.thinned_rows_from(product_id)}
        derived = {fs.feature_set_id for fs in self.feature_sets_from(product_id)}
        if not derived:
            return

        def needs(fid: str, scope: set[str]) -> bool:
            """The session would lose rows: a set dropped whole, or rows of its scope."""
            return fid in derived and (fid not in thinned or bool(thinned[fid] & scope))

        users = [(sid, name, sets) for sid, name, fids, pids in self.query(
            "SELECT session_id, name, feature_set_ids, product_ids FROM sessions ORDER BY "
            "created, session_id")
            if (sets := sorted(f for f in json.loads(fids) if needs(f, set(json.loads(pids)))))]
        if users:
            named = _first_five([f"{sid} ({name}: {', '.join(sets)})"
                                 for sid, name, sets in users])
            raise StoreError(
                f"feature sets computed from product {product_id!r}'s pixels are used by "
                f"{len(users)} session(s): {named}. Removing the product drops those sets "
                "(or, of a fused S1+S2 set or an archive change set, the rows of its "
                "partners or pairs in their scope), and "
                f"the sessions could not rank again. Nothing was removed: {_DELETE_THEM}")

    def sessions_holding(self, product_id: str) -> list[tuple[str, str, str]]:
        """(session id, name, status) of the sessions whose scope holds the product."""
        return [(sid, name, status) for sid, name, status, pids in self.query(
            "SELECT session_id, name, status, product_ids FROM sessions "
            "ORDER BY created, session_id") if product_id in json.loads(pids)]
