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
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from eominer.errors import ScopeTooLargeError, SessionError
from eominer.learning import int8_kernels as kernels
from eominer.learning.compact import CompactMatrix, choose_dtype, cores, quant_params

if TYPE_CHECKING:
    from concurrent.futures import Future

    import pyarrow as pa
    from numba.typed import List

    from eominer.learning.engine import SessionData
    from eominer.store import Store

LOAD_DB_MEMORY = "256MB"  # DuckDB's buffer pool while a compact session loads (else it
# keeps the scanned blocks cached: 1.1 GB of RSS at 2M x 128, against 0.26 GB of codes)


def feature_signature(feature_set_ids: Sequence[str], names: list[str], patch_ids: np.ndarray,
                      X: np.ndarray | CompactMatrix) -> str:
    """Fingerprint of the raw feature matrix: ids, columns, rows and column sums (of a
    CompactMatrix from `load_compact`: the exact sums its loader took on the way)."""
    h = hashlib.sha1()
    h.update(json.dumps([list(feature_set_ids), names]).encode())
    h.update(np.asarray(patch_ids, np.int64).tobytes())
    if isinstance(X, CompactMatrix):
        sums = X.stats["raw_sums"]
    else:
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


def weigh_feature_sets(data: SessionData) -> None:
    """Apply `set_weights` to a SessionData in place (its `std` absorbs the weights, so
    `(x - data.mean) / data.std` still maps raw features into the session's space)."""
    w = set_weights(data.names)
    if w is not None:
        data.X *= w.astype(data.X.dtype)
        data.std = (data.std / w).astype(data.std.dtype)


def map_centres(patches: pa.Table, at: slice | np.ndarray) -> np.ndarray:
    """Centres of the rows `at` of a patches table in one frame whatever each product's
    CRS: WGS84 degrees, the longitude scaled by the cosine of the mean latitude, so that
    a step east and a step north are about as far on the ground. Longitudes are taken
    within 180 degrees of their circular mean, so a scope across the antimeridian stays
    in one piece."""
    lon, lat = ((patches[f"min_{c}"].to_numpy()[at] + patches[f"max_{c}"].to_numpy()[at]) / 2
                for c in ("lon", "lat"))
    centres = np.column_stack([lon, lat]).astype(np.float64)
    if len(centres):
        a = np.radians(centres[:, 0])
        ref = np.degrees(np.arctan2(np.sin(a).mean(), np.cos(a).mean()))
        centres[:, 0] = ref + (centres[:, 0] - ref + 180.0) % 360.0 - 180.0
        centres[:, 0] *= np.cos(np.radians(float(lat.mean())))
    return centres


STORED_AREA = "the area stored with the session"  # how an area read back is named


def load_scope(store: Store, product_ids: Sequence[str], level: int,
               feature_set_ids: Sequence[str], within: np.ndarray | None = None,
               max_cloud: float | None = None, aoi_wkt: str | None = None,
               where: str | None = None, dtype: str = "auto",
               aoi_source: str = STORED_AREA,
               ) -> tuple[np.ndarray, np.ndarray | CompactMatrix, list[str], np.ndarray, int]:
    """Features of the scope: (patch_ids, raw X, names, centres, n_missing). `aoi_source`
    names the area in messages (its file when a session is created).

    `dtype` (`compact.choose_dtype`): 'float32' reads a float32 matrix; 'int8' streams the
    store's record batches straight into int8 codes (`load_compact`), never holding a
    float32 copy of the whole; 'auto' picks int8 above 1 GiB of float32. A scope that
    cannot fit in the memory available is refused before loading (`check_memory`)."""
    for pid in product_ids:
        if not store.product_exists(pid):
            raise SessionError(f"product {pid!r} is not in {store.url}: ingest it first")
    # only what is used: at 10M the whole row is ~1 GB
    cols = ["patch_id", "min_lon", "min_lat", "max_lon", "max_lat"]
    cols += ["cloud_fraction"] if max_cloud is not None else []
    patches = store.scope_patches(list(product_ids), level, columns=cols)
    pids = patches["patch_id"].to_numpy().astype(np.int64)
    if within is not None:
        pids = pids[np.isin(pids, within)]
    if max_cloud is not None and len(pids):
        pids = _clear_enough(patches, pids, float(max_cloud), list(product_ids), level)
    if aoi_wkt and len(pids):
        pids = _inside(patches, pids, aoi_wkt, list(product_ids), level, aoi_source)
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
    # the centres of the scope's patches; when no filter dropped any (whole products, the
    # usual case) the rows are all of them: no search and no gather (~1 s at 10M)
    at = slice(None) if len(pids) == patches.num_rows else \
        np.searchsorted(patches["patch_id"].to_numpy(), pids)
    centres = map_centres(patches, at)
    del patches, at  # before the features: the loading peak is the matrix
    sets = [store.require_feature_set(f) for f in feature_set_ids]
    d = sum(fs.dims for fs in sets)
    kind = choose_dtype(dtype, len(pids), d)
    check_memory(len(pids), d, kind)
    if kind == "int8":
        ids, X, present = load_compact(store, list(feature_set_ids), pids)
        names = [f"{fs.feature_set_id}__{c}" for fs in sets for c in fs.columns]
        centres = centres[present] if not present.all() else centres
    else:
        ids, X, names = store.read_features(list(feature_set_ids), list(product_ids), level)
        keep = np.isin(ids, pids)
        ids, X = ids[keep], X[keep]
        centres = centres[np.searchsorted(pids, ids)] if len(ids) else centres[:0]
    if len(ids) == 0:
        raise SessionError(
            f"no features for the {len(pids)} patches of the scope in feature sets "
            f"{list(feature_set_ids)}: " + covering_hint(store, product_ids, level,
                                                         feature_set_ids)
        )
    return ids, X, names, centres, int(len(pids) - len(ids))


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def check_memory(n: int, d: int, kind: str, available: int | None = None) -> None:
    """Refuse, before loading, a scope whose matrix would not fit in the memory available
    (`available_memory`; nothing checked where it cannot be read): ScopeTooLargeError.
    Estimate: float32 reads the store's Arrow result and the matrix (2 x 4 bytes per
    value); int8 1 byte per value; both plus ~64 bytes per patch (ids, centres, norms,
    scores, the patch table while the scope is chosen)."""
    per_value = 8 if kind == "float32" else 1
    need = int(n) * (int(d) * per_value + 64)
    if available is None:
        available = available_memory()
        if available is None:
            return
    if need > available:
        raise ScopeTooLargeError(
            f"the scope's {n:,} patches x {d} features need ~{need / 2**30:.1f} GiB to load "
            f"as {kind}, and {available / 2**30:.1f} GiB of memory is available: narrow the "
            "scope (fewer products, an AOI or a WHERE), use fewer feature sets"
            + (", or hold the features as int8 (features_dtype='int8')"
               if kind == "float32" else ", or free memory"), n, need, available)


def load_compact(store: Store, feature_set_ids: list[str], pids: np.ndarray,
                 threads: int | None = None,
                 ) -> tuple[np.ndarray, CompactMatrix, np.ndarray]:
    """The features of the scope `pids` (sorted) as int8 codes, straight from the store's
    record batches: (patch_ids with features, CompactMatrix of the raw values, mask of
    `pids` that have features).

    Each column's finite range over the patch ids first..last of the scope (the codes'
    scale and offset) is read from the ranges every write keeps (milliseconds); then the
    store streams record batches of 65,536 rows, unordered (DuckDB's buffer pool capped at
    LOAD_DB_MEMORY), and each batch is quantised in one compiled pass
    (`int8_kernels.quantise_rows`) into its rows of the row-major codes, at the batch's
    sorted places, a worker thread per stretch of rows,
    while the store produces the next batch (two batches in flight: the quantisation of
    one overlaps the production of the next instead of following it); rows outside the
    scope are dropped.
    The exact column sums (signature), the mean and standard deviation of the finite
    values (float64 sums) and the positions of non-finite values are taken on the way:
    `X.stats`. `X.exact_rows(patch_ids)` reads exact float32 rows back from the store
    (what a round fits on).

    Where the time goes at 10M x 128 (docs/benchmarks.md, "10M-patch sessions"): DuckDB's
    production of the float32 batches is most of it (~12 s of CPU under load ~7: copying
    the blocks out of the page cache, decompressing, converting to Arrow, holding the GIL
    for part of it), then the quantisation (6.2 s of CPU with the previous kernel: 3.6-4.8
    ns a value on one thread; this one 2.0-3.2 ns), and the main thread's glue (~1.7 s of
    CPU).
    The ranges once came from an aggregate query, a second read of every block (1.5-3
    s); every write now keeps them per block of patch ids (`Store.feature_ranges`).
    Computing the codes in DuckDB's SQL was measured and not kept: its arithmetic and
    casts cost 10-13 ns a value in this DuckDB build, more than the bytes they save."""
    first, last = int(pids[0]), int(pids[-1])
    warming = threading.Thread(target=kernels.warm, daemon=True)  # while DuckDB works
    warming.start()
    lo, hi = store.feature_ranges(feature_set_ids, first, last)  # kept by every write
    scale, offset = quant_params(lo, hi)
    d, n = len(lo), len(pids)
    inv = (1.0 / scale).astype(np.float32)
    off = offset.astype(np.float32)
    codes = np.empty((n, d), np.int8)  # row-major (compact.py)
    present = np.zeros(n, bool)
    threads = max(1, int(threads or cores()))
    # per batch in flight (two: one quantised while the store produces the next) and
    # worker: raw sums, finite sums, sums of squared codes, finite counts per column
    acc = np.zeros((2, threads, 4, d))
    total = np.zeros((4, d))
    bad_r: list[np.ndarray] = []
    bad_c: list[np.ndarray] = []

    def quantise(slot: int, k: int, a: int, b: int, cols: list[np.ndarray] | List[np.ndarray],
                 sel: np.ndarray | None, pos: np.ndarray, run: bool) -> None:
        """Rows a..b of one batch, every column, into their rows of codes (a worker per
        stretch of rows, so that no two write the same cache line)."""
        kernels.quantise_rows(cols, sel, codes, None if run else pos, int(pos[0]), a, b,
                              inv, off, acc[slot, k])

    def finish(futures: list[Future[None]], slot: int, cols: list[np.ndarray],
               ok: np.ndarray | None, pos: np.ndarray) -> None:
        """Wait for a batch's workers; take its sums, and where its non-finite values are
        (rare: a second look at its columns only then)."""
        for f in futures:
            f.result()
        part = acc[slot].sum(0)
        total[:] += part
        if part[3].any():
            for j, c in enumerate(cols):
                bad = ~np.isfinite(((c if ok is None else c[ok]) - off[j]) * inv[j])
                if bad.any():
                    bad_r.append(pos[bad])
                    bad_c.append(np.full(int(bad.sum()), j, np.int64))

    pending: tuple | None = None  # the batch being quantised while the next is produced
    slot = 0
    with ThreadPoolExecutor(threads) as pool:
        for batch in store.feature_batches(feature_set_ids, first, last, rows=65536,
                                           memory_limit=LOAD_DB_MEMORY):
            if batch.num_rows == 0:
                continue
            ids = batch.column(0).to_numpy().astype(np.int64)
            p0 = int(np.searchsorted(pids, ids[0]))
            if np.array_equal(pids[p0:p0 + len(ids)], ids):  # the usual case: a run of the
                # scope's rows in order (one compare, not a search per id)
                pos = np.arange(p0, p0 + len(ids))
                ok, every, run = None, True, True
            else:
                pos = np.minimum(np.searchsorted(pids, ids), max(n - 1, 0))
                ok = pids[pos] == ids
                every = bool(ok.all())
                if not every:  # rows outside the scope
                    pos = pos[ok]
                run = len(pos) > 0 and int(pos[-1]) - int(pos[0]) == len(pos) - 1 and \
                    bool((np.diff(pos) == 1).all())
            m = len(pos)
            if m == 0:
                continue
            if run:
                present[pos[0]:pos[-1] + 1] = True
            else:
                present[pos] = True
            cols = [np.ascontiguousarray(batch.column(j + 1).to_numpy(zero_copy_only=False),
                                         np.float32) for j in range(d)]
            sel = None if every else np.flatnonzero(ok)
            cuts = np.linspace(0, m, threads + 1).astype(np.int64).tolist()
            typed = kernels.as_columns(cols)
            if pending is not None:  # at most two batches in flight: memory stays flat
                finish(*pending)
            warming.join()  # the kernels' first load overlapped the first batch
            acc[slot] = 0.0
            futures = [pool.submit(quantise, slot, k, cuts[k], cuts[k + 1], typed, sel, pos,
                                   run) for k in range(threads)]
            pending = (futures, slot, cols, None if every else ok, pos)
            slot = 1 - slot
        if pending is not None:
            finish(*pending)
    raw, fsum, s2, nbad = total
    cnt = present.sum() - nbad
    keep = None if present.all() else np.flatnonzero(present)
    if keep is not None:  # patches without features: close the gaps in place, in order
        for s in range(0, len(keep), 65536):  # keep[i] >= i: reads ahead of the writes
            codes[s:s + 65536] = codes[keep[s:s + 65536]]
        codes = codes[:len(keep)] if len(keep) > 0.9 * n else \
            np.ascontiguousarray(codes[:len(keep)])
    X = CompactMatrix(codes, scale, offset)
    if bad_r:
        r = np.concatenate(bad_r)
        X.nonfinite = (r if keep is None else np.searchsorted(keep, r),
                       np.concatenate(bad_c).astype(np.int64))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, fsum / np.maximum(cnt, 1), 0.0)
        mean_t = (mean - offset) / scale
        std = scale * np.sqrt(np.maximum(s2 / np.maximum(cnt, 1) - mean_t * mean_t, 0.0))
    std[~(std > 1e-12)] = 1.0
    X.stats = {"raw_sums": raw, "mean": mean.astype(np.float32), "std": std.astype(np.float32),
               "n_nonfinite": int(sum(len(r) for r in bad_r))}

    def exact_rows(patch_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return store.read_feature_rows(feature_set_ids, patch_ids)

    X.exact_rows = exact_rows
    return (pids if keep is None else pids[keep]), X, present


def _clear_enough(patches: pa.Table, pids: np.ndarray, max_cloud: float, product_ids: list[str],
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


def scope_products(store: Store, level: int, feature_set_ids: Sequence[str] = (),
                   aoi_wkt: str | None = None) -> tuple[list[str], str]:
    """The products of a scope given by an area or a WHERE rather than by ids: those
    with patches at `level`, with features of every one of `feature_set_ids` there (when
    given), and whose footprint touches the area (when given), as the app ticks them
    for an area. Returns (ids, what chose them); none left: a SessionError that says
    which condition left none, and what to do."""
    import shapely

    products = [p for p in store.product_list() if p.n_patches]
    levels = {p.product_id: store.patch_levels([p.product_id]) for p in products}
    ids = [i for i, lv in levels.items() if level in lv]
    how = f"every product with patches at level {level}"
    if not ids:
        known = sorted({lv for lvs in levels.values() for lv in lvs})
        raise SessionError(f"no product has patches at level {level} (levels in the "
                           f"database: {known or 'none: ingest products first'}): choose "
                           "--level among them")
    if feature_set_ids:
        cover = store.feature_coverage(ids, level)
        ids = [i for i in ids if all(cover.get(f, {}).get(i) for f in feature_set_ids)]
        how += f" and features of {', '.join(feature_set_ids)}"
        if not ids:
            raise SessionError(f"no product has features of every one of "
                               f"{', '.join(feature_set_ids)} at level {level}: run "
                               "`eominer extract` for them, or name products with --product")
    if aoi_wkt:
        area = shapely.from_wkt(aoi_wkt)
        at = {p.product_id: p.footprint_wkt for p in products}
        n = len(ids)
        ids = [i for i in ids if at[i] and shapely.from_wkt(at[i]).intersects(area)]
        how += " whose footprint touches the area of interest"
        if not ids:
            raise SessionError(f"the area of interest {area.bounds} (lon/lat) touches the "
                               f"footprint of none of {n} product{'s' if n > 1 else ''} "
                               f"({how[:how.index(' whose')]}): check its extent, or name "
                               "products with --product")
    return ids, how


def covering_hint(store: Store, product_ids: Sequence[str], level: int,
                  wanted: Sequence[str] = ()) -> str:
    """What to do when the chosen feature sets (`wanted`) have no features for a scope:
    where a pair's set is (on its first product), the sets that do cover the scope, else
    `eominer extract`."""
    from eominer.store.archive import archive_of, is_pair_set

    pairs = []
    for fid in wanted:
        fs = store.feature_set(fid)
        first = fs.params.get("first") if fs is not None else None
        if first and first not in product_ids:
            archive = (f", or use {archive_of(fs)[0]} (every mapped pair's rows, on each "
                       "pair's first date)") if is_pair_set(fs) else ""
            pairs.append(f"{fid} is a change pair's set, stored on its first product "
                         f"{first} (-> {fs.params.get('second')}): put that product in the "
                         f"scope{archive}; ")
    covering = store.covering_feature_sets(list(product_ids), level)
    if covering:
        return "".join(pairs) + (f"use the feature sets with features for these products at "
                                 f"level {level}: {', '.join(covering)}")
    return "".join(pairs) + (f"run `eominer extract` for these products (no feature set "
                             f"covers them at level {level})")


def _inside(patches: pa.Table, pids: np.ndarray, aoi_wkt: str, product_ids: list[str],
            level: int, source: str = STORED_AREA) -> np.ndarray:
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
            AOI(shapely.from_wkt(aoi_wkt), source), len(pids),
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
