"""Label-free variants combining the encoder's distance with `selftrain`, scored on the 9
OSCD cities (issue 19). Per city, the pair, the encoder distance and its whitened
per-feature differences are computed once and cached (.npy) under --cache.

    python bench/change_variants.py [--data /work/shared/data/oscd] [--cache DIR]
                                    [--variants a,b,...] [--cities c1,c2]

Every threshold is Otsu on the final probability; labels are used only to score."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eominer.change.normalise import sample_index, to_probability
from eominer.change.selftrain import (
    PER_CLASS,
    POST_SIGMA,
    SCALES,
    SEED_HIGH,
    SEED_LOW,
    C,
    _band_pair,
    _date_stats,
    mask_weights,
    masked_smooth,
    seed_map,
)
from eominer.change.threshold import binary_map, otsu_threshold
from eominer.evaluation.change_metrics import confusion, from_confusion

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

CITIES = ("abudhabi", "aguasclaras", "bercy", "bordeaux", "hongkong", "nantes", "paris",
          "rennes", "saclay_e")
BASE = {  # docs/change.md, F1 per city
    "cva": (.263, .130, .085, .084, .362, .210, .058, .340, .076),
    "irmad": (.100, .132, .041, .016, .289, .092, .061, .371, .078),
}


def city_arrays(root: Path, city: str, cache: Path) -> dict[str, np.ndarray]:
    d = cache / city
    names = ("x1", "x2", "valid", "truth", "enc", "encdiff", "cva", "irmad")
    if all((d / f"{n}.npy").exists() for n in names):
        return {n: np.load(d / f"{n}.npy") for n in names}
    from scipy.ndimage import uniform_filter

    from eominer.change.encoder import EncoderConfig, feature_distance, train_encoder
    from eominer.change.maps import change_distance
    from eominer.change.normalise import apply_stats
    from eominer.evaluation.oscd import load_city

    pair, truth = load_city(root, city)
    x1, x2, valid = pair.x1, pair.x2, pair.valid
    # the first encoder (10 m, 32 hidden channels), which the variant table was measured with
    cfg = EncoderConfig(pool=1, hidden=32, seed=0, threads=1)
    t0 = time.perf_counter()
    enc, s1, s2, scale = train_encoder(x1, x2, valid, cfg)
    dist = feature_distance(enc, x1, x2, valid, s1, s2, cfg.block_rows, scale=scale)
    dist[~valid] = 0.0
    dist = uniform_filter(dist, size=cfg.window, mode="nearest")
    dist[~valid] = 0.0
    # whitened per-feature differences (features, rows, cols), whole scene (OSCD is small)
    fa = np.asarray(enc(np.ascontiguousarray(apply_stats(x1, valid, s1).transpose(1, 2, 0))[None],
                        training=False))[0]
    fb = np.asarray(enc(np.ascontiguousarray(apply_stats(x2, valid, s2).transpose(1, 2, 0))[None],
                        training=False))[0]
    diff = ((fa - fb) / scale).transpose(2, 0, 1).astype(np.float32)
    print(f"{city}: encoder {time.perf_counter() - t0:.1f} s", flush=True)
    out = {"x1": x1, "x2": x2, "valid": valid, "truth": truth, "enc": dist, "encdiff": diff,
           "cva": change_distance("cva", x1, x2, valid, 0),
           "irmad": change_distance("irmad", x1, x2, valid, 0)}
    d.mkdir(parents=True, exist_ok=True)
    for n, a in out.items():
        np.save(d / f"{n}.npy", a)
    return out


def robust_z(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    from eominer.change.normalise import robust_location_scale

    m, s = robust_location_scale(x.ravel()[sample_index(valid)].astype(np.float64))
    return ((x - m) / s).astype(np.float32)


def rank01(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Empirical CDF over valid pixels (0..1)."""
    v = x[valid]
    order = np.sort(v)
    r = np.searchsorted(order, x, side="right").astype(np.float32) / np.float32(v.size)
    r[~valid] = 0
    return r


def ms(x: np.ndarray, valid: np.ndarray, dens: list[np.ndarray | None]) -> np.ndarray:
    """Masked mean over SCALES (seed_map of any per-pixel map)."""
    return seed_map(x, valid, dens)


def selftrain_general(
    x1: np.ndarray, x2: np.ndarray, valid: np.ndarray,
    seed_kind: str | Callable[[np.ndarray, list[np.ndarray | None]],
                              np.ndarray | tuple[np.ndarray, np.ndarray]] = "cva",
    extra: Iterable[np.ndarray] = (), seed: int = 0, a: object = None,
) -> np.ndarray:
    """selftrain with an optional other seed map and extra per-pixel features (each also
    smoothed at SCALES, like m). Explicit features (fine at OSCD size)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bands = x1.shape[0]
    stats = _date_stats(x1, x2, valid, "standardise", seed)
    pairs = [_band_pair(x1, x2, valid, stats, i) for i in range(bands)]
    d = [p[1] for p in pairs]
    m = np.sqrt(sum(di * di for di in d)).astype(np.float32)
    dens = mask_weights(valid)
    cols = [*d, *(np.abs(di) for di in d), m]
    for s, den in zip(SCALES, dens):
        cols += [masked_smooth(di, valid, s, den) for di in d] + [masked_smooth(m, valid, s, den)]
    cols += [p[0] for p in pairs]
    for e in extra:
        e = np.where(valid, e, 0).astype(np.float32)
        cols.append(e)
        cols += [masked_smooth(e, valid, s, den) for s, den in zip(SCALES, dens)]
    sv = seed_kind(m, dens) if callable(seed_kind) else ms(m, valid, dens)
    sh, sl = sv if isinstance(sv, tuple) else (sv, sv)
    sidx = sample_index(valid, seed=seed)
    high = float(np.quantile(sh.ravel()[sidx], SEED_HIGH))
    low = float(np.quantile(sl.ravel()[sidx], SEED_LOW))
    rng = np.random.default_rng(seed)
    keep = []
    for mask in (valid & (sh >= high), valid & (sl <= low)):
        idx = np.flatnonzero(mask.ravel())
        keep.append(rng.choice(idx, PER_CLASS, replace=False) if idx.size > PER_CLASS else idx)
    idx = np.concatenate(keep)
    y = np.r_[np.ones(keep[0].size, np.int8), np.zeros(keep[1].size, np.int8)]
    X = np.stack([c.ravel()[idx] for c in cols], axis=1).astype(np.float64)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    model.fit(X, y)
    sc, lr = model.steps[0][1], model.steps[1][1]
    w = lr.coef_[0] / sc.scale_
    b = float(lr.intercept_[0] - (w * sc.mean_).sum())
    z = np.full(valid.shape, np.float32(b), dtype=np.float32)
    for wi, c in zip(w, cols):
        z += np.float32(wi) * c
    z = 1 / (1 + np.exp(-np.clip(z, -50, 50)))
    p = masked_smooth(z.astype(np.float32), valid, POST_SIGMA)
    p[~valid] = np.nan
    return p


def otsu_binary(p: np.ndarray, valid: np.ndarray) -> np.ndarray:
    th = otsu_threshold(p, valid, 0)
    return binary_map(p, valid, th)


def run_variant(name: str, A: dict[str, np.ndarray], memo: dict) -> np.ndarray:
    """Binary map of variant `name` on city arrays A."""
    x1, x2, valid = A["x1"], A["x2"], A["valid"]
    dens = mask_weights(valid)

    def p_self() -> np.ndarray:
        if "self" not in memo:
            memo["self"] = selftrain_general(x1, x2, valid)
        return memo["self"]

    def p_enc() -> np.ndarray:
        return to_probability(A["enc"], valid, 0)

    enc = A["enc"]
    enc_ms = ms(enc, valid, dens)
    if name == "selftrain":
        p = p_self()
    elif name == "encoder":
        p = p_enc()
    elif name == "a_rank":  # seed: mean of rank-normalised CVA seed and encoder seed maps
        p = selftrain_general(x1, x2, valid, lambda m, dn: 0.5 * (
            rank01(ms(m, valid, dn), valid) + rank01(enc_ms, valid)))
    elif name == "a_z":  # seed: mean of robust-z seed maps
        p = selftrain_general(x1, x2, valid, lambda m, dn: 0.5 * (
            robust_z(ms(m, valid, dn), valid) + robust_z(enc_ms, valid)))
    elif name == "a_enc":  # seed: encoder seed map alone
        p = selftrain_general(x1, x2, valid, lambda m, dn: enc_ms)
    elif name == "b_dist":  # extra features: encoder distance (+ smoothed)
        p = selftrain_general(x1, x2, valid, extra=[enc])
    elif name == "b_diff":  # extra: encoder distance and |whitened feature differences|
        p = selftrain_general(x1, x2, valid, extra=[enc, *np.abs(A["encdiff"])])
    elif name == "ab_rank_dist":
        p = selftrain_general(x1, x2, valid, lambda m, dn: 0.5 * (
            rank01(ms(m, valid, dn), valid) + rank01(enc_ms, valid)), extra=[enc])
    elif name == "ab_z_dist":
        p = selftrain_general(x1, x2, valid, lambda m, dn: 0.5 * (
            robust_z(ms(m, valid, dn), valid) + robust_z(enc_ms, valid)), extra=[enc])
    elif name == "a_enc_dist":
        p = selftrain_general(x1, x2, valid, lambda m, dn: enc_ms, extra=[enc])
    elif name == "a_enc_diff":
        p = selftrain_general(x1, x2, valid, lambda m, dn: enc_ms,
                              extra=[enc, *np.abs(A["encdiff"])])
    elif name == "ab_z_diff":
        p = selftrain_general(x1, x2, valid, lambda m, dn: 0.5 * (
            robust_z(ms(m, valid, dn), valid) + robust_z(enc_ms, valid)),
            extra=[enc, *np.abs(A["encdiff"])])
    elif name == "ab_rank_diff":
        p = selftrain_general(x1, x2, valid, lambda m, dn: 0.5 * (
            rank01(ms(m, valid, dn), valid) + rank01(enc_ms, valid)),
            extra=[enc, *np.abs(A["encdiff"])])
    elif name in ("agree", "agree_dist"):  # change: both seeds high (min rank); no change: both low (max rank)
        def sk(m: np.ndarray, dn: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
            r1, r2 = rank01(ms(m, valid, dn), valid), rank01(enc_ms, valid)
            return np.minimum(r1, r2), np.maximum(r1, r2)
        p = selftrain_general(x1, x2, valid, sk, extra=[enc] if name == "agree_dist" else ())
    elif name == "module":  # the implemented method (selftrain_encoder) on the cached distance
        from eominer.change.selftrain import selftrain_probability

        p, _ = selftrain_probability(x1, x2, valid, 0, guide=enc)
    elif name == "c_mean":  # mean of the two final probabilities
        p = 0.5 * (p_self() + p_enc())
    elif name == "c_maxz":  # max of robust z of the two probabilities -> the common p rule
        ps = np.nan_to_num(p_self())
        z = np.maximum(robust_z(ps, valid), robust_z(A["enc"], valid))
        p = to_probability(z, valid, 0)
    elif name == "c_meanz":
        ps = np.nan_to_num(p_self())
        z = 0.5 * (robust_z(ps, valid) + robust_z(A["enc"], valid))
        p = to_probability(z, valid, 0)
    else:
        raise SystemExit(f"unknown variant {name}")
    return otsu_binary(p, valid)


VARIANTS = ("selftrain", "encoder", "a_rank", "a_z", "a_enc", "b_dist", "b_diff",
            "ab_rank_dist", "ab_z_dist", "c_mean", "c_maxz", "c_meanz", "a_enc_dist",
            "a_enc_diff", "ab_z_diff", "ab_rank_diff", "agree", "agree_dist")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/oscd")
    ap.add_argument("--cache", default="/tmp/chg19_cache")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--cities", default=",".join(CITIES))
    args = ap.parse_args()
    variants = args.variants.split(",")
    cities = args.cities.split(",")
    pooled = {v: np.zeros(4, np.int64) for v in variants}
    f1 = {v: {} for v in variants}
    secs = {v: 0.0 for v in variants}
    for city in cities:
        A = city_arrays(Path(args.data), city, Path(args.cache))
        memo: dict = {}
        for v in variants:
            t0 = time.perf_counter()
            b = run_variant(v, A, memo)
            secs[v] += time.perf_counter() - t0
            c = confusion(b == 1, A["truth"])
            pooled[v] += c
            f1[v][city] = from_confusion(*c, float("nan")).f1
        print(city, " ".join(f"{v}={f1[v][city]:.3f}" for v in variants), flush=True)
    print("\nvariant        pooled  wins  " + " ".join(f"{c[:6]:>6}" for c in cities))
    for v in variants:
        wins = sum(f1[v][c] > max(BASE["cva"][CITIES.index(c)], BASE["irmad"][CITIES.index(c)])
                   for c in cities)
        pf = from_confusion(*(int(x) for x in pooled[v]), float("nan")).f1
        print(f"{v:14s} {pf:.3f}  {wins}/{len(cities)}   "
              + " ".join(f"{f1[v][c]:6.3f}" for c in cities) + f"   ({secs[v]:.0f} s)")


if __name__ == "__main__":
    main()
