"""Feature sets: identity (name + parameters + version), one table each, bulk I/O."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from eominer.errors import FeatureError
from eominer.store.archive import is_archive, is_dates, same_kind
from eominer.store.base import StoreBase, utcnow
from eominer.store.schema import RANGE_BLOCK_BITS, feature_table_ddl


@dataclass(frozen=True)
class FeatureSet:
    feature_set_id: str
    name: str
    version: int
    params: dict[str, Any]
    columns: tuple[str, ...]
    table_name: str
    sensor: str | None = None

    @property
    def dims(self) -> int:
        return len(self.columns)


# the params that name the products a set is computed from (schema version 8's backfill)
SOURCE_PARAMS = ("first", "second", "s1_first", "s1_second", "on")


def feature_set_id(name: str, version: int, params: dict[str, Any]) -> str:
    """Stable id: changed parameters give a new id, so old rows never mix with new ones."""
    digest = hashlib.sha1(
        json.dumps(params, sort_keys=True, default=str).encode()
    ).hexdigest()[:10]
    return f"{name}_v{version}_{digest}"


def _in_list(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def row_major(table: pa.Table, first: int = 0, block: int = 2048,
              dest: np.ndarray | None = None) -> np.ndarray:
    """Columns `first..` of an Arrow table as one row-major float32 matrix; with `dest`,
    table row i lands in matrix row dest[i] (a permutation), so rows come out sorted
    without a second full-size copy.

    Column-wise copies into a row-major matrix stride every element; a block of rows
    gathered feature-major (contiguous copies) and transposed while it is still in cache
    is about 2x faster on 1M x 128.
    """
    d = table.num_columns - first
    X = np.empty((table.num_rows, d), np.float32)
    buf = np.empty((d, block), np.float32)
    start = 0
    for batch in table.to_batches():
        cols = [batch.column(first + j).to_numpy(zero_copy_only=False) for j in range(d)]
        for a in range(0, batch.num_rows, block):
            b = min(batch.num_rows, a + block)
            for j, col in enumerate(cols):
                buf[j, : b - a] = col[a:b]
            rows = None if dest is None else dest[start + a:start + b]
            if rows is None or (rows[-1] - rows[0] == b - a - 1
                                and bool((np.diff(rows) == 1).all())):
                lo = start + a if rows is None else int(rows[0])
                X[lo:lo + b - a] = buf[:, : b - a].T  # in order: one contiguous copy
            else:
                X[rows] = buf[:, : b - a].T
        start += batch.num_rows
    return X


def block_ranges(patch_ids: np.ndarray, values: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(blocks, lo, hi): per block of patch ids (`patch_id >> RANGE_BLOCK_BITS`) that the
    rows touch, ascending, each column's smallest and largest finite value ((blocks, d)
    float64, NaN where the block has none): what `feature_ranges` keeps of a write."""
    ids = np.asarray(patch_ids, np.int64)
    v = np.asarray(values)
    if v.dtype.kind != "f":
        v = v.astype(np.float64)
    blocks = ids >> RANGE_BLOCK_BITS
    if len(blocks) > 1 and bool((np.diff(blocks) < 0).any()):
        order = np.argsort(blocks, kind="stable")
        blocks, v = blocks[order], v[order]
    if not np.isfinite(v).all():
        v = np.where(np.isfinite(v), v, np.nan)
    starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]]) if len(blocks) else \
        np.empty(0, np.int64)
    if not len(starts):
        return blocks, np.empty((0, v.shape[1])), np.empty((0, v.shape[1]))
    with np.errstate(invalid="ignore"):  # fmin/fmax skip NaN; all-NaN stays NaN
        return blocks[starts], np.fmin.reduceat(v, starts, axis=0).astype(np.float64), \
            np.fmax.reduceat(v, starts, axis=0).astype(np.float64)


def _grouped(rows: Sequence[tuple]) -> dict[str, tuple[str, ...]]:
    """(key, value) rows, ordered by key, as key -> its values."""
    out: dict[str, tuple[str, ...]] = {}
    for key, value in rows:
        out[key] = (*out.get(key, ()), value)
    return out


class FeaturesMixin(StoreBase):
    def register_feature_set(
        self, name: str, version: int, params: dict[str, Any], columns: Sequence[str],
        sensor: str | None = None, sources: Sequence[str] = (),
    ) -> FeatureSet:
        """Create (or find) the feature set and its table; idempotent. `sources`: the
        products whose pixels it is computed from besides its rows' own (a pair's other
        date, a stack), recorded in `feature_set_sources` (also for a set that exists:
        one made before version 8 gains them when its job is re-run)."""
        fs = self.planned_feature_set(name, version, params, columns, sensor)
        fid = fs.feature_set_id
        exists = self.feature_set(fid) is not None
        if exists and not sources:
            return fs
        with self.transaction():
            if not exists:
                self.execute(feature_table_ddl(fs.table_name, list(fs.columns)))
                self.execute(
                    "INSERT INTO feature_sets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (fid, name, version, json.dumps(params, sort_keys=True, default=str),
                     json.dumps(list(columns)), len(columns), fs.table_name, sensor,
                     utcnow()),
                )
            self._add_sources(fid, sources)
        return fs

    def _add_sources(self, fid: str, sources: Sequence[str]) -> None:
        """Record the products among `sources` (a file never ingested is not one)."""
        have = set(self.feature_set_sources(fid))
        for p in dict.fromkeys(sources):
            if p in have or not self.query(
                    "SELECT COUNT(*) FROM products WHERE product_id = ?", (p,))[0][0]:
                continue
            self.execute("INSERT INTO feature_set_sources VALUES (?, ?)", (fid, p))

    def feature_set_sources(self, fid: str) -> list[str]:
        """The products `fid` was computed from besides its rows' own (none recorded:
        [])."""
        return [r[0] for r in self.query(
            "SELECT product_id FROM feature_set_sources WHERE feature_set_id = ? "
            "ORDER BY product_id", (fid,))]

    def record_row_sources(self, fid: str, product_id: str, sources: Sequence[str],
                           replace: bool = True) -> None:
        """Of a set kept per product: `product_id`'s rows were computed from `sources`'
        pixels besides its own (`feature_row_sources`), in place of what was recorded
        (`replace=False`: as well, for rows written pair by pair). Also recorded as the
        set's sources. A file never ingested is not a source. In the caller's
        transaction, if any."""
        given = [p for p in dict.fromkeys(sources) if p != product_id and self.query(
            "SELECT COUNT(*) FROM products WHERE product_id = ?", (p,))[0][0]]
        with self.transaction():
            if replace:
                self.execute("DELETE FROM feature_row_sources WHERE feature_set_id = ? AND "
                             "product_id = ?", (fid, product_id))
                have: set[str] = set()
            else:  # this product's entries only: fusion records one per pair
                have = {r[0] for r in self.query(
                    "SELECT source_id FROM feature_row_sources WHERE feature_set_id = ? AND "
                    "product_id = ?", (fid, product_id))}
            for p in given:
                if p not in have:
                    self.execute("INSERT INTO feature_row_sources VALUES (?, ?, ?)",
                                 (fid, product_id, p))
            self._add_sources(fid, given)

    def row_sources(self, fid: str) -> dict[str, tuple[str, ...]]:
        """Of a set kept per product: each product with rows in it -> the products its
        rows were computed from besides its own ({}: a set of another kind, or none
        recorded)."""
        return _grouped(self.query(
            "SELECT product_id, source_id FROM feature_row_sources WHERE feature_set_id = ? "
            "ORDER BY product_id, source_id", (fid,)))

    def rows_computed_from(self, product_id: str) -> dict[str, tuple[str, ...]]:
        """Set id -> the products whose rows in it were computed from `product_id`'s
        pixels, over the sets kept per product that it is a source of."""
        return _grouped(self.query(
            "SELECT feature_set_id, product_id FROM feature_row_sources WHERE source_id = ? "
            "ORDER BY feature_set_id, product_id", (product_id,)))

    def kept_per_product(self, fids: Sequence[str]) -> set[str]:
        """Those of `fids` that are kept per product (rows in `feature_row_sources`)."""
        if not fids:
            return set()
        marks = ", ".join("?" for _ in fids)
        return {r[0] for r in self.query(
            "SELECT DISTINCT feature_set_id FROM feature_row_sources WHERE feature_set_id "
            f"IN ({marks})", tuple(fids))}

    def feature_sets_from(self, product_id: str) -> list[FeatureSet]:
        """The feature sets computed from the product's pixels for other products'
        patches (its change pairs' sets, the time series of stacks it is in)."""
        rows = self.query("SELECT feature_set_id FROM feature_set_sources WHERE "
                          "product_id = ? ORDER BY feature_set_id", (product_id,))
        return [fs for (fid,) in rows if (fs := self.feature_set(fid)) is not None]

    def backfill_feature_set_sources(self) -> None:
        """`feature_set_sources` from the product ids the sets' params name (the upgrade
        to schema version 8): a change pair's dates (`first`, `second`, `s1_first`,
        `s1_second`) and a time series' grid (`on`; the rest of its stack is named only
        by a digest, and is recorded when `eominer timeseries` is re-run)."""
        for fs in self.feature_sets():
            self._add_sources(fs.feature_set_id, [
                str(fs.params[k]) for k in SOURCE_PARAMS if fs.params.get(k)])

    def drop_feature_set(self, fid: str) -> None:
        """The set's table and every row that describes it (inside the caller's
        transaction)."""
        fs = self.feature_set(fid)
        if fs is None:
            return
        for table in ("feature_ranges", "feature_set_sources", "feature_row_sources",
                      "feature_sets"):
            self.execute(f"DELETE FROM {table} WHERE feature_set_id = ?", (fid,))
        self.execute(f"DROP TABLE {fs.table_name}")

    def planned_feature_set(
        self, name: str, version: int, params: dict[str, Any], columns: Sequence[str],
        sensor: str | None = None,
    ) -> FeatureSet:
        """The feature set these arguments identify, checked against the database but
        not created (jobs plan with it before they write anything)."""
        fid = feature_set_id(name, version, params)
        fs = FeatureSet(fid, name, version, dict(params), tuple(columns), f"fs_{fid}", sensor)
        existing = self.feature_set(fid)
        if existing is None:
            return fs
        if existing.columns != fs.columns:
            raise FeatureError(
                f"feature set {fid} exists with other columns ({existing.dims} vs "
                f"{fs.dims}): bump the descriptor's version when its output changes"
            )
        return existing

    def feature_set(self, fid: str) -> FeatureSet | None:
        rows = self.query(
            "SELECT feature_set_id, name, version, params, columns, table_name, sensor "
            "FROM feature_sets WHERE feature_set_id = ?", (fid,),
        )
        if not rows:
            return None
        r = rows[0]
        return FeatureSet(r[0], r[1], r[2], json.loads(r[3]), tuple(json.loads(r[4])), r[5], r[6])

    def feature_sets(self, name: str | None = None) -> list[FeatureSet]:
        rows = self.query(
            "SELECT feature_set_id FROM feature_sets"
            + (" WHERE name = ?" if name else "") + " ORDER BY created, feature_set_id",
            (name,) if name else (),
        )
        return [fs for r in rows if (fs := self.feature_set(r[0])) is not None]

    def require_feature_set(self, fid: str) -> FeatureSet:
        """The feature set with id `fid`, or the only one named `fid` (`spectral` for
        `spectral_v1_85957bc81e`): callers keep its `feature_set_id`, never the name."""
        fs = self.feature_set(fid)
        if fs is not None:
            return fs
        named = self.feature_sets(fid)
        if len(named) == 1:
            return named[0]
        if named:
            raise FeatureError(
                f"{len(named)} feature sets are named {fid!r}, with other parameters: "
                + "; ".join(f"{f.feature_set_id} {json.dumps(f.params, sort_keys=True)}"
                            for f in named) + ": give one of these ids")
        known = ", ".join(f.feature_set_id for f in self.feature_sets()) or "none yet"
        raise FeatureError(
            f"feature set {fid!r} is not in {self.url} (known: {known}); "
            "run `eominer extract` first"
        )

    def resolve_feature_sets(self, refs: Sequence[str]) -> list[str]:
        """The ids of `refs` (ids, or names one set alone has), once each, in order."""
        return list(dict.fromkeys(self.require_feature_set(f).feature_set_id for f in refs))

    def feature_sets_holding(self, patch_ids: Sequence[int]) -> list[FeatureSet]:
        """The feature sets that have a row for every one of `patch_ids`."""
        ids = [int(i) for i in patch_ids]
        out = []
        for fs in self.feature_sets():
            n = self.query(f"SELECT COUNT(*) FROM {fs.table_name} WHERE patch_id IN "
                           f"({_in_list(ids)})", ids)[0][0]
            if ids and int(n) == len(set(ids)):
                out.append(fs)
        return out

    def write_features(self, fs: FeatureSet, patch_ids: np.ndarray, values: np.ndarray,
                       replace: bool = True) -> int:
        """Upsert one block of rows; re-writing a block replaces it (no duplicates).
        `replace=False` appends rows known to be new (bulk loads: no MERGE; a patch id
        already there is an error). Either way the block's column ranges
        (`feature_ranges`) grow in the same transaction: the features' only writer."""
        values = np.asarray(values, dtype=np.float32)
        if values.ndim != 2 or values.shape != (len(patch_ids), fs.dims):
            raise FeatureError(
                f"feature block for {fs.feature_set_id} has shape {values.shape}, "
                f"expected ({len(patch_ids)}, {fs.dims})"
            )
        ids = np.asarray(patch_ids, dtype=np.int64)
        cols = {"patch_id": pa.array(ids)}
        for j, c in enumerate(fs.columns):
            cols[c] = pa.array(values[:, j])
        with self.transaction():
            self._grow_ranges(fs.feature_set_id, *block_ranges(ids, values))
            if replace:
                return self.upsert_arrow(fs.table_name, pa.table(cols), keys=["patch_id"])
            return self.insert_arrow(fs.table_name, pa.table(cols))

    def column_stats(self, fs: FeatureSet, level: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Mean and population standard deviation of every column of `fs` over its rows at
        `level` (0 for a column without values), and the number of rows."""
        cols = ", ".join(f"AVG(f.{c}), STDDEV_POP(f.{c})" for c in fs.columns)
        row = self.query(f"SELECT COUNT(*), {cols} FROM {fs.table_name} f JOIN patches p "
                         "ON p.patch_id = f.patch_id WHERE p.level = ?", (int(level),))[0]
        vals = np.array([float(v) if v is not None else 0.0 for v in row[1:]]).reshape(-1, 2)
        return vals[:, 0], vals[:, 1], int(row[0])

    def delete_product_rows(self, fs: FeatureSet, product_id: str) -> None:
        """Take a product's rows (every level) out of `fs`; its ranges stay (they only
        grow). In the caller's transaction, before the rows that replace them."""
        self.execute(f"DELETE FROM {fs.table_name} WHERE patch_id IN "
                     "(SELECT patch_id FROM patches WHERE product_id = ?)", (product_id,))

    def _grow_ranges(self, fid: str, blocks: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                     ) -> None:
        """Widen the stored ranges of `blocks` to take in lo / hi (a rewrite that narrows a
        block's values leaves its range wide: the codes stay valid, a little coarser)."""
        if not len(blocks):
            return
        d = lo.shape[1]
        old = self.query_arrow(
            "SELECT id_block, col_index, min_value, max_value FROM feature_ranges "
            "WHERE feature_set_id = ? AND id_block BETWEEN ? AND ?",
            (fid, int(blocks[0]), int(blocks[-1])))
        if old.num_rows:
            at = np.searchsorted(blocks, old.column(0).to_numpy().astype(np.int64))
            at = np.minimum(at, len(blocks) - 1)
            ok = blocks[at] == old.column(0).to_numpy()
            j = old.column(1).to_numpy().astype(np.int64)[ok]
            at = at[ok]
            with np.errstate(invalid="ignore"):
                lo[at, j] = np.fmin(lo[at, j], old.column(2).to_numpy(zero_copy_only=False)[ok])
                hi[at, j] = np.fmax(hi[at, j], old.column(3).to_numpy(zero_copy_only=False)[ok])
        self.upsert_arrow("feature_ranges", pa.table({
            "feature_set_id": pa.array([fid] * (len(blocks) * d), pa.string()),
            "id_block": pa.array(np.repeat(blocks, d)),
            "col_index": pa.array(np.tile(np.arange(d, dtype=np.int32), len(blocks))),
            "min_value": pa.array(lo.reshape(-1), from_pandas=True),  # NaN -> NULL
            "max_value": pa.array(hi.reshape(-1), from_pandas=True),
        }), keys=["feature_set_id", "id_block", "col_index"])

    def backfill_feature_ranges(self) -> None:
        """`feature_ranges` of every feature set from its stored rows, one pass over each
        table (the upgrade to schema version 6)."""
        for fs in self.feature_sets():
            blk = f"CAST(FLOOR(patch_id / {float(1 << RANGE_BLOCK_BITS)}) AS BIGINT)"
            fin = [f"CASE WHEN {c} BETWEEN -3.4e38 AND 3.4e38 THEN {c} END"
                   for c in fs.columns]
            t = self.query_arrow(
                f"SELECT {blk} AS b, "
                + ", ".join(f"MIN({f}) AS lo{k}, MAX({f}) AS hi{k}" for k, f in enumerate(fin))
                + f" FROM {fs.table_name} GROUP BY {blk}")
            if not t.num_rows:
                continue
            order = np.argsort(t.column(0).to_numpy())
            d = fs.dims
            vals = [t.column(1 + k).to_numpy(zero_copy_only=False).astype(np.float64)[order]
                    for k in range(2 * d)]
            self.execute("DELETE FROM feature_ranges WHERE feature_set_id = ?",
                         (fs.feature_set_id,))
            self._grow_ranges(fs.feature_set_id,
                              t.column(0).to_numpy().astype(np.int64)[order],
                              np.stack(vals[0::2], axis=1), np.stack(vals[1::2], axis=1))

    def count_features(self, fs: FeatureSet) -> int:
        return int(self.query(f"SELECT COUNT(*) FROM {fs.table_name}")[0][0])

    def feature_patch_ids(self, fs: FeatureSet, product_id: str | None = None) -> np.ndarray:
        if product_id is None:
            t = self.query_arrow(f"SELECT patch_id FROM {fs.table_name} ORDER BY patch_id")
        else:
            t = self.query_arrow(
                f"SELECT f.patch_id FROM {fs.table_name} f JOIN patches p "
                "ON f.patch_id = p.patch_id WHERE p.product_id = ? ORDER BY f.patch_id",
                (product_id,),
            )
        return t["patch_id"].to_numpy().astype(np.int64)

    def feature_levels(self, fid: str, product_ids: Sequence[str] | None = None,
                       ) -> list[tuple[str, int]]:
        """(product_id, level) pairs where feature set `fid` has rows (of `product_ids`
        only, when given), in that order."""
        fs = self.require_feature_set(fid)
        where, params = "", []
        if product_ids:
            where, params = f" WHERE p.product_id IN ({_in_list(product_ids)})", list(product_ids)
        rows = self.query(
            f"SELECT DISTINCT p.product_id, p.level FROM {fs.table_name} f JOIN patches p "
            f"ON p.patch_id = f.patch_id{where} ORDER BY 1, 2", params)
        return [(str(r[0]), int(r[1])) for r in rows]

    def feature_coverage(self, product_ids: Sequence[str], level: int | None,
                         ) -> dict[str, dict[str, int]]:
        """For every feature set, how many patches of each product at `level` (None:
        at every level) have features: {feature_set_id: {product_id: n}} (products
        without any left out)."""
        out: dict[str, dict[str, int]] = {}
        if not product_ids:
            return out
        at, params = ("p.level = ? AND ", [int(level)]) if level is not None else ("", [])
        for fs in self.feature_sets():
            rows = self.query(
                f"SELECT p.product_id, COUNT(*) FROM {fs.table_name} f JOIN patches p "
                f"ON p.patch_id = f.patch_id WHERE {at}p.product_id IN "
                f"({_in_list(product_ids)}) GROUP BY p.product_id",
                [*params, *product_ids],
            )
            out[fs.feature_set_id] = {str(r[0]): int(r[1]) for r in rows}
        return out

    def covering_feature_sets(self, product_ids: Sequence[str], level: int) -> list[str]:
        """Feature sets with features for every one of `product_ids` at `level`, oldest
        first: the sets a session over these products can use (a change pair's own set,
        where it covers them, rather than the archive's set of its kind:
        eominer.store.archive; the features of both dates of a set rather than the set
        itself: eominer.change.dates)."""
        covering = [fid for fid, per in self.feature_coverage(product_ids, level).items()
                    if product_ids and all(per.get(p) for p in product_ids)]
        sets = [s for fid in covering if (s := self.feature_set(fid)) is not None]
        # the features of both dates hold a set's own columns (date 1): not both
        dated = {str(fs.params.get("source")) for fs in sets if is_dates(fs)}
        # a pair's own set covers the scope (one first date): not its archive set too
        return [fs.feature_set_id for fs in sets if fs.feature_set_id not in dated and not (
            is_archive(fs) and any(same_kind(fs, other) for other in sets))]

    def _features_sql(self, feature_set_ids: Sequence[str], product_ids: Sequence[str],
                      ) -> tuple[list[FeatureSet], str, str]:
        """(sets, FROM ... WHERE (level and products bound as parameters), column list)."""
        sets = [self.require_feature_set(f) for f in feature_set_ids]
        joins = " ".join(
            f"JOIN {fs.table_name} t{i} ON t{i}.patch_id = t0.patch_id"
            for i, fs in enumerate(sets) if i
        )
        body = (f"FROM {sets[0].table_name} t0 {joins} "
                f"JOIN patches p ON p.patch_id = t0.patch_id "
                f"WHERE p.level = ? AND p.product_id IN ({_in_list(product_ids)})")
        cols = [f"t{i}.{c}" for i, fs in enumerate(sets) for c in fs.columns]
        return sets, body, ", ".join(cols)

    def _feature_scan(self, feature_set_ids: Sequence[str]) -> tuple[str, list[str]]:
        """(FROM the feature sets joined on patch_id, the qualified columns)."""
        sets = [self.require_feature_set(f) for f in feature_set_ids]
        joins = " ".join(f"JOIN {fs.table_name} t{i} ON t{i}.patch_id = t0.patch_id"
                         for i, fs in enumerate(sets) if i)
        return (f"FROM {sets[0].table_name} t0 {joins}",
                [f"t{i}.{c}" for i, fs in enumerate(sets) for c in fs.columns])

    def feature_ranges(self, feature_set_ids: Sequence[str], first_id: int, last_id: int,
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Per column (in the order of `read_features`), bounds of the finite values of the
        features of patch ids first_id..last_id (NaN where a column has none), from
        `feature_ranges`: the blocks of 65,536 ids that hold them, so the bounds may be a
        little wider than the rows' (never narrower). Milliseconds, not a pass over the
        features (`scan_feature_ranges`, the exact range, is 3 s at 10M x 128)."""
        b0, b1 = int(first_id) >> RANGE_BLOCK_BITS, int(last_id) >> RANGE_BLOCK_BITS
        los, his = [], []
        for fid in feature_set_ids:
            fs = self.require_feature_set(fid)
            lo, hi = np.full(fs.dims, np.nan), np.full(fs.dims, np.nan)
            for j, a, b in self.query(
                    "SELECT col_index, MIN(min_value), MAX(max_value) FROM feature_ranges "
                    "WHERE feature_set_id = ? AND id_block BETWEEN ? AND ? GROUP BY col_index",
                    (fid, b0, b1)):
                lo[int(j)] = np.nan if a is None else float(a)
                hi[int(j)] = np.nan if b is None else float(b)
            los.append(lo)
            his.append(hi)
        return np.concatenate(los), np.concatenate(his)

    def scan_feature_ranges(self, feature_set_ids: Sequence[str], first_id: int,
                            last_id: int, memory_limit: str | None = None,
                            ) -> tuple[np.ndarray, np.ndarray]:
        """Per column, the smallest and largest finite value (NaN where a column has none)
        of the features of patch ids first_id..last_id, read from the features themselves
        (a range: DuckDB skips the blocks outside it; the patches between that are not in
        a scope only widen the range). Plain MIN / MAX; the columns where they are not
        finite (NaN, +-inf stored) are asked again without those values."""
        src, cols = self._feature_scan(feature_set_ids)
        where = "WHERE t0.patch_id BETWEEN ? AND ?"
        params = [int(first_id), int(last_id)]

        def ask(aggs: list[str]) -> list[float]:
            t = pa.Table.from_batches(list(self.query_batches(
                f"SELECT {', '.join(aggs)} {src} {where}", params,
                memory_limit=memory_limit)))
            return [np.nan if v is None else float(v) for v in t.to_pylist()[0].values()] \
                if t.num_rows else [np.nan] * len(aggs)

        v = np.asarray(ask([f"{f}({c}) AS a{k}_{f}" for k, c in enumerate(cols)
                            for f in ("MIN", "MAX")]), np.float64)
        lo, hi = v[0::2], v[1::2]
        again = np.flatnonzero(~(np.isfinite(lo) & np.isfinite(hi)))
        if len(again):
            aggs = []
            for k in again.tolist():
                fin = f"CASE WHEN {cols[k]} BETWEEN -3.4e38 AND 3.4e38 THEN {cols[k]} END"
                aggs += [f"MIN({fin}) AS b{k}_MIN", f"MAX({fin}) AS b{k}_MAX"]
            w = np.asarray(ask(aggs), np.float64)
            lo[again], hi[again] = w[0::2], w[1::2]
        return lo, hi

    def feature_batches(self, feature_set_ids: Sequence[str], first_id: int, last_id: int,
                        rows: int = 65536, memory_limit: str | None = None,
                        ) -> Iterator[pa.RecordBatch]:
        """The features of patch ids first_id..last_id as record batches (patch_id, then the
        columns of `read_features`), in no particular order, streamed where the engine can
        (DuckDB): a session holds them compactly without a float32 copy of the whole. The
        caller keeps the rows of its scope (no join with `patches`: its hash table would
        weigh more than the batches)."""
        src, cols = self._feature_scan(feature_set_ids)
        return self.query_batches(
            f"SELECT t0.patch_id, {', '.join(cols)} {src} WHERE t0.patch_id BETWEEN ? AND ?",
            [int(first_id), int(last_id)], rows, memory_limit, ordered=False)

    def read_feature_rows(self, feature_set_ids: Sequence[str], patch_ids: Sequence[int],
                          ) -> tuple[np.ndarray, np.ndarray]:
        """(patch_ids found, sorted; their float32 features) for a few patches, in the
        column order of `read_features` (the exact rows a compact session fits on): one
        statement per 500 ids, `patch_id IN (?, ...)`, which DuckDB pushes into the scan as
        a filter (it decompresses only the vectors holding those ids: 20 rows of a 2M x 128
        table in 0.7-1.0 s warm under load ~12, against 1.3-1.5 s for a UNION ALL of point
        lookups on the primary key, which fetch each row apart)."""
        ids = sorted({int(i) for i in patch_ids})
        src, cols = self._feature_scan(feature_set_ids)
        got_ids, got_X = [], []
        for a in range(0, len(ids), 500):
            part = ids[a:a + 500]
            marks = ", ".join(["?"] * len(part))
            t = self.query_arrow(
                f"SELECT t0.patch_id, {', '.join(cols)} {src} WHERE t0.patch_id IN ({marks})",
                part)
            got_ids.append(t.column(0).to_numpy().astype(np.int64))
            got_X.append(row_major(t, first=1))
        if not got_ids:
            return np.empty(0, np.int64), np.empty((0, len(cols)), np.float32)
        out_ids = np.concatenate(got_ids)
        order = np.argsort(out_ids, kind="stable")
        return out_ids[order], np.concatenate(got_X).reshape(-1, len(cols))[order]

    def read_features(
        self, feature_set_ids: Sequence[str], product_ids: Sequence[str], level: int,
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The scope's feature matrix: (patch_ids, X float32 (n, d), column names).

        Only patches present in every feature set are returned, ordered by patch_id;
        callers compare with the scope's patch count to report missing ones.
        """
        if not feature_set_ids or not product_ids:
            return np.empty(0, np.int64), np.empty((0, 0), np.float32), []
        sets, body, _ = self._features_sql(feature_set_ids, product_ids)
        select = ", ".join(
            f"t{i}.{c} AS {fs.feature_set_id}__{c}" for i, fs in enumerate(sets) for c in fs.columns
        )
        table = self.query_arrow(f"SELECT t0.patch_id, {select} {body}", [level, *product_ids])
        ids = table.column(0).to_numpy().astype(np.int64)
        names = [f"{fs.feature_set_id}__{c}" for fs in sets for c in fs.columns]
        # sorting 1M ids here and filling rows in place is 3x cheaper than ORDER BY over
        # wide rows (the join returns a few sorted runs, one per DuckDB thread)
        dest = None
        if ids.size > 1 and not bool((np.diff(ids) > 0).all()):
            order = np.argsort(ids, kind="stable")
            dest = np.empty_like(order)
            dest[order] = np.arange(len(order))
            ids = ids[order]
        return ids, row_major(table, first=1, dest=dest), names
