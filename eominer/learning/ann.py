"""Archive-wide "find more like this": an approximate nearest-neighbour index of one feature
set at one grid level, over every product that has those features.

A session ranks its own scope exactly (one GEMV over its matrix in memory). Across a whole
archive, tens of millions of patches, that would mean reading every feature row for each
query; an HNSW graph answers in milliseconds instead (bench/bench_ann.py: usearch against
faiss, and why DuckDB's `vss` is not an option here).

Layout, beside the database (`index_root`): one folder per (feature set, level) holding
- `manifest.json`: the feature set, level, columns, the standardisation (mean and standard
  deviation per column over the level's rows when the index was first built), and one
  entry per product shard (file, patch count, built);
- one usearch file per product: the graph of its standardised vectors, keyed by patch_id.

One shard per product, because an archive grows by products: a new product is one new
shard (`eominer index build` again: only missing shards are built, as runner tasks), not a
rebuild. The statistics stay those of the first build, so every shard is comparable;
`--rebuild` recomputes them over the archive as it is. A query searches every shard and
merges their top k by distance.

Vectors are stored as float16 in the graph (half the memory of float32; bench_ann.py
measures the recall). Distances are squared Euclidean in the standardised space, the same
space as `eominer.learning.search` (which standardises with its candidates' statistics;
the index, with the archive's).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import SearchError
from eominer.store.base import utcnow

if TYPE_CHECKING:
    from usearch.index import Index

    from eominer.store import Store

CONNECTIVITY = 16  # graph degree (M); 16 gives recall@100 >= 0.95 at ef 256 (bench_ann.py)
EXPANSION_ADD = 128  # beam width while building
EXPANSION_SEARCH = 256  # beam width while searching: >= k for the top 100
MANIFEST = "manifest.json"
# a filtered query (--where / --aoi) ranks exactly over the kept patches' stored vectors
# up to this many per shard, or when they are fewer than 1 in OVERFETCH_MAX of the shard;
# else it over-fetches from the graph and filters
EXACT_WITHIN = 50_000
OVERFETCH_MAX = 50


def index_root(store: Store) -> Path:
    """Where a database's indexes live: `<database>.indexes/` beside an embedded one (a
    DuckDB file, a monetdbe folder: wherever $EOMINER_HOME points), else
    `$EOMINER_HOME/indexes/<database>` for a server."""
    from eominer.store.url import parse_url
    from eominer.workspace import workspace

    parsed = parse_url(store.url)
    if parsed.engine in ("duckdb", "monetdbe") and parsed.path and parsed.path != ":memory:":
        return Path(parsed.path).with_suffix(".indexes")
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", store.url.split("@")[-1])[:60]
    return workspace() / "indexes" / f"{key}-{hashlib.sha1(store.url.encode()).hexdigest()[:8]}"


@dataclass
class Manifest:
    feature_set_id: str
    level: int
    columns: list[str]
    mean: list[float]
    std: list[float]
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)  # product -> entry

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return cls(**json.loads(text))


def index_dir(store: Store, feature_set_id: str, level: int) -> Path:
    return index_root(store) / f"{feature_set_id}-L{int(level)}"


def read_manifest(folder: Path) -> Manifest | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        return Manifest.from_json(path.read_text())
    except (ValueError, TypeError) as exc:
        raise SearchError(f"the index manifest {path} is unreadable ({exc}): rebuild it with "
                          "`eominer index build --rebuild`") from exc


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Atomically (a reader sees the old or the new manifest, never half of one)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MANIFEST}.{os.getpid()}"
    tmp.write_text(manifest.to_json())
    tmp.replace(folder / MANIFEST)


def standardise(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(X - mean) / std as float32; a constant column (std 0) maps to 0."""
    safe = np.where(std > 0, std, 1.0).astype(np.float32)
    out = (np.asarray(X, np.float32) - mean.astype(np.float32)) / safe
    out[:, std <= 0] = 0.0
    return out


# ---- shards (the only code that knows the library) --------------------------------------
def build_shard(patch_ids: np.ndarray, Z: np.ndarray, path: Path, threads: int = 1) -> int:
    """Write the graph of standardised vectors `Z` keyed by `patch_ids` to `path`
    (atomically: a killed build leaves no half file). Returns the vectors indexed."""
    from usearch.index import Index

    index = Index(ndim=Z.shape[1], metric="l2sq", dtype="f16", connectivity=CONNECTIVITY,
                  expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)
    if len(patch_ids):
        index.add(np.asarray(patch_ids, np.uint64), np.ascontiguousarray(Z, np.float32),
                  threads=threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    index.save(str(tmp))
    tmp.replace(path)
    return len(patch_ids)


def _open_shard(path: Path) -> Index | None:
    """The shard memory-mapped, opened once per process and file version: mapping a
    view costs 30-50 ms for a 100,000-vector shard (a query itself 1-3 ms), so a query
    over ten shards would otherwise spend most of its time opening them."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return _open_version(str(path), st.st_mtime_ns, st.st_size)


# a shard's beam width is a property of its shared Index: set and searched under one lock,
# or two app sessions searching it at once would each search at the other's width
_SEARCH_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _search_lock(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _SEARCH_LOCKS.setdefault(str(path), threading.Lock())


@functools.lru_cache(maxsize=256)
def _open_version(path: str, mtime_ns: int, size: int) -> Index | None:
    from usearch.index import Index

    return Index.restore(path, view=True)


def _search_shard(path: Path, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    index = _open_shard(path)
    if index is None or len(index) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    with _search_lock(path):
        index.expansion_search = max(EXPANSION_SEARCH, k)
        m = index.search(query.astype(np.float32), min(k, len(index)))
    return np.asarray(m.keys, np.int64), np.asarray(m.distances, np.float64)


def _search_shard_within(path: Path, query: np.ndarray, k: int, allowed: np.ndarray,
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest of the shard's patches that are in `allowed` (sorted patch ids).

    usearch's Python API has no predicate, so: a filter that keeps few of the shard
    (<= EXACT_WITHIN patches, or fewer than 1 in OVERFETCH_MAX) is ranked exactly over
    their stored vectors (`Index.get`, the graph's own float16 values: the same distances
    the graph gives); else the graph is asked for k x (shard / kept) x 2 neighbours,
    filtered, and asked again four times deeper until k are kept."""
    index = _open_shard(path)
    if index is None or len(index) == 0 or len(allowed) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    n = len(index)
    keys = allowed[np.asarray(index.contains(allowed.astype(np.uint64)), bool)]
    if len(keys) <= EXACT_WITHIN or len(keys) * OVERFETCH_MAX < n:
        if len(keys) == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        got = index.get(keys.astype(np.uint64), dtype=np.float32)  # a tuple of rows
        V = np.vstack(got).astype(np.float64) if isinstance(got, tuple) else \
            np.asarray(got, np.float64).reshape(len(keys), -1)
        d2 = ((V - query.astype(np.float32).astype(np.float64)) ** 2).sum(axis=1)
        order = np.lexsort((keys, d2))[:k]
        return keys[order].astype(np.int64), d2[order]
    want = min(n, int(k * -(-n // max(len(keys), 1)) * 2))
    while True:
        with _search_lock(path):
            index.expansion_search = max(EXPANSION_SEARCH, want)
            m = index.search(query.astype(np.float32), want)
        ids = np.asarray(m.keys, np.int64)
        ok = np.isin(ids, keys)
        if ok.sum() >= k or want >= n:
            return ids[ok][:k], np.asarray(m.distances, np.float64)[ok][:k]
        want = min(n, want * 4)


# ---- queries ----------------------------------------------------------------------------
def query_index(folder: Path, manifest: Manifest, centre: np.ndarray, k: int,
                exclude: Sequence[int] = (), allowed: np.ndarray | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest indexed patches to the standardised vector `centre` over every
    shard (or, with `allowed`, sorted patch ids, among those only: the shards of other
    products are not opened): (patch_ids, squared distances), nearest first, smaller id
    first on a tie."""
    skip = {int(i) for i in exclude}
    ids, dist = [], []
    for product, entry in manifest.shards.items():
        path = folder / entry["file"]
        if allowed is None:
            i, d = _search_shard(path, centre, k + len(skip))
        else:
            mine = allowed.get(product) if isinstance(allowed, dict) else allowed
            if mine is None or len(mine) == 0:
                continue
            i, d = _search_shard_within(path, centre, k + len(skip), mine)
        ids.append(i)
        dist.append(d)
    if not ids:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    all_ids, all_d = np.concatenate(ids), np.concatenate(dist)
    keep = ~np.isin(all_ids, np.fromiter(skip, np.int64, len(skip)))
    all_ids, all_d = all_ids[keep], all_d[keep]
    order = np.lexsort((all_ids, all_d))[:k]
    return all_ids[order], all_d[order]


@dataclass(frozen=True)
class ArchiveMatch:
    patch_ids: np.ndarray
    distances: np.ndarray  # Euclidean, standardised space (the index's float16 vectors)
    similarities: np.ndarray  # 1 / (1 + d² / dims), as eominer.learning.search
    feature_set_id: str
    level: int
    n_indexed: int

    def table(self, store: Store) -> Any:
        import pyarrow as pa

        prod = {w.patch_id: w.product_id for w in store.patch_windows(self.patch_ids)}
        return pa.table({
            "rank": pa.array(np.arange(1, len(self.patch_ids) + 1, dtype=np.int32)),
            "patch_id": pa.array(self.patch_ids),
            "product_id": pa.array([prod.get(int(p)) for p in self.patch_ids], pa.string()),
            "distance": pa.array(self.distances),
            "similarity": pa.array(self.similarities),
        })


def search_archive(store: Store, like: Sequence[int], feature_set_id: str, *,
                   top: int = 100, level: int | None = None, where: str | None = None,
                   aoi: Any = None, product_ids: Sequence[str] | None = None,
                   timeout_s: float = 60.0) -> ArchiveMatch:
    """The `top` patches of the whole archive most like the examples `like` (the centroid
    of their standardised vectors), from the index of `feature_set_id` at their level;
    with `where` (over the view scope_rows), `aoi` (an `aoi.AOI`) or `product_ids`, among
    the patches they keep only (`search.candidate_ids`, then `_search_shard_within`)."""
    examples = sorted({int(i) for i in like})
    if not examples:
        raise SearchError("give at least one example patch id (--like ID,ID)")
    if int(top) < 1:
        raise SearchError(f"top must be at least 1, got {top}")
    fs = store.require_feature_set(feature_set_id)
    levels = store.patch_levels_of(examples)
    unknown = [i for i in examples if i not in levels]
    if unknown:
        raise SearchError(f"example patch(es) {unknown} are not in {store.url}")
    found = sorted(set(levels.values()))
    if level is None and len(found) > 1:
        raise SearchError(f"the examples are at several levels {found}: give examples of one "
                          "level")
    level = int(level if level is not None else found[0])
    folder = index_dir(store, fs.feature_set_id, level)
    manifest = read_manifest(folder)
    if manifest is None or not manifest.shards:
        # the examples' level may not be the one indexed: say which are
        other = sorted(int(p.name.rsplit("-L", 1)[1]) for p in index_root(store).glob(
            f"{fs.feature_set_id}-L*") if p.name.rsplit("-L", 1)[1].isdigit()
            and (m := read_manifest(p)) is not None and m.shards)
        whose = " (the example patches' level)" if found == [level] else ""
        indexed = (f"; it is indexed at level(s) {', '.join(map(str, other))}: give "
                   "examples of one of those" if other else "")
        raise SearchError(f"no index of feature set {fs.feature_set_id} at level {level}"
                          f"{whose}: build it with `eominer index build {fs.feature_set_id} "
                          f"--level {level}`{indexed}")
    if manifest.columns != list(fs.columns):
        raise SearchError(f"the index of {fs.feature_set_id} was built for other columns: "
                          "rebuild it with `eominer index build --rebuild`")
    refuse_stale(store, manifest)
    ex_ids, X_ex = store.read_feature_rows([fs.feature_set_id], examples)
    missing = sorted(set(examples) - set(ex_ids.tolist()))
    if missing:
        raise SearchError(f"example patch(es) {missing} have no features in "
                          f"{fs.feature_set_id}: run `eominer extract` for their products")
    Z = standardise(X_ex, np.asarray(manifest.mean), np.asarray(manifest.std))
    centre = Z.astype(np.float64).mean(axis=0)
    allowed = None
    if where or aoi is not None or product_ids:
        from eominer.learning.search import candidate_ids

        cand, prods = candidate_ids(store, level, where=where, aoi=aoi,
                                    product_ids=list(product_ids) if product_ids else None,
                                    timeout_s=timeout_s)
        allowed = {str(p): cand[prods == p] for p in np.unique(prods.astype(str))}
    pids, d2 = query_index(folder, manifest, centre, int(top), examples, allowed)
    dims = len(manifest.columns)
    return ArchiveMatch(
        patch_ids=pids, distances=np.sqrt(np.maximum(d2, 0.0)),
        similarities=1.0 / (1.0 + np.maximum(d2, 0.0) / dims), feature_set_id=fs.feature_set_id,
        level=level, n_indexed=sum(int(e["n"]) for e in manifest.shards.values()))


def shard_file(product_id: str) -> str:
    return f"{product_id}.usearch"


def rebuild_shard(store: Store, folder: Path, manifest: Manifest, product_id: str) -> int:
    """The product's shard of the index in `folder`, from its features now, with the
    index's own standardisation, into the manifest (written after the file: a reader
    never meets a shard without its file). Returns the vectors indexed."""
    ids, X, _ = store.read_features([manifest.feature_set_id], [product_id], manifest.level)
    if not len(ids):
        return 0
    file = shard_file(product_id)
    n = build_shard(ids, standardise(X, np.asarray(manifest.mean), np.asarray(manifest.std)),
                    folder / file)
    stamp = store.feature_stamps(manifest.feature_set_id).get(product_id)
    manifest.shards[product_id] = shard_entry(file, n, stamp)
    write_manifest(folder, manifest)
    return n


def shard_entry(file: str, n: int, features: str | None = None) -> dict[str, Any]:
    """A manifest's shard: its file, vectors, when built, and the stamp of the features
    it was built from (`Store.feature_stamps`: the last extract task of its product)."""
    return {"file": file, "n": int(n), "built": utcnow().isoformat(timespec="seconds"),
            "features": features}


def stale_shards(manifest: Manifest, stamps: dict[str, str]) -> dict[str, str]:
    """Products whose features were written by a task that finished after their shard's
    features stamp (re-extracted since the shard was built): product -> new stamp."""
    return {p: stamps[p] for p, e in manifest.shards.items()
            if p in stamps and (e.get("features") or "") < stamps[p]}


def refuse_stale(store: Store, manifest: Manifest) -> None:
    """Never answer from an index older than the features it covers."""
    stale = stale_shards(manifest, store.feature_stamps(manifest.feature_set_id))
    if stale:
        names = ", ".join(sorted(stale)[:5]) + (" ..." if len(stale) > 5 else "")
        raise SearchError(
            f"the index of {manifest.feature_set_id} at level {manifest.level} is older than "
            f"the features of {len(stale)} product(s) ({names}), re-extracted since it was "
            f"built: run `eominer index build {manifest.feature_set_id} --level "
            f"{manifest.level}` (it rebuilds those shards only)")
