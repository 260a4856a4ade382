"""Taking products out of an archive (`eominer products remove`): a product ingested by
mistake, or one whose disk space is needed back.

Order, so that no step leaves an answer that names a removed patch:
1. every product is checked first (it exists; no session's scope holds it): one refusal
   and nothing is removed;
2. its shards leave the nearest-neighbour indexes (eominer.learning.ann): a crash after
   this leaves the product in the database and out of the indexes, which `eominer index
   build` repairs;
3. the database, in one transaction (`Store.remove_product`): the product, its patches,
   their features, annotations and saved-search rows, its pairs, and the feature sets
   computed from its pixels for other products' patches (`feature_set_sources`: a
   change pair's sets on its first date, a time series' sets on its grid), whole: no
   row of theirs is right without it; of a set kept per product (a fused S1+S2 set, the
   archive's change sets, the features of both dates), only the rows computed from it
   (`feature_row_sources`), computed again from another partner or pair where one is
   left. Refused in step 1 while a session uses one (a set kept per product: one over
   the products whose rows go); the dropped sets' nearest-neighbour indexes go after
   the transaction, the shards of those products in a kept set's index before it, with
   the product's own, and those computed again are built again after it;
4. its files: the ARD COG and the layers of its pairs. A crash before this leaves files
   no row names (disk only). A database copied from another that still exists keeps
   the files its rows named when it was copied: the original names them too
   (`Store.copied_from`).
The jobs' history and saved models keep their rows: they describe what was done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eominer.errors import StoreError

if TYPE_CHECKING:
    from eominer.store import FeatureSet, Store
    from eominer.store.removal import Refill, RemovedProduct


@dataclass(frozen=True)
class Removal:
    removed: RemovedProduct
    index_shards: int  # nearest-neighbour index shards dropped
    files: tuple[str, ...]  # files deleted (the ARD, pair layers)
    kept: tuple[str, ...] = ()  # files kept: the original of this copied database names them
    index_folders: int = 0  # indexes of the feature sets dropped with it
    # shards built again: of the products whose rows of a kept set were computed again
    index_shards_rebuilt: int = 0
    index_rebuild_failed: str | None = None  # why they could not be (the rest is done)
    # saved classifiers trained on those sets: kept (the history), no longer applicable
    stranded_models: tuple[str, ...] = ()


def remove_products(store: Store, product_ids: Sequence[str],
                    dry_run: bool = False) -> list[Removal]:
    """Remove the products (see the module's doc); all are checked before any is touched.
    `dry_run`: what would go, the same checks and counts, nothing removed."""
    ids = list(dict.fromkeys(product_ids))
    if not ids:
        raise StoreError("name the products to remove (`eominer products` lists the ids)")
    missing = [p for p in ids if not store.product_exists(p)]
    if missing:
        raise StoreError(f"product(s) {', '.join(missing)} are not in {store.url}: nothing "
                         "was removed (`eominer products` lists the ids)")
    for pid in ids:
        store.refuse_if_held(pid)
    out = []
    for pid in ids:
        shards = len(_drop_index_shards(store, pid, dry_run))
        partners_shards = []  # their rows go: so do their shards
        for fs, partners in store.thinned_rows_from(pid):
            for partner in partners:
                partners_shards += _drop_index_shards(store, partner, dry_run,
                                                      fs.feature_set_id)
        removed = store.remove_product(
            pid, dry_run, refill=lambda fs, p, gone: refill_for(store, fs, p, gone))
        ard = () if removed.ard_path == removed.source_path else (removed.ard_path,)
        ours = [f for f in (*ard, *removed.layer_paths) if f not in removed.shared]
        files = [f for f in ours if (Path(f).is_file() if dry_run else _unlink(f))]
        kept = tuple(f for f in removed.shared if Path(f).is_file())
        folders = _drop_indexes(store, removed.dropped_sets, dry_run)
        back = {(fid, p) for fid, p, _ in removed.refilled}
        rebuilt = [(folder, p) for folder, fid, p in partners_shards if (fid, p) in back]
        failed = None if dry_run else _rebuild_index_shards(store, rebuilt)
        out.append(Removal(removed, shards + len(partners_shards), tuple(files), kept,
                           index_folders=folders, index_shards_rebuilt=len(rebuilt),
                           index_rebuild_failed=failed,
                           stranded_models=_models_on(store, removed.dropped_sets)))
    return out


def refill_for(store: Store, fs: FeatureSet, product: str, removed: str) -> Refill | None:
    """How `product`'s rows of a set kept per product, computed from `removed` among
    others, are computed again without it: the module that writes that kind of set
    knows how (`refill` of eominer.change.dates and fusion.featureset; an archive set's
    rows are copied from the pair's own set: `Store.archive_refill`). None: they stay
    out."""
    from eominer.change import dates
    from eominer.store.archive import is_archive, is_dates
    from eominer.store.fusion import FUSED_SENSOR

    if is_dates(fs):
        return dates.refill(store, fs, product, removed)
    if is_archive(fs):
        return store.archive_refill(fs, product, removed)
    if fs.sensor == FUSED_SENSOR and any(  # (fusion's imports only where there is work)
            p["s1_id"] != removed for p in store.fusion_pairs(product)):
        from eominer.fusion.featureset import refill

        return refill(store, fs, product, removed)
    return None


def describe(r: Removal, dry_run: bool = False) -> list[str]:
    """What a removal took out (`dry_run`: would take), a line per fact: what
    `eominer products remove` prints and the app shows."""
    from eominer.store.archive import ARCHIVE_PREFIX, DATES_PREFIX

    out: list[str] = []
    d = r.removed
    remove, drop, delete, keep, can = (
        ("would remove", "would drop", "to delete", "would keep", "could") if dry_run
        else ("removed", "dropped", "deleted", "kept", "can"))
    out.append(
        f"{remove} {d.product_id}: {d.patches:,} patches, {d.feature_rows:,} feature rows, "
        f"{d.annotations:,} annotations, {d.search_results:,} saved-search rows, "
        f"{len(d.pair_ids)} pair(s), {r.index_shards} index shard(s); {len(r.files)} "
        f"file(s) {delete}")
    if r.index_shards_rebuilt and r.index_rebuild_failed:
        out.append(f"could not build {r.index_shards_rebuilt} index shard(s) again, of the "
                   f"products whose rows were computed again ({r.index_rebuild_failed}): "
                   "eominer index build puts them back")
    elif r.index_shards_rebuilt:
        out.append(f"{'would build' if dry_run else 'built'} {r.index_shards_rebuilt} index "
                   "shard(s) again, of the products whose rows were computed again")
    if d.dropped_sets:
        out.append(f"{drop} {len(d.dropped_sets)} feature set(s) computed from its pixels "
                   f"for other products' patches: {', '.join(d.dropped_sets)}"
                   + (f" (and {r.index_folders} index folder(s))" if r.index_folders else ""))
    for fid, partners in d.thinned_sets:
        took = "would take" if dry_run else "took"
        back = {p: src for f, p, src in d.refilled if f == fid}
        gone = [p for p in partners if p not in back]
        if fid.startswith((ARCHIVE_PREFIX, DATES_PREFIX)):
            if gone:
                out.append(f"{took} the rows of {', '.join(gone)} (mapped with it by "
                           f"eominer change) out of {fid}, which keeps its other rows; to "
                           f"have them back: eominer change {gone[0]} ANOTHER_DATE")
            for first, src in back.items():
                out.append(f"{took} the rows of {first} in {fid} from its other pair "
                           f"instead ({src})")
            continue
        if gone or not partners:
            out.append(f"{took} the rows of {', '.join(gone) or 'no product'} (paired with "
                       f"it) out of fused set {fid}, which keeps its other rows; to have "
                       "theirs back: eominer fusion pair (another S1 partner), then eominer "
                       "fusion features")
        for s2, src in back.items():
            out.append(f"{'would compute' if dry_run else 'computed'} the rows of {s2} in "
                       f"fused set {fid} again from its other S1 partner(s) ({src})")
    if r.stranded_models:
        out.append(f"saved model(s) {', '.join(r.stranded_models)} were trained on those "
                   f"sets: their rows stay, but they {can} no longer be applied (re-run "
                   "eominer change / timeseries, then train a new session)")
    if r.kept:
        out.append(f"{keep} {len(r.kept)} file(s) that {d.copied_from} names too (this "
                   f"database is a copy of it): {', '.join(r.kept)}")
    return out


def _models_on(store: Store, feature_set_ids: Sequence[str]) -> tuple[str, ...]:
    """The saved classifiers trained on any of `feature_set_ids`, but for a change pair's
    own set whose archive set of its kind (recorded with the model) is still there:
    `apply` reads that one instead."""
    from eominer.learning.saved import classifiers

    if not feature_set_ids:
        return ()
    out = []
    for m in classifiers(store):
        archives = m["params"].get("archive_sets", {})
        if any(fid in feature_set_ids and store.feature_set(archives.get(fid, "")) is None
               for fid in m["params"].get("feature_set_ids", ())):
            out.append(m["model_id"])
    return tuple(out)


def _drop_indexes(store: Store, feature_set_ids: Sequence[str], dry_run: bool = False) -> int:
    """The index folders of feature sets that no longer exist (only counted: dry_run)."""
    import shutil

    from eominer.learning.ann import index_root, read_manifest

    root, n = index_root(store), 0
    for folder in sorted(root.iterdir()) if root.is_dir() and feature_set_ids else ():
        manifest = read_manifest(folder) if folder.is_dir() else None
        if manifest is not None and manifest.feature_set_id in feature_set_ids:
            if not dry_run:
                shutil.rmtree(folder)
            n += 1
    return n


def _drop_index_shards(store: Store, product_id: str, dry_run: bool = False,
                       feature_set_id: str | None = None) -> list[tuple[Path, str, str]]:
    """The product's shards in every index (of `feature_set_id` only, if given): (index
    folder, its feature set, the product) of each."""
    from eominer.learning.ann import index_root, read_manifest, write_manifest

    dropped = []
    root = index_root(store)
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        manifest = read_manifest(folder) if folder.is_dir() else None
        if manifest and feature_set_id not in (None, manifest.feature_set_id):
            continue
        entry = manifest.shards.pop(product_id, None) if manifest else None
        if entry is None:
            continue
        dropped.append((folder, manifest.feature_set_id, product_id))
        if dry_run:
            continue
        write_manifest(folder, manifest)  # first: a reader never meets a missing file
        (folder / entry["file"]).unlink(missing_ok=True)
    return dropped


def _rebuild_index_shards(store: Store, shards: Sequence[tuple[Path, str]]) -> str | None:
    """The shards of products whose rows came back, computed again from another partner
    or pair: built from those rows as `eominer index build` builds a new product's. Last,
    when the removal is done: a failure is reported (None: none), not raised."""
    from eominer.learning.ann import read_manifest, rebuild_shard

    try:
        for folder, product in shards:
            manifest = read_manifest(folder)
            if manifest is not None:
                rebuild_shard(store, folder, manifest, product)
    except Exception as exc:  # the product is removed: say what is left to do
        return f"{type(exc).__name__}: {exc}"
    return None


def _unlink(path: str) -> bool:
    p = Path(path)
    if p.is_file():
        p.unlink()
        return True
    return False
