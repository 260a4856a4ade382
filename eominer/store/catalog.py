"""Products and patches: the catalogue of what was ingested."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from eominer.errors import StoreError
from eominer.store.base import StoreBase, utcnow
from eominer.store.fusion import FUSION_PAIR_KIND
from eominer.store.pairs import CHANGE_PAIR_KIND
from eominer.store.records import PatchWindow, Product

if TYPE_CHECKING:
    from eominer.store.features import FeatureSet

PRODUCT_COLUMNS = (
    "product_id", "sensor", "platform", "processing_level", "tile_id", "acquired", "crs",
    "footprint_wkt", "source_path", "ard_path", "width", "height", "bands", "transform",
    "source_hash", "ingested", "processing_baseline", "cloud_cover", "relative_orbit",
    "orbit_direction", "reflectance_offsets", "quantification", "cloud_mask", "sun_zenith",
    "sun_azimuth",
)


ADD_PRODUCT_ATTEMPTS = 5


def _pair_files(layer_path: str | None, params: str) -> list[str]:
    """A pair's files: its layer and any `*_path` its parameters name (the binary map)."""
    import json

    try:
        extra = json.loads(params or "{}")
    except ValueError:
        extra = {}
    named = [v for k, v in extra.items() if k.endswith("_path") and isinstance(v, str)]
    return [p for p in (layer_path, *named) if p]


def _dates(pair_set: FeatureSet | None) -> set[str]:
    """The products a change pair's own set was computed from (its params name them)."""
    from eominer.change.archive import PAIR_KEYS

    if pair_set is None:
        return set()
    return {str(pair_set.params[k]) for k in PAIR_KEYS if pair_set.params.get(k)}


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
    # of those first dates, the ones whose rows came back from another pair of theirs:
    # (set id, first date, that pair's own set id, or "first -> second" for `dates_`)
    refilled: tuple[tuple[str, str, str], ...] = ()


_DELETE_THEM = ("delete those sessions first if they can go (eominer session archive SID, "
                "then eominer session delete SID)")


def _first_five(items: list[str]) -> str:
    return ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")


def _renumbered(patches: pa.Table, first: int) -> pa.Table:
    """`patches` with ids shifted to start at `first`, parents with them."""
    delta = first - int(patches["patch_id"].to_numpy().min())
    out = patches
    for name in ("patch_id", "parent_id"):  # NULL parents stay NULL
        i = out.schema.get_field_index(name)
        out = out.set_column(i, name, pc.add(out[name], pa.scalar(delta, out.schema[i].type)))
    return out


def _is_id_conflict(exc: Exception, product: Product) -> bool:
    """A concurrent ingest took the same patch ids (or MonetDB aborted the commit for
    it); not the product itself being there already."""
    msg = str(exc).lower()
    if product.product_id.lower() in msg:
        return False
    return "concurrency" in msg or ("patch" in msg and ("primary key" in msg or "constraint" in msg
                                                        or "duplicate key" in msg))


class CatalogMixin(StoreBase):
    def product_exists(self, product_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM products WHERE product_id = ?", (product_id,)))

    def existing_products(self, product_ids: Sequence[str]) -> set[str]:
        """Those of `product_ids` that are in the database."""
        ids = list(product_ids)
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out.update(r[0] for r in self.query(
                f"SELECT product_id FROM products WHERE product_id IN "
                f"({', '.join('?' for _ in chunk)})", chunk))
        return out

    def add_product(self, product: Product, patches: pa.Table) -> pa.Table:
        """Record a product and its patch grid atomically (all rows or none); returns the
        patches as stored.

        Patch ids are checked against the table inside the insert's transaction: when
        another process took the ids the grid was numbered with (two ingests at once on a
        MonetDB server), the grid is renumbered after the highest id, parents included.
        A commit that still collides (MonetDB's optimistic concurrency) is retried."""
        row = dict(product.to_row(), ingested=utcnow())
        for attempt in range(1, ADD_PRODUCT_ATTEMPTS + 1):
            try:
                with self.transaction():
                    stored = patches
                    if self._ids_taken(patches):
                        stored = _renumbered(patches, self.next_patch_id())
                    self.execute(
                        f"INSERT INTO products ({', '.join(PRODUCT_COLUMNS)}) "
                        f"VALUES ({', '.join('?' for _ in PRODUCT_COLUMNS)})",
                        [row[c] for c in PRODUCT_COLUMNS],
                    )
                    self.insert_arrow("patches", stored)
                return stored
            except Exception as exc:
                if attempt == ADD_PRODUCT_ATTEMPTS or not _is_id_conflict(exc, product):
                    raise
        raise AssertionError("unreachable")

    def _ids_taken(self, patches: pa.Table) -> bool:
        if not patches.num_rows:
            return False
        ids = patches["patch_id"].to_numpy()
        rows = self.query("SELECT COUNT(*) FROM patches WHERE patch_id BETWEEN ? AND ?",
                          (int(ids.min()), int(ids.max())))
        return bool(rows[0][0])

    def remove_product(self, product_id: str, dry_run: bool = False) -> RemovedProduct:
        """Take a product out of the database in one transaction: its row, its patches,
        their features in every feature set, their annotations (`eominer apply`'s
        scores) and saved-search rows, the pairs it is part of, and the feature sets
        computed from its pixels for other products' patches (`feature_sets_from`), but
        of a fused S1+S2 set, an archive change set or a `dates_` set only the rows that
        came from it (`thinned_rows_from`; those of a first date's other pair take their
        place where they can).
        Refused, writing nothing, while a session's scope holds it (archived ones too:
        their labels are an analyst's work) or uses such a set. Its files are the
        caller's (eominer.removal). `dry_run`: what it would take, nothing written."""
        from eominer.change.dates import write_pair as write_dates

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

        # a first date refilled from its other pair, last recorded: an archive change
        # set's rows from that pair's own set, the features of both dates recomputed
        refill = [(fs, first, src) for fs, partners in thinned for first in partners
                  if (src := self._refill_source(fs, first, product_id)) is not None]
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
                    self.execute("DELETE FROM feature_set_sources WHERE feature_set_id = ? "
                                 "AND product_id = ?", (fs.feature_set_id, product_id))
                for fs, first, src in refill:
                    if isinstance(src, str):  # the other date of the first's pair
                        write_dates(self, fs, first, src)
                        continue
                    for _, level in self.feature_levels(src.feature_set_id, [first]):
                        ids, X, _ = self.read_features([src.feature_set_id], [first], level)
                        self.write_features(fs, ids, X)
                for table in (*tables, "annotations", "search_results", "patches"):
                    self.execute(f"DELETE FROM {table} WHERE patch_id IN ({mine})",
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
            refilled=tuple((fs.feature_set_id, first, f"{first} -> {src}" if isinstance(
                src, str) else src.feature_set_id) for fs, first, src in refill))

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
        """The sets that keep their other rows without this product, each with the
        products whose rows came from its pixels (`product_pairs`):
        - a fused S1+S2 set (`sensor` 'S1+S2', eominer.fusion.featureset): the S2
          products paired with this S1 product;
        - an archive change set (eominer.change.archive) or the features of both dates
          (eominer.change.dates): the first dates whose rows a change pair with this
          product wrote (its own rows, as a first date, go with its patches).
        Every other set computed from its pixels goes whole (`feature_sets_from`)."""
        from eominer.change.archive import PAIR_KEYS, is_archive
        from eominer.change.dates import is_dates

        sets = self.feature_sets_from(product_id)
        out = []
        if fused := [fs for fs in sets if fs.sensor == "S1+S2"]:
            partners = tuple(r[0] for r in self.query(
                "SELECT DISTINCT first_id FROM product_pairs WHERE kind = ? AND second_id = ? "
                "ORDER BY first_id", (FUSION_PAIR_KIND, product_id)))
            out += [(fs, partners) for fs in fused]
        by_pairs = [fs for fs in sets if is_archive(fs) or is_dates(fs)]
        if not by_pairs:
            return out
        # the first dates of the change pairs this product is a later date of
        firsts = {str(first) for first, second, params in self.query(
            "SELECT first_id, second_id, params FROM product_pairs WHERE kind = ?",
            (CHANGE_PAIR_KIND,))
            if first != product_id and (second == product_id or product_id in {
                str(v) for k, v in json.loads(params or "{}").items() if k in PAIR_KEYS})}
        for fs in by_pairs:  # only those whose rows there came from a pair with it
            out.append((fs, tuple(sorted(f for f in firsts if product_id in (
                _dates(self.archive_source(fs, f)) if is_archive(fs)
                else set(self.last_change_pair(f) or ()))))))
        return out

    def last_change_pair(self, first: str, without: str | None = None,
                         ) -> tuple[str, ...] | None:
        """The dates (first, second and a fused pair's S1 dates) of `first`'s change pair
        recorded last (`without`: of those that do not involve that product): the pair
        whose features of both dates `first` holds (eominer.change.dates)."""
        from eominer.change.archive import PAIR_KEYS

        for second, params in self.query(
                "SELECT second_id, params FROM product_pairs WHERE kind = ? AND first_id = ? "
                "ORDER BY created DESC, pair_id", (CHANGE_PAIR_KIND, first)):
            extra = [str(v) for k, v in json.loads(params or "{}").items()
                     if k in PAIR_KEYS and v]
            dates = (first, str(second), *extra)
            if without not in dates:
                return dates
        return None

    def _refill_source(self, fs: FeatureSet, first: str,
                       removed: str) -> FeatureSet | str | None:
        """What `first`'s rows of `fs` come from once `removed` is gone: an archive change
        set's other pair's own set; for the features of both dates, the other date of
        `first`'s last pair left, when the source set has both dates on one grid."""
        from eominer.change.dates import is_dates, same_grid

        if not is_dates(fs):
            return self.archive_source(fs, first, without=removed)
        last = self.last_change_pair(first, without=removed)
        source = str(fs.params.get("source"))
        if last is None or not same_grid(self, first, last[1]) or not all(
                self.feature_levels(source, [p]) for p in (first, last[1])):
            return None
        return last[1]

    def archive_source(self, archive: FeatureSet, first: str,
                       without: str | None = None) -> FeatureSet | None:
        """The pair's own set whose rows `first` holds in `archive` (eominer.change.archive):
        that of its change pair of the archive's kind recorded last; `without`: the
        last of those that do not involve that product."""
        from eominer.change.archive import same_kind

        for (params,) in self.query(
                "SELECT params FROM product_pairs WHERE kind = ? AND first_id = ? "
                "ORDER BY created DESC, pair_id", (CHANGE_PAIR_KIND, first)):
            p = json.loads(params or "{}")
            for key in ("feature_set_id", "tails_feature_set_id"):
                fs = self.feature_set(p[key]) if p.get(key) else None
                if fs is not None and same_kind(archive, fs) and without not in _dates(fs):
                    return fs
        return None

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

    def delete_product(self, product_id: str) -> None:
        with self.transaction():
            self.execute("DELETE FROM patches WHERE product_id = ?", (product_id,))
            self.execute("DELETE FROM products WHERE product_id = ?", (product_id,))

    def next_patch_id(self) -> int:
        rows = self.query("SELECT MAX(patch_id) FROM patches")
        return int(rows[0][0] or 0) + 1

    def products(self, *, tiles: Sequence[str] = (), sensor: str | None = None,
                 since: dt.datetime | None = None, before: dt.datetime | None = None,
                 max_cloud: float | None = None) -> pa.Table:
        """The catalogue as one Arrow table (columnar: tables, CLI output, SQL-like use),
        oldest first; optionally only `tiles`, one `sensor`, acquired in [since, before),
        and with cloud cover at most `max_cloud` % (Sentinel-1 has no clouds: kept; an
        optical product of unknown cover is left out)."""
        given = [(sql, v) for sql, v in (
            ("p.sensor = ?", sensor or None), ("p.acquired >= ?", since),
            ("p.acquired < ?", before),
            ("(p.sensor = 'S1' OR p.cloud_cover <= ?)",
             None if max_cloud is None else float(max_cloud))) if v is not None]
        where = [sql for sql, _ in given]
        params: list[Any] = [v for _, v in given]
        if tiles:
            where.append(f"p.tile_id IN ({', '.join('?' * len(tiles))})")
            params += list(tiles)
        return self.query_arrow(
            "SELECT p.product_id, p.sensor, p.platform, p.processing_level, p.tile_id, "
            "p.acquired, p.width, p.height, p.crs, p.ard_path, p.source_path, p.bands, "
            "p.footprint_wkt, p.transform, p.processing_baseline, p.cloud_cover, "
            "p.relative_orbit, p.orbit_direction, p.reflectance_offsets, p.quantification, "
            "p.cloud_mask, p.sun_zenith, p.sun_azimuth, "
            "(SELECT COUNT(*) FROM patches q WHERE q.product_id = p.product_id) AS patches "
            "FROM products p" + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY p.acquired, p.product_id", params)

    def product_list(self) -> list[Product]:
        """Every product, oldest acquisition first, with its patch count."""
        return [Product.from_row(r) for r in self._product_rows()]

    def product(self, product_id: str) -> Product | None:
        """The product `product_id`, or None."""
        rows = self._product_rows(product_id)
        return Product.from_row(rows[0]) if rows else None

    def _product_rows(self, product_id: str | None = None) -> list[dict[str, Any]]:
        where = " WHERE p.product_id = ?" if product_id is not None else ""
        return self.query_arrow(
            "SELECT p.*, (SELECT COUNT(*) FROM patches q WHERE q.product_id = p.product_id) "
            f"AS patches FROM products p{where} ORDER BY p.acquired, p.product_id",
            (product_id,) if product_id is not None else (),
        ).to_pylist()

    def patches(self, product_id: str | None = None, level: int | None = None) -> pa.Table:
        where, params = [], []
        if product_id is not None:
            where.append("product_id = ?")
            params.append(product_id)
        if level is not None:
            where.append("level = ?")
            params.append(level)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return self.query_arrow(f"SELECT * FROM patches{clause} ORDER BY patch_id", params)

    def patch_windows(self, patch_ids: Sequence[int]) -> list[PatchWindow]:
        """The pixel windows of `patch_ids`, in the order given; raises StoreError naming
        the ids that are not in the database."""
        ids = [int(i) for i in patch_ids]
        if not ids:
            return []
        found: dict[int, PatchWindow] = {}
        for start in range(0, len(ids), 1000):
            part = sorted(set(ids[start:start + 1000]))
            t = self.query_arrow(
                "SELECT patch_id, product_id, x_off, y_off, size_px FROM patches "
                f"WHERE patch_id IN ({', '.join('?' for _ in part)})", part)
            for r in t.to_pylist():
                found[int(r["patch_id"])] = PatchWindow(
                    int(r["patch_id"]), r["product_id"], int(r["x_off"]), int(r["y_off"]),
                    int(r["size_px"]))
        missing = [i for i in ids if i not in found]
        if missing:
            raise StoreError(f"patch(es) {missing[:5]} are not in {self.url}: ingest their "
                             "products first (eominer ingest PATH)")
        return [found[i] for i in ids]

    def patch_ids(self, product_ids: list[str], level: int) -> np.ndarray:
        ids: list[np.ndarray] = []
        for pid in product_ids:
            t = self.query_arrow(
                "SELECT patch_id FROM patches WHERE product_id = ? AND level = ? ORDER BY patch_id",
                (pid, level),
            )
            ids.append(t["patch_id"].to_numpy().astype(np.int64))
        return np.concatenate(ids) if ids else np.empty(0, np.int64)
