"""`eominer change` as functions: two dates in, COG maps out, scores into the database.

`compute_change` touches no database, so it runs in any process (the `--pairs` job runs
it as a runner task, compute/change.py); `record_change` writes its result.

Each date is an ingested product id or a path. When both are ingested products (or a
store is given and both ids resolve), the pair is recorded in `product_pairs` (kind
'change', layer_path = the probability COG, which the app draws as an overlay) and the
per-patch scores become a feature set on the first product's patches.

The pair's sensor picks the methods: Sentinel-2 pairs `encoder`, `cva`, `irmad`,
`selftrain`, `selftrain_encoder`, `regression`, `selftrain_regression`;
Sentinel-1 pairs `logratio`, `rom` (method None: `maps.DEFAULT_METHOD`,
`selftrain_regression` for S2, `rom` for S1).
`compute_fusion` maps an S2 pair and an S1 pair of the same place and combines their
probabilities (`change.sar.fuse_probabilities`) on the first S2 date's grid.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.change import tails as index_tails
from eominer.change.align import CHANGE_BANDS, PairWarning, align_pair
from eominer.change.dates import refresh as refresh_dates
from eominer.change.maps import (
    DEFAULT_METHOD,
    FUSION,
    S1_METHODS,
    ChangeMap,
    binary_path_for,
    change_map,
    check_method,
    method_params,
    write_maps,
)
from eominer.change.scores import SCORE_COLUMNS, patch_scores
from eominer.errors import ConfigError, PairingError, ProductReadError
from eominer.store.pairs import CHANGE_PAIR_KIND
from eominer.workspace import claim, mark_committing

if TYPE_CHECKING:
    from eominer.change.align import AlignedPair, Scene
    from eominer.store import FeatureSet, Product, Store

FEATURE_SET_VERSION = 2  # 2: change_prob_max and change_prob_top5 (change/scores.py)


@dataclass(frozen=True)
class ChangeRun:
    """What one pair produced."""

    method: str
    probability_path: str
    binary_path: str
    threshold: float
    changed_fraction: float
    valid_fraction: float
    cloud_fraction: float
    reprojected: bool
    days_apart: float | None
    pair_id: str | None = None
    feature_set_id: str | None = None
    tails_feature_set_id: str | None = None  # S2: the pair's `diff_tails` (change/tails.py)
    patches_scored: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)
    sensor: str = "S2"
    threshold_rule: str = "otsu"
    extra: dict = field(default_factory=dict)  # fusion: the S1 pair and its method
    mask_clouds: bool = True  # False: clouds were scored as ground (--no-cloud-mask)


def default_out(first: str, second: str, method: str) -> Path:
    from eominer.workspace import layers_dir

    def stem(ref: str) -> str:
        p = Path(ref)
        name = p.name if p.name not in ("imgs_1", "imgs_2") else f"{p.parent.name}_{p.name}"
        return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)

    return layers_dir() / f"change_{method}_{stem(first)}__{stem(second)}.tif"


@dataclass(frozen=True, eq=False)
class PairInput:
    """One side of a pair as a worker needs it: an ingested product's row, or a path."""

    ref: str
    product: Product | None = None

    def scene(self) -> Scene:
        from eominer.change.align import scene_from_path, scene_from_product

        if self.product is not None:
            return scene_from_product(self.product)
        return scene_from_path(self.ref)


def resolve(ref: str, store: Store | None = None) -> PairInput:
    """An ingested product id (when `store` knows it and no such path exists) or a path."""
    if store is not None and not Path(ref).exists():
        product = store.product(ref)
        if product is not None:
            return PairInput(ref, product)
    if not Path(ref).exists():
        where = f" nor a product id in {store.url}" if store is not None else ""
        raise ProductReadError(
            f"{ref} is neither a file or folder{where}: give a product folder, a COG, "
            "or the id of an ingested product (eominer products)"
        )
    return PairInput(ref)


@dataclass(frozen=True, eq=False)
class ComputedPair:
    """A computed pair, before anything is written to the database."""

    run: ChangeRun
    first_id: str | None
    second_id: str | None
    overlap_fraction: float
    scores: object = None  # (patch_ids, values) of the first product's patches, or None
    tails: np.ndarray | None = None  # S2: `diff_tails` of the same patches


def _aligned(first_in: PairInput, second_in: PairInput,
             mask_clouds: bool) -> tuple[Scene, Scene, AlignedPair, tuple[str, ...]]:
    """Read and align a pair; its cautions are collected (and warned as PairWarnings)."""
    first, second = first_in.scene(), second_in.scene()
    collected: list[str] = []
    pair = align_pair(first, second, mask_clouds=mask_clouds, notes=collected)
    notes = tuple(collected)
    for note in notes:  # for callers that watch warnings
        warnings.warn(note, PairWarning, stacklevel=3)
    return first, second, pair, notes


def _finish(cmap: ChangeMap, pair: AlignedPair, first_in: PairInput, second_in: PairInput,
            first: Scene, second: Scene, out: str | Path | None,
            patch_windows: dict[str, np.ndarray] | None, notes: tuple[str, ...],
            extra: dict[str, Any] | None = None, sensor: str | None = None,
            mask_clouds: bool = True, with_tails: bool = True) -> ComputedPair:
    out_path = Path(out) if out else default_out(first_in.ref, second_in.ref, cmap.method)
    prob_path, bin_path = write_maps(cmap, pair.crs_wkt, pair.transform, out_path)
    scores = tails = None
    if patch_windows:
        windows = (patch_windows["x_off"], patch_windows["y_off"], patch_windows["size_px"])
        values = patch_scores(cmap.probability, cmap.binary, *windows)
        scores = (patch_windows["patch_id"], values)
        if pair.sensor == "S2" and with_tails:
            tails = index_tails.pair_tails(pair.x1, pair.x2, pair.valid, CHANGE_BANDS, *windows)
    n = cmap.valid.size
    run = ChangeRun(
        method=cmap.method, probability_path=str(prob_path), binary_path=str(bin_path),
        threshold=cmap.threshold, changed_fraction=cmap.changed_fraction,
        valid_fraction=float(cmap.valid.sum()) / n, cloud_fraction=float(pair.cloud.sum()) / n,
        reprojected=pair.reprojected, days_apart=pair.days_apart, warnings=notes,
        sensor=sensor or pair.sensor, threshold_rule=cmap.rule, extra=extra or {},
        mask_clouds=mask_clouds,
    )
    return ComputedPair(run, first.product_id, second.product_id, pair.overlap_fraction,
                        scores, tails)


def compute_change(
    first_in: PairInput, second_in: PairInput, method: str | None, out: str | Path | None,
    seed: int = 0, threads: int = 1, mask_clouds: bool = True,
    patch_windows: dict | None = None, progress: Callable[[str], None] | None = None,
    with_tails: bool = True,
) -> ComputedPair:
    """Read, align, map, write the COGs and score the patches; no database access, so it
    runs in any process (a Ray worker). `method` None: the sensor's default.
    `with_tails` False: the pair's `diff_tails` are already stored (`stored_tails`)."""
    if method is not None:
        check_method(method)
    say = progress or (lambda _msg: None)
    say(f"reading {first_in.ref} and {second_in.ref}")
    first, second, pair, notes = _aligned(first_in, second_in, mask_clouds)
    method = check_method(method or DEFAULT_METHOD[pair.sensor], pair.sensor)
    say(f"{method} change map on {pair.valid.shape[1]} x {pair.valid.shape[0]} px")
    cmap = change_map(pair.x1, pair.x2, pair.valid, method, seed, threads)
    return _finish(cmap, pair, first_in, second_in, first, second, out, patch_windows, notes,
                   mask_clouds=mask_clouds, with_tails=with_tails)


def compute_fusion(
    first_in: PairInput, second_in: PairInput, s1_first_in: PairInput,
    s1_second_in: PairInput, method: str | None = None, s1_method: str | None = None,
    out: str | Path | None = None, seed: int = 0, threads: int = 1, mask_clouds: bool = True,
    patch_windows: dict | None = None, progress: Callable[[str], None] | None = None,
    with_tails: bool = True,
) -> ComputedPair:
    """S1 + S2 change of one place: each pair mapped by its own method, the S1
    probability brought onto the first S2 date's grid (bilinear, when the grids differ),
    then `fuse_probabilities` (mean where both see the ground, the one that does
    elsewhere: radar sees through the optical pair's clouds); binary = fused > 0.5.
    Either pair may be given first: the S2 pair's grid is the map's grid. `method` is
    the S2 pair's method, or the S1 pair's when it names one (`logratio`, `rom`)."""
    from eominer.change.sar import fuse_probabilities

    say = progress or (lambda _msg: None)
    say(f"reading {first_in.ref}, {second_in.ref}, {s1_first_in.ref} and {s1_second_in.ref}")
    a = _aligned(first_in, second_in, mask_clouds)
    b = _aligned(s1_first_in, s1_second_in, mask_clouds)
    if a[2].sensor == "S1" and b[2].sensor == "S2":
        a, b = b, a
        first_in, second_in, s1_first_in, s1_second_in = (s1_first_in, s1_second_in,
                                                          first_in, second_in)
    (first, second, pair, notes), (_, _, s1pair, s1notes) = a, b
    if (pair.sensor, s1pair.sensor) != ("S2", "S1"):
        from eominer.errors import PairingError

        raise PairingError(
            f"fusion combines a Sentinel-2 pair and a Sentinel-1 pair of one place; got a "
            f"{pair.sensor} pair ({first_in.ref}, {second_in.ref}) and a {s1pair.sensor} "
            f"pair ({s1_first_in.ref}, {s1_second_in.ref})"
        )
    if method in S1_METHODS:  # `method` may name the S1 side's method
        if s1_method not in (None, method):
            raise ConfigError(f"two Sentinel-1 methods given ({method}, {s1_method}): give "
                              "the Sentinel-2 method as the method and the S1 one as s1_method")
        method, s1_method = None, method
    method = check_method(method or DEFAULT_METHOD["S2"], "S2")
    s1_method = check_method(s1_method or DEFAULT_METHOD["S1"], "S1")
    say(f"{method} (S2) and {s1_method} (S1) change maps")
    m2 = change_map(pair.x1, pair.x2, pair.valid, method, seed, threads)
    m1 = change_map(s1pair.x1, s1pair.x2, s1pair.valid, s1_method, seed, threads)
    p1 = _onto(m1.probability, s1pair, pair)
    fused = fuse_probabilities(p1, m2.probability)
    valid = np.isfinite(fused)
    binary = np.where(fused > 0.5, 1, 0).astype(np.uint8)
    binary[~valid] = 255
    cmap = ChangeMap(FUSION, fused, binary, 0.5, valid, f"mean({method},{s1_method})>0.5")
    extra = {"s2_method": method, "s1_method": s1_method, "s1_first": s1_first_in.ref,
             "s1_second": s1_second_in.ref, "s2_threshold": m2.threshold,
             "s1_threshold": m1.threshold}
    return _finish(cmap, pair, first_in, second_in, first, second, out, patch_windows,
                   notes + s1notes, extra, sensor="S1+S2", mask_clouds=mask_clouds,
                   with_tails=with_tails)


def _onto(prob: np.ndarray, src_pair: AlignedPair, dst_pair: AlignedPair) -> np.ndarray:
    """A probability map of `src_pair`'s grid on `dst_pair`'s grid (NaN = no data)."""
    from eominer.change.align import Scene, _same_grid, reproject_onto

    src = Scene(prob[None].astype(np.float32), ("p",), src_pair.crs_wkt, src_pair.transform,
                "S1", None, "s1 map")
    dst = Scene(np.zeros((1, *dst_pair.valid.shape), np.float32), ("p",), dst_pair.crs_wkt,
                dst_pair.transform, "S2", None, "s2 map")
    if _same_grid(src, dst):
        return prob
    return reproject_onto(src, dst).data[0]


def patch_windows_of(store: Store | None, first_in: PairInput, second_in: PairInput) -> dict | None:
    """The first product's patch windows (all levels) when both sides are ingested."""
    if store is None or first_in.product is None or second_in.product is None:
        return None
    t = store.patches(first_in.product.product_id)
    if not t.num_rows:
        return None
    return {c: t[c].to_numpy() for c in ("patch_id", "x_off", "y_off", "size_px")}


def record_change(store: Store | None, computed: ComputedPair, seed: int = 0) -> ChangeRun:
    """Write a computed pair to the database (driver side: DuckDB has one writer):
    the per-patch feature set and the `product_pairs` row, in one transaction."""
    run = computed.run
    if store is None or computed.scores is None:
        return run
    assert computed.first_id is not None and computed.second_id is not None
    patch_ids, values = computed.scores  # type: ignore[misc]
    mark_committing(Path(run.probability_path))  # a kill from here on: the maps stay
    sources = [computed.first_id, computed.second_id,
               *(str(run.extra[k]) for k in ("s1_first", "s1_second") if run.extra.get(k))]
    with store.transaction():
        fs = store.register_feature_set(
            f"change_{run.method}", FEATURE_SET_VERSION,
            {"method": run.method, "first": computed.first_id, "second": computed.second_id,
             "seed": seed, **{k: v for k, v in run.extra.items()
                              if k in ("s1_first", "s1_second", "s1_method", "s2_method")},
             **method_params(run.extra.get("s2_method", run.method)),
             **_unmasked(run.mask_clouds)},
            SCORE_COLUMNS, sensor="S2" if run.sensor == "S1+S2" else run.sensor,
            sources=sources,
        )
        store.write_features(fs, patch_ids, values)
        store.write_archive(fs, computed.first_id, sources, patch_ids, values)
        tails = None
        if computed.tails is not None:
            tails = write_tails(store, computed.first_id, computed.second_id, patch_ids,
                                computed.tails, run.mask_clouds).feature_set_id
        elif run.sensor != "S1":  # computed without: another method's run stored them
            tails = stored_tails(store, computed.first_id, computed.second_id,
                                 len(patch_ids), run.mask_clouds)
        pid = store.record_pair(
            CHANGE_PAIR_KIND, computed.first_id, computed.second_id, days_apart=run.days_apart,
            overlap_fraction=computed.overlap_fraction, layer_path=run.probability_path,
            method=run.method,
            params={"method": run.method, "binary_path": run.binary_path,
                    "threshold": run.threshold, "threshold_rule": run.threshold_rule,
                    "sensor": run.sensor, **run.extra,
                    "feature_set_id": fs.feature_set_id, "tails_feature_set_id": tails,
                    "seed": seed, "mask_clouds": run.mask_clouds,
                    "reprojected": run.reprojected,
                    # the run's summary, so a resumed `--pairs` job can report it
                    "changed_fraction": run.changed_fraction,
                    "valid_fraction": run.valid_fraction,
                    "cloud_fraction": run.cloud_fraction,
                    "patches_scored": len(patch_ids), "warnings": list(run.warnings)},
        )
        # the features of both dates (`dates_` sets) follow the pair recorded last
        refresh_dates(store, computed.first_id, computed.second_id)
    return replace(run, pair_id=pid, feature_set_id=fs.feature_set_id,
                   tails_feature_set_id=tails, patches_scored=len(patch_ids))


def _unmasked(mask_clouds: bool) -> dict:
    """The parameter an unmasked run adds to its sets' identity (none for the default,
    so the ids of masked runs stay what they were)."""
    return {} if mask_clouds else {"mask_clouds": False}


def _tails_params(first_id: str, second_id: str, mask_clouds: bool) -> dict:
    return {"first": first_id, "second": second_id, **_unmasked(mask_clouds)}


def write_tails(store: Store, first_id: str, second_id: str, patch_ids: np.ndarray,
                values: np.ndarray, mask_clouds: bool = True) -> FeatureSet:
    """The pair's `diff_tails` set on the first product's patches (one per pair, whatever
    the method: the tails do not depend on it). Idempotent: same id, rows upserted."""
    fs = store.register_feature_set(index_tails.FEATURE_SET, index_tails.VERSION,
                                    _tails_params(first_id, second_id, mask_clouds),
                                    index_tails.COLUMNS, sensor="S2",
                                    sources=(first_id, second_id))
    store.write_features(fs, patch_ids, values)
    store.write_archive(fs, first_id, (first_id, second_id), patch_ids, values)
    return fs


def tails_set_id(first_id: str, second_id: str, mask_clouds: bool = True) -> str:
    """The id of the pair's `diff_tails` set (this version of it)."""
    from eominer.store.features import feature_set_id

    return feature_set_id(index_tails.FEATURE_SET, index_tails.VERSION,
                          _tails_params(first_id, second_id, mask_clouds))


def stored_tails(store: Store | None, first_id: str | None, second_id: str | None,
                 n_patches: int, mask_clouds: bool = True) -> str | None:
    """The id of the pair's `diff_tails` when an earlier run stored them for all
    `n_patches` patches, else None. They do not depend on the method, so a second
    method's run on the pair reuses them (27 s a tile saved)."""
    if store is None or first_id is None or second_id is None or not n_patches:
        return None
    fs = store.feature_set(tails_set_id(first_id, second_id, mask_clouds))
    if fs is None or store.count_features(fs) != n_patches:
        return None
    return fs.feature_set_id


def tails_needed(store: Store | None, first_in: PairInput, second_in: PairInput,
                 windows: dict | None, mask_clouds: bool = True) -> bool:
    """Whether a run on this pair must compute the pair's `diff_tails`."""
    if windows is None or first_in.product is None or second_in.product is None:
        return windows is not None
    return stored_tails(store, first_in.product.product_id, second_in.product.product_id,
                        len(windows["patch_id"]), mask_clouds) is None


def record_tails(store: Store, before: str, after: str) -> FeatureSet:
    """`diff_tails` of two ingested Sentinel-2 products, without a change map (for
    `eval learning`; `eominer change` writes them with its map)."""
    a, b = resolve(before, store), resolve(after, store)
    windows = patch_windows_of(store, a, b)
    if windows is None:
        raise ProductReadError(f"{before} and {after} must both be ingested products with "
                               "patches: run eominer ingest on both dates first")
    assert a.product is not None and b.product is not None  # windows imply both
    done = stored_tails(store, a.product.product_id, b.product.product_id,
                        len(windows["patch_id"]))
    if done is not None:
        return store.require_feature_set(done)
    _, _, pair, _ = _aligned(a, b, True)
    if pair.sensor != "S2":
        raise PairingError(f"{before} and {after} are {pair.sensor}: the index tails "
                           "(diff_tails) need Sentinel-2 bands")
    values = index_tails.pair_tails(pair.x1, pair.x2, pair.valid, CHANGE_BANDS,
                                    windows["x_off"], windows["y_off"], windows["size_px"])
    with store.transaction():
        return write_tails(store, a.product.product_id, b.product.product_id,
                           windows["patch_id"], values)


def detect_change(
    before: str, after: str, method: str | None = None, out: str | Path | None = None,
    store: Store | None = None, seed: int = 0, threads: int = 1, mask_clouds: bool = True,
    progress: Callable[[str], None] | None = None, fuse: tuple[str, str] | None = None,
    s1_method: str | None = None,
) -> ChangeRun:
    """One pair in this process: compute, write the COGs, record it when both dates are
    ingested products of `store`. `method` None: the pair's sensor default. `fuse`: a
    second pair (BEFORE, AFTER) of the other sensor over the same place: the S1 + S2
    fused map (`compute_fusion`)."""
    if method is not None:
        check_method(method)
    a, b = resolve(before, store), resolve(after, store)
    check_two_dates(a, b)
    if out is not None:  # before minutes of computing, not after
        try:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot write the map to {out}: {exc.strerror}: give a path "
                              "in a folder you can write to") from exc
    if fuse is None:
        windows = patch_windows_of(store, a, b)
        with nullcontext(out) if out else layer_out(store, a, b, method_of(a, method)) as out:
            computed = compute_change(a, b, method, out, seed, threads, mask_clouds,
                                      windows, progress,
                                      tails_needed(store, a, b, windows, mask_clouds))
            return record_change(store, computed, seed)
    c, d = resolve(fuse[0], store), resolve(fuse[1], store)
    check_two_dates(c, d)
    s2a, s2b = (c, d) if a.product is not None and a.product.sensor == "S1" else (a, b)
    windows = patch_windows_of(store, s2a, s2b)
    with nullcontext(out) if out else layer_out(store, s2a, s2b, FUSION) as out:
        computed = compute_fusion(a, b, c, d, method, s1_method, out, seed, threads,
                                  mask_clouds, windows, progress,
                                  tails_needed(store, s2a, s2b, windows, mask_clouds))
        return record_change(store, computed, seed)


def check_two_dates(a: PairInput, b: PairInput) -> None:
    """Refuse a pair whose two sides are one product (an id twice, or one path twice):
    its map would say "no change" everywhere, after minutes of work."""
    if a.product is not None and b.product is not None:
        same = a.product.product_id == b.product.product_id
    else:
        same = a.product is None and b.product is None \
            and Path(a.ref).resolve() == Path(b.ref).resolve()
    if same:
        raise PairingError(f"BEFORE and AFTER are the same product ({a.ref}): give two "
                           "dates of one place")


def read_pairs_file(path: str | Path) -> list[tuple[str, str]]:
    """Pairs, one a line: BEFORE AFTER (whitespace or comma separated); # comments."""
    pairs: list[tuple[str, str]] = []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = [p for p in text.replace(",", " ").split() if p]
        if len(parts) != 2:
            raise ConfigError(
                f"{path}:{n}: expected 'BEFORE AFTER' (two products or paths), got {line!r}"
            )
        pairs.append((parts[0], parts[1]))
    if not pairs:
        raise ConfigError(f"{path} lists no pair: write one 'BEFORE AFTER' line per pair")
    return pairs


def method_of(a: PairInput, method: str | None) -> str | None:
    """The pair's method: the one asked, or the default of an ingested product's sensor
    (None for a path: the task picks it once the product is read)."""
    if method is not None or a.product is None:
        return method
    return DEFAULT_METHOD.get(a.product.sensor, DEFAULT_METHOD["S2"])


@contextmanager
def layer_out(store: Store | None, first_in: PairInput, second_in: PairInput,
              method: str | None) -> Iterator[Path | None]:
    """Where a recorded pair's maps go by default, for the time of one run: where this
    database's earlier run of the pair put them, else `default_out`, or its first free
    `-N` name when another database of the workspace mapped the same pair there
    (`products remove` in one must not delete the other's layer). A new name is claimed
    (`claim`: atomic), so that another database mapping the pair during these minutes
    takes the next one, and released when the run ends: by then the maps hold the name,
    or the run failed. The claim is marked `committing` before the row (`record_change`):
    the maps of a run killed before that are removed by the next claimant. A copied
    database's earlier layer is its original's too (`Store.copied_from`): a new name,
    not over it. None where nothing is recorded (a path, no store): `default_out`, once
    the pair's method is known."""
    pid = pair_id_of(first_in, second_in, method) if method and store is not None else None
    row = store.pair(pid) if pid is not None else None
    if pid is None:
        yield None
        return
    if row is not None and row["layer_path"]:
        origin = store.copied_from()
        if origin is None or row["created"] >= origin[1]:
            yield Path(row["layer_path"])
            return
    name = claim(default_out(first_in.ref, second_in.ref, method),
                 also=lambda p: [binary_path_for(p)])
    try:
        yield name.dest
    except BaseException:
        _drop_unrecorded(store, pid, name.dest)
        raise
    finally:
        name.release()


def _drop_unrecorded(store: Store, pid: str, dest: Path) -> None:
    """A run that failed (an error, Ctrl-C) after writing its maps at the name it claimed
    and before recording them (the patch scores and `diff_tails` come after the maps):
    no row names them, so they go, and the name is free again. A pair the run recorded
    before the failure (a `--pairs` job fails after committing some) keeps its maps; so
    does one the database cannot say (it is the failure)."""
    try:
        row = store.pair(pid)
    except Exception:
        return
    if row is None or row["layer_path"] != str(dest):
        for path in (dest, binary_path_for(dest)):
            path.unlink(missing_ok=True)


def pair_id_of(first_in: PairInput, second_in: PairInput, method: str) -> str | None:
    """The `product_pairs` id of a pair of ingested products; None for paths."""
    if first_in.product is None or second_in.product is None:
        return None
    from eominer.store.pairs import pair_id

    return pair_id("change", first_in.product.product_id, second_in.product.product_id,
                   method)


def finished_run(store: Store | None, first_in: PairInput, second_in: PairInput, method: str,
                 seed: int, mask_clouds: bool = True) -> ChangeRun | None:
    """What an earlier run recorded for this pair, if it used the same seed and cloud
    masking and its maps are still on disk; else None (the pair is computed again)."""
    pid = pair_id_of(first_in, second_in, method)
    row = store.pair(pid) if store is not None and pid is not None else None
    if row is None:
        return None
    p = row["params"]
    if (p.get("seed") != seed or "changed_fraction" not in p
            or p.get("mask_clouds", True) != mask_clouds
            or not all(Path(f).exists() for f in (row["layer_path"] or "", p["binary_path"]))):
        return None
    if p.get("sensor", "S2") != "S1" and p.get("patches_scored") and \
            p.get("tails_feature_set_id") != tails_set_id(row["first_id"], row["second_id"],
                                                          mask_clouds):
        return None  # recorded before this version of the pair's `diff_tails`: compute again
    return ChangeRun(
        method=method, probability_path=row["layer_path"], binary_path=p["binary_path"],
        threshold=p["threshold"], changed_fraction=p["changed_fraction"],
        valid_fraction=p["valid_fraction"], cloud_fraction=p["cloud_fraction"],
        reprojected=p["reprojected"], days_apart=row["days_apart"], pair_id=row["pair_id"],
        feature_set_id=p["feature_set_id"], patches_scored=p["patches_scored"],
        tails_feature_set_id=p.get("tails_feature_set_id"),
        warnings=tuple(p.get("warnings", ())), sensor=p.get("sensor", "S2"),
        threshold_rule=p.get("threshold_rule", "otsu"), mask_clouds=mask_clouds,
    )
