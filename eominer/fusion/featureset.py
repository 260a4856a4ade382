"""Fused S1+S2 feature sets in the database, keyed by the S2 patch id.

Two ways to build one (both give a feature set a mining session uses like any other):
- `build_fused_features`: the registered descriptors 's2stats' and 's1stats' (through
  eominer.fusion.features) computed from the S2 ARD and the pair's S1 layer (S1 resampled
  onto the S2 grid), one row per S2 patch of every recorded pair. Name 'fused_s1s2'; its
  parameters hold both descriptors' names, versions and parameters.
- `fuse_feature_sets`: the rows of two existing feature sets (e.g. 'spectral' of the S2
  product and 'sar' of the S1 product) joined per place: the S1 patch whose centre lies
  in the S2 patch (same CRS and level). Name 'fused_<s2 set>_<s1 set>' (shortened).

Either way the last column is `s2_usable` (1/0): where the optical patch is cloudy or
empty (eominer.fusion.cloud) its S2 block is written as zeros rather than cloud
statistics, so models see "no optical evidence", and the flag says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import FeatureError, GridMismatchError, MissingBandError
from eominer.fusion import cloud
from eominer.fusion.bands import S2_FUSION_BANDS
from eominer.fusion.features import (
    S1_FEATURE_NAMES,
    S2_FEATURE_NAMES,
    fuse,
    has_valid_pixels,
    s1_descriptor,
    s1_descriptors,
    s2_descriptor,
    s2_descriptors,
)
from eominer.sensors import S2_REFLECTANCE_SCALE
from eominer.store.fusion import FUSED_SENSOR

if TYPE_CHECKING:
    import pyarrow as pa

    from eominer.store import FeatureSet, Product, Store
    from eominer.store.removal import Refill

FUSED_NAME = "fused_s1s2"
FUSED_VERSION = 1


def descriptor_identity() -> dict:
    """Name, version and parameters of both per-sensor descriptors: part of the fused
    set's identity, so changed descriptor parameters never mix with old rows."""
    return {d.name: {"version": d.version, **d.params}
            for d in (s2_descriptor(), s1_descriptor())}


def _s2_band_indexes(product: Product) -> list[int]:
    bands = list(product.bands)
    missing = [b for b in S2_FUSION_BANDS if b not in bands]
    if missing:
        raise MissingBandError(
            f"S2 product {product.product_id} lacks {missing} (has {bands}): fusion needs "
            f"the 12 bands {list(S2_FUSION_BANDS)}"
        )
    return [product.band_index(b) for b in S2_FUSION_BANDS]


def _product(store: Store, product_id: str) -> Product:
    product = store.product(product_id)
    if product is None:
        raise FeatureError(f"product {product_id!r} is not in {store.url}: ingest it first")
    return product


def pair_patches(store: Store, pair: dict[str, Any], level: int,
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per row of patches of the pair's S2 product at `level`: (patch_ids, S2 (n, 12, L, L)
    reflectance, S1 (n, 2, L, L) dB on the same grid, cloud_fraction or NaN)."""
    from eominer.io.ard import read_ard

    s2 = _product(store, pair["s2_id"])
    idx = _s2_band_indexes(s2)
    boxes = store.patch_boxes(pair["s2_id"], level).to_pydict()
    if not boxes["patch_id"]:
        levels = store.patch_levels([pair["s2_id"]])
        raise GridMismatchError(
            f"S2 product {pair['s2_id']} has no patches at level {level} (levels: {levels}): "
            "pick one of its grid levels"
        )
    ids = np.asarray(boxes["patch_id"], np.int64)
    xo, yo = np.asarray(boxes["x_off"]), np.asarray(boxes["y_off"])
    cf = np.array([np.nan if v is None else v for v in boxes["cloud_fraction"]], np.float32)
    for y in np.unique(yo):
        sel = np.flatnonzero(yo == y)
        width = int(xo[sel].max()) + level
        win = (0, int(y), width, level)
        a = read_ard(s2.ard_path, window=win, bands=idx).astype(np.float32)
        a /= np.float32(S2_REFLECTANCE_SCALE)
        b = read_ard(pair["layer_path"], window=win).astype(np.float32)
        s2p = np.stack([a[:, :, x:x + level] for x in xo[sel]])
        s1p = np.stack([b[:, :, x:x + level] for x in xo[sel]])
        yield ids[sel], s2p, s1p, cf[sel]


def usable_flags(s2p: np.ndarray, cloud_fraction: np.ndarray, min_valid: float) -> np.ndarray:
    return np.array([
        cloud.usable(cloud.valid_fraction(p), None if np.isnan(c) else float(c), min_valid)
        for p, c in zip(s2p, cloud_fraction)
    ])


def build_fused_features(
    store: Store, level: int, weights: tuple[float, float] = (1.0, 1.0),
    min_valid: float = cloud.MIN_VALID, pairs: Sequence[dict[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[FeatureSet, int]:
    """Compute and store the 'fused_s1s2' feature set for every recorded pair at `level`."""
    pairs = list(pairs if pairs is not None else store.fusion_pairs())
    if not pairs:
        raise FeatureError("no S1/S2 pairs recorded: run `eominer fusion pair` first")
    # no level in the identity: rows are keyed by patch id, so one set holds every level
    params = {"weights": [float(w) for w in weights], "min_valid": float(min_valid),
              "descriptors": descriptor_identity()}
    fs = store.register_feature_set(
        FUSED_NAME, FUSED_VERSION, params, [*S2_FEATURE_NAMES, *S1_FEATURE_NAMES, "s2_usable"],
        sensor=FUSED_SENSOR, sources=[p["s1_id"] for p in pairs],  # the S2 rows' partners
    )
    total = 0
    for pair in pairs:
        for ids, rows in fused_pair_rows(store, pair, level, weights, min_valid):
            total += store.write_features(fs, ids, rows)
        store.record_row_sources(fs.feature_set_id, pair["s2_id"], [pair["s1_id"]],
                                 replace=False)
        if progress:
            progress(f"{pair['s2_id']}: fused features written")
    return fs, total


def fused_pair_rows(store: Store, pair: dict[str, Any], level: int,
                    weights: tuple[float, float], min_valid: float,
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The fused rows of one pair's S2 patches at `level`, a row of patches at a time:
    (patch ids, rows), from the S2 ARD and the pair's S1 layer."""
    for ids, s2p, s1p, cf in pair_patches(store, pair, level):
        ok = usable_flags(s2p, cf, min_valid)
        x2 = np.zeros((len(s2p), len(S2_FEATURE_NAMES)), np.float32)
        if ok.any():
            x2[ok] = s2_descriptors(s2p[ok])
        x1 = s1_descriptors(s1p)
        # a patch without valid pixels has no descriptors (the registry's zeros): skip it
        keep = has_valid_pixels(np.where(ok[:, None, None, None], s2p, 1.0), s1p)
        rows = np.hstack([fuse(x2, x1, weights), ok[:, None].astype(np.float32)])
        yield ids[keep], rows[keep]


def _centres(t: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    d = t.to_pydict()
    return ((np.asarray(d["min_x"]) + np.asarray(d["max_x"])) / 2,
            (np.asarray(d["min_y"]) + np.asarray(d["max_y"])) / 2)


def colocated(store: Store, s2_id: str, s1_id: str, level: int,
              ) -> tuple[np.ndarray, np.ndarray]:
    """(S2 patch ids, S1 patch ids) of patches at `level` covering the same place."""
    from rasterio.crs import CRS

    p2, p1 = _product(store, s2_id), _product(store, s1_id)
    if CRS.from_wkt(p2.crs) != CRS.from_wkt(p1.crs):
        raise GridMismatchError(
            f"{s2_id} and {s1_id} are in different CRSs: join their features through "
            "`build_fused_features` (which resamples S1 onto the S2 grid) instead"
        )
    t2, t1 = store.patch_boxes(s2_id, level), store.patch_boxes(s1_id, level)
    d2 = t2.to_pydict()
    cx, cy = _centres(t1)
    ids2, ids1 = [], []
    for pid, x0, y0, x1, y1 in zip(d2["patch_id"], d2["min_x"], d2["min_y"], d2["max_x"],
                                   d2["max_y"]):
        inside = np.flatnonzero((cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1))
        if inside.size:
            ids2.append(pid)
            ids1.append(t1["patch_id"][int(inside[0])].as_py())
    return np.asarray(ids2, np.int64), np.asarray(ids1, np.int64)


def fuse_feature_sets(
    store: Store, s2_feature_set: str, s1_feature_set: str, level: int,
    weights: tuple[float, float] = (1.0, 1.0), pairs: Sequence[dict[str, Any]] | None = None,
) -> tuple[FeatureSet, int]:
    """Store the weighted join of an S2 and an S1 feature set over the recorded pairs."""
    fs2 = store.require_feature_set(s2_feature_set)
    fs1 = store.require_feature_set(s1_feature_set)
    for fs, want in ((fs2, "S2"), (fs1, "S1")):
        if fs.sensor not in (None, want):
            raise FeatureError(
                f"feature set {fs.feature_set_id} is for {fs.sensor}, expected {want}: "
                "give the S2 feature set first, then the S1 one"
            )
    pairs = list(pairs if pairs is not None else store.fusion_pairs())
    if not pairs:
        raise FeatureError("no S1/S2 pairs recorded: run `eominer fusion pair` first")
    params = {"weights": [float(w) for w in weights], "s2": fs2.feature_set_id,
              "s1": fs1.feature_set_id}
    cols = [f"s2_{c}" for c in fs2.columns] + [f"s1_{c}" for c in fs1.columns] + ["s2_usable"]
    name = f"fused_{fs2.name}_{fs1.name}"[:64]
    out = store.register_feature_set(name, FUSED_VERSION, params, cols, sensor=FUSED_SENSOR,
                                     sources=[p["s1_id"] for p in pairs])
    total = 0
    for pair in pairs:
        ids2, ids1 = colocated(store, pair["s2_id"], pair["s1_id"], level)
        if not ids2.size:
            continue
        got2, X2, _ = store.read_features([fs2.feature_set_id], [pair["s2_id"]], level)
        got1, X1, _ = store.read_features([fs1.feature_set_id], [pair["s1_id"]], level)
        r2 = {int(p): i for i, p in enumerate(got2)}
        r1 = {int(p): i for i, p in enumerate(got1)}
        keep = [k for k, (a, b) in enumerate(zip(ids2, ids1)) if int(a) in r2 and int(b) in r1]
        if not keep:
            continue
        A = X2[[r2[int(ids2[k])] for k in keep]]
        B = X1[[r1[int(ids1[k])] for k in keep]]
        b = store.patch_boxes(pair["s2_id"], level).to_pydict()
        vf = {int(p): (v, c) for p, v, c in zip(b["patch_id"], b["valid_fraction"],
                                                b["cloud_fraction"])}
        ok = np.array([cloud.usable(vf[int(ids2[k])][0], vf[int(ids2[k])][1]) for k in keep])
        A = np.where(ok[:, None], A, 0.0)
        rows = np.hstack([fuse(A, B, weights), ok[:, None].astype(np.float32)])
        total += store.write_features(out, ids2[keep], rows)
        store.record_row_sources(out.feature_set_id, pair["s2_id"], [pair["s1_id"]],
                                 replace=False)
    return out, total


def refill(store: Store, fused: FeatureSet, s2_id: str, removed: str) -> Refill | None:
    """`s2_id`'s rows of a fused set once its S1 partner `removed` is gone: computed again
    from its other partners' pairs, at the levels it had rows at (a set of other
    descriptors' parameters than today's cannot be: None)."""
    from eominer.store.removal import Refill

    pairs = [p for p in store.fusion_pairs(s2_id) if p["s1_id"] != removed]
    levels = sorted({lv for _, lv in store.feature_levels(fused.feature_set_id, [s2_id])})
    w1, w2 = (float(w) for w in fused.params.get("weights", (1.0, 1.0)))
    if not pairs or not levels:
        return None
    partners = ", ".join(p["s1_id"] for p in pairs)
    if "s2" in fused.params and "s1" in fused.params:  # fuse_feature_sets': stored rows
        def join() -> None:
            for lv in levels:
                fuse_feature_sets(store, str(fused.params["s2"]), str(fused.params["s1"]),
                                  lv, (w1, w2), pairs)

        return Refill(partners, join)
    if fused.name != FUSED_NAME or fused.params.get("descriptors") != descriptor_identity():
        return None
    got: list[tuple[np.ndarray, np.ndarray]] = []

    def prepare() -> None:  # the pixels, read before the removal holds the database
        got[:] = [r for lv in levels for p in pairs for r in fused_pair_rows(
            store, p, lv, (w1, w2), float(fused.params["min_valid"]))]

    def write() -> None:
        for ids, rows in got:
            store.write_features(fused, ids, rows)
        for p in pairs:
            store.record_row_sources(fused.feature_set_id, s2_id, [p["s1_id"]], replace=False)

    return Refill(partners, write, prepare)
