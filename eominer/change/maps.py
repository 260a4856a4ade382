"""Change maps: a method's distance -> probability in [0, 1] -> binary map, and their COGs.

The methods are pure functions of two co-registered (bands, rows, cols) float32
reflectance arrays and a valid mask; this module only dispatches, normalises
(`normalise.to_probability`), thresholds (`threshold.otsu_threshold`) and writes.
Sentinel-1 methods (`logratio`, `rom`: linear power of VV, VH) bring their own
probability and threshold (`change.sar.s1_change`: Kittler-Illingworth with a CFAR guard).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eominer.change.normalise import to_probability
from eominer.change.threshold import binary_map, otsu_threshold
from eominer.errors import ConfigError

# Sentinel-2 pairs
METHODS: tuple[str, ...] = ("encoder", "cva", "irmad", "selftrain", "selftrain_encoder",
                            "regression", "selftrain_regression")
S2_METHODS = METHODS
S1_METHODS: tuple[str, ...] = ("logratio", "rom")  # = change.sar.S1_METHODS
ALL_METHODS: tuple[str, ...] = METHODS + S1_METHODS
FUSION = "fusion"  # the method name of an S1 + S2 fused map
# `selftrain` guided by another method's distance: the guided method -> its guide
GUIDES = {"selftrain_encoder": "encoder", "selftrain_regression": "regression"}
SELFTRAIN_METHODS: tuple[str, ...] = ("selftrain", *GUIDES)
DEFAULT_METHOD = {"S2": "selftrain_regression", "S1": "rom"}  # S2: best F1, within 180 s a tile
BINARY_NODATA = 255


@dataclass(frozen=True, eq=False)
class ChangeMap:
    """probability: float32, NaN = nodata; binary: uint8 1 change, 0 none, 255 nodata."""

    method: str
    probability: np.ndarray
    binary: np.ndarray
    threshold: float
    valid: np.ndarray
    rule: str = "otsu"  # how `threshold` was chosen (its unit follows the rule)

    @property
    def changed_fraction(self) -> float:
        n = int(self.valid.sum())
        return float(np.count_nonzero(self.binary == 1)) / n if n else 0.0


def check_method(method: str, sensor: str | None = None) -> str:
    """`method` if it is known (and fits `sensor` when given), else ConfigError."""
    if method not in ALL_METHODS:
        raise ConfigError(
            f"unknown change method {method!r}: expected one of {', '.join(ALL_METHODS)}"
        )
    fits = {"S2": S2_METHODS, "S1": S1_METHODS}.get(sensor or "")
    if fits is not None and method not in fits:
        name = "Sentinel-2 bands" if method in S2_METHODS else "Sentinel-1 VV and VH"
        raise ConfigError(
            f"change method {method!r} compares {name}, but the pair is {sensor}: use "
            f"one of {', '.join(fits)} for {sensor} pairs"
        )
    return method


def method_params(method: str) -> dict:
    """What besides its name identifies a method's maps, for its feature sets' identity:
    its fixed parameters (a release that changes them gives new feature sets rather than
    reusing maps made with the old ones): the encoder of `encoder` and of
    `selftrain_encoder`'s guide, the regression of `regression` and of
    `selftrain_regression`'s guide, the self-training of the `selftrain*` methods, IR-MAD's
    fit. Empty for CVA and the Sentinel-1 methods."""
    params: dict = {}
    base, key = (GUIDES[method], "guide") if method in GUIDES else (method, method)
    if base == "encoder":
        from eominer.change.encoder import EncoderConfig

        c = EncoderConfig()
        params[key] = {"pool": c.pool, "hidden": c.hidden, "crops": c.crops,
                       "epochs": c.epochs}
    if base == "regression":
        from eominer.change import regression

        params[key] = {"fit_sample": regression.FIT_SAMPLE}
    if method in SELFTRAIN_METHODS:
        from eominer.change import selftrain as st

        params["selftrain"] = {
            "normalise": "standardise", "scales": list(st.SCALES), "post_sigma": st.POST_SIGMA,
            "seed_high": st.SEED_HIGH, "seed_low": st.SEED_LOW,
            "per_class": st.PER_CLASS, "block": st.BLOCK, "max_blocks": st.MAX_BLOCKS,
            "c": st.C}
    if method == "irmad":
        from eominer.change import irmad

        params["irmad"] = {"fit_sample": irmad.FIT_SAMPLE, "max_iter": irmad.MAX_ITER,
                           "tol": irmad.TOL}
    return params


def _check_grid(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray) -> None:
    if x1.shape != x2.shape or x1.shape[1:] != valid.shape:
        raise ConfigError(
            f"change inputs must share one grid: got {x1.shape}, {x2.shape} and mask "
            f"{valid.shape}; align the pair first (eominer.change.align.align_pair)"
        )


def change_distance(
    method: str, x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, seed: int = 0,
    threads: int = 1,
) -> np.ndarray:
    check_method(method)
    _check_grid(x1, x2, valid)
    if method in S1_METHODS:
        from eominer.change.sar import s1_change_magnitude

        return s1_change_magnitude(x1, x2, valid, method)
    if method == "cva":
        from eominer.change.cva import cva_distance

        return cva_distance(x1, x2, valid, seed)
    if method == "irmad":
        from eominer.change.irmad import irmad_distance

        return irmad_distance(x1, x2, valid, seed)
    if method == "regression":
        from eominer.change.regression import regression_distance

        return regression_distance(x1, x2, valid, seed)
    if method in SELFTRAIN_METHODS:
        raise ConfigError(f"{method} gives a probability, not a distance: use change_map")
    from eominer.change.encoder import EncoderConfig, encoder_distance

    return encoder_distance(x1, x2, valid, EncoderConfig(seed=seed, threads=threads))


def change_map(
    x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, method: str = DEFAULT_METHOD["S2"],
    seed: int = 0, threads: int = 1,
) -> ChangeMap:
    """Probability and binary change map of two co-registered dates."""
    if method in S1_METHODS:
        from eominer.change.sar import s1_change

        r = s1_change(x1, x2, valid, method, seed=seed)
        return ChangeMap(method, r.probability, r.binary, r.threshold, valid, "ki-gg+cfar")
    if method == "selftrain":
        from eominer.change.selftrain import selftrain_probability

        _check_grid(x1, x2, valid)
        prob, _ = selftrain_probability(x1, x2, valid, seed, threads=threads)
    elif method in GUIDES:  # selftrain seeded and guided by another method's distance
        from eominer.change.selftrain import selftrain_probability

        stats = None
        if method == "selftrain_regression":  # the regression and the self-training
            from eominer.change.normalise import band_stats  # standardise each date alike:
            from eominer.change.regression import regression_distance  # once (~2 s a tile)

            _check_grid(x1, x2, valid)
            stats = (band_stats(x1, valid, seed), band_stats(x2, valid, seed))
            guide = regression_distance(x1, x2, valid, seed, stats)
        else:
            guide = change_distance(GUIDES[method], x1, x2, valid, seed, threads)
        prob, _ = selftrain_probability(x1, x2, valid, seed, guide=guide, threads=threads,
                                        stats=stats)
    else:
        d = change_distance(method, x1, x2, valid, seed, threads)
        prob = to_probability(d, valid, seed)
    th = otsu_threshold(prob, valid, seed)
    return ChangeMap(method, prob, binary_map(prob, valid, th), th, valid)


def binary_path_for(prob_path: str | Path) -> Path:
    p = Path(prob_path)
    return p.with_name(f"{p.stem}_binary{p.suffix or '.tif'}")


def write_maps(
    cmap: ChangeMap, crs_wkt: str, transform: tuple[float, ...], out: str | Path,
) -> tuple[Path, Path]:
    """Write the probability COG at `out` (float32, nodata NaN) and the binary COG beside
    it (`<stem>_binary.tif`, uint8, nodata 255), georeferenced like the first date."""
    import rasterio
    from rasterio.transform import Affine

    from eominer.io.ard import write_layer

    out = Path(out)
    paths = (out, binary_path_for(out))
    layers = (
        (cmap.probability, "float32", np.nan, f"change probability ({cmap.method})"),
        (cmap.binary, "uint8", BINARY_NODATA,
         f"change ({cmap.method}, {cmap.rule} threshold {cmap.threshold:.4f})"),
    )
    for path, (data, dtype, nodata, desc) in zip(paths, layers):
        profile = {
            "driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
            "dtype": dtype, "nodata": nodata, "crs": crs_wkt, "transform": Affine(*transform[:6]),
            # uncompressed: the COG copy compresses (level 1, a thread per core); GDAL's
            # default ZSTD level 9 here, on one thread, was a third of the time a full
            # tile's two maps took to write (10.7 s -> 7.3 s, docs/change.md)
            "tiled": True, "blockxsize": 512, "blockysize": 512,
        }

        def fill(tmp: Path, data: np.ndarray = data, dtype: str = dtype, desc: str = desc,
                 profile: dict[str, Any] = profile) -> None:
            with rasterio.open(tmp, "w", **profile) as ds:
                ds.write(data.astype(dtype, copy=False), 1)
                ds.set_band_description(1, desc)
                ds.update_tags(method=cmap.method, threshold=f"{cmap.threshold:.6f}",
                               threshold_rule=cmap.rule)

        write_layer(path, fill)
    return paths
