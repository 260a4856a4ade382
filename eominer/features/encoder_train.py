"""Training the patch autoencoder on the ingested Sentinel-2 products (no labels).

    from eominer.features.encoder_train import train_encoder
    row = train_encoder(store, epochs=5)   # -> the new `models` row

The model file is written under a temporary name and renamed into place only after
its metadata row is committed, so a failed or interrupted training leaves nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import FeatureError
from eominer.features.blocks import band_indexes, read_block
from eominer.features.encoder import (
    BANDS,
    DIM,
    KIND,
    PATCH,
    _keras,
    autoencoder,
    patch_tensor,
)
from eominer.workspace import claim, models_dir

if TYPE_CHECKING:
    from eominer.store import Store

BLOCK_ROWS = 1024


@dataclass(frozen=True)
class PatchSource:
    """Where one product's training patches are: what a worker needs to read them."""

    product_id: str
    ard_path: str
    bands: tuple[str, ...]
    width: int
    height: int
    size: int  # the patch level sampled
    use: tuple[str, ...]  # the bands the encoder reads, in its input order
    ys: np.ndarray = field(repr=False)
    xs: np.ndarray = field(repr=False)


def sample_sources(store: Store, product_ids: Sequence[str] | None = None,
                   max_patches: int = 20000, min_valid: float = 0.9, seed: int = 0,
                   bands: Sequence[str] = BANDS, log: Callable[[str], None] | None = None,
                   ) -> list[PatchSource]:
    """The patches to train on, sampled from the S2 products' patch table (no pixels).
    Only products holding all of `bands` are used: one named in `product_ids` without
    them is an error, the others are left out with a note to `log`."""
    bands = check_bands(bands)
    rng = np.random.default_rng(seed)
    table = store.product_list()
    known = {p.product_id for p in table}
    if product_ids:
        unknown = [p for p in product_ids if p not in known]
        if unknown:
            raise FeatureError(f"product(s) {', '.join(unknown)} not in the database: "
                               "see `eominer products`")
    wanted = [p for p in table if p.sensor == "S2"
              and (not product_ids or p.product_id in product_ids)]
    if product_ids and not wanted:
        raise FeatureError(f"product(s) {', '.join(product_ids)} are not Sentinel-2: the "
                           "encoders learn from Sentinel-2 patches; name Sentinel-2 products "
                           "(see `eominer products`)")
    missing = {p.product_id: [b for b in bands if b not in p.bands] for p in wanted}
    chosen = [p for p in wanted if not missing[p.product_id]]
    lacking = {pid: miss for pid, miss in missing.items() if miss}
    if lacking and product_ids:
        pid, miss = next(iter(lacking.items()))
        raise FeatureError(f"product {pid} lacks band(s) {', '.join(miss)} that the encoder "
                           "would see: leave it out of --products or choose --bands it has")
    if lacking and log:
        log(f"left out {len(lacking)} Sentinel-2 product(s) without all of "
            f"{', '.join(bands)}: {', '.join(sorted(lacking))}")
    per_product = max(1, max_patches // max(len(chosen), 1))
    sources = []
    for prod in chosen:
        pt = store.patches(prod.product_id)
        size = training_level(pt["level"].to_numpy())
        keep = (pt["level"].to_numpy() == size) & (
            np.asarray(pt["valid_fraction"].to_numpy()) >= min_valid)
        ys = pt["y_off"].to_numpy()[keep]
        xs = pt["x_off"].to_numpy()[keep]
        if not len(ys):
            continue
        if len(ys) > per_product:
            pick = np.sort(rng.choice(len(ys), per_product, replace=False))
            ys, xs = ys[pick], xs[pick]
        sources.append(PatchSource(prod.product_id, prod.ard_path, tuple(prod.bands),
                                   prod.width, prod.height, size, bands, ys, xs))
    if not sources:
        raise FeatureError(
            f"no Sentinel-2 patches with bands {', '.join(bands)} and at least "
            f"{min_valid:.0%} valid pixels in the database: "
            "ingest Sentinel-2 products first (eominer ingest PATH)"
        )
    return sources


def read_patches(sources: Sequence[PatchSource]) -> tuple[np.ndarray, list[str]]:
    """(n, 32, 32, bands) reflectance patches (NaN = nodata) read from the ARD files, and
    the products they came from; block by block, so memory holds one block at a time."""
    parts = []
    for src in sources:
        idx = band_indexes(list(src.bands), src.use, src.product_id)
        ys, xs, size = src.ys, src.xs, src.size
        for y0 in range(0, src.height, BLOCK_ROWS):
            sel = (ys >= y0) & (ys + size <= y0 + BLOCK_ROWS)
            if not sel.any():
                continue
            y1 = min(y0 + BLOCK_ROWS, src.height)
            stack = read_block(src.ard_path, "S2", idx, y0, y1, 0, src.width, src.height)
            win = np.stack([ys[sel] - y0, xs[sel], np.full(sel.sum(), size),
                            np.full(sel.sum(), size)], axis=1)
            parts.append(patch_tensor(stack, win))
    return np.concatenate(parts), [src.product_id for src in sources]


def collect_patches(store: Store, product_ids: Sequence[str] | None = None,
                    max_patches: int = 20000, min_valid: float = 0.9, seed: int = 0,
                    bands: Sequence[str] = BANDS, log: Callable[[str], None] | None = None,
                    ) -> tuple[np.ndarray, list[str]]:
    """(n, 32, 32, bands) reflectance patches (NaN = nodata) sampled from S2 products."""
    return read_patches(sample_sources(store, product_ids, max_patches, min_valid, seed,
                                       bands, log))


def check_bands(bands: Sequence[str]) -> tuple[str, ...]:
    """The encoder's input bands as a tuple, each an S2 L2A band, none twice."""
    from eominer.sensors import S2_L2A_BANDS

    out = tuple(b.strip().upper() for b in bands if b.strip())
    bad = [b for b in out if b not in S2_L2A_BANDS]
    if bad or not out or len(set(out)) != len(out):
        raise FeatureError(
            f"encoder bands {', '.join(bands) or '(none)'}: give distinct Sentinel-2 bands "
            f"among {', '.join(S2_L2A_BANDS)} (default {', '.join(BANDS)})")
    return out


def band_norm(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std of the training patches (std 1 for a constant band)."""
    mean = np.nanmean(x, axis=(0, 1, 2)).astype(np.float64)
    std = np.nanstd(x, axis=(0, 1, 2)).astype(np.float64)
    std[~(std > 1e-6)] = 1.0
    return mean, std


def input_bands(x: np.ndarray, bands: Sequence[str]) -> tuple[str, ...]:
    """`bands` checked against the patches' last axis (the encoder's input order)."""
    bands = check_bands(bands)
    if x.ndim != 4 or x.shape[-1] != len(bands):
        raise FeatureError(f"training patches must be (n, {PATCH}, {PATCH}, {len(bands)}) "
                           f"for bands {', '.join(bands)}, got shape {x.shape}")
    return bands


def training_level(levels: np.ndarray) -> int:
    """The level patches are sampled from: the one nearest to 32 px (in scale; the larger
    of two equally near), which `patch_tensor` resizes to 32 x 32; 0 if none."""
    usable = sorted({int(v) for v in levels if v > 0},
                    key=lambda v: (abs(np.log2(v / PATCH)), -v))
    return usable[0] if usable else 0


def save_model(store: Store, kind: str, model: Any, params: dict[str, Any],
               metrics: dict[str, Any], used: list[str]) -> dict[str, Any]:
    """Save `<workspace>/models/<kind>-v<N>.keras` (or `-v<N>-2.keras`, ...: the first free
    name), record its row; return the row.
    The file is staged and renamed only once its row is committed."""
    n = len(store.models(kind)) + 1
    while store.model(f"{kind}-v{n}") is not None:
        n += 1
    model_id = f"{kind}-v{n}"
    name = claim(models_dir() / f"{model_id}.keras")  # another database's ssl-v1
    try:
        if isinstance(model, bytes):  # trained on a runner worker: the saved file's bytes
            name.staged.write_bytes(model)
        else:
            model.save(name.staged)
        name.committing()
        store.add_model(model_id, kind, str(name.dest), params, metrics, used)
        name.staged.replace(name.dest)
    finally:
        name.release()
    return store.model(model_id)


def fit_autoencoder(x: np.ndarray, epochs: int = 5, dim: int = DIM, batch_size: int = 128,
                    seed: int = 0, log: Callable[[str], None] | None = None,
                    bands: Sequence[str] = BANDS,
                    ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Train on reflectance patches of `bands` (the last axis of x); (model, params,
    metrics) of its `models` row."""
    from eominer.features.encoder import standardise

    bands = input_bands(x, bands)
    mean, std = band_norm(x)
    z = standardise(x, mean, std)
    model = autoencoder(len(bands), dim, seed)
    if log:
        log(f"training on {len(z)} patches, {epochs} epoch(s)")
    t0 = time.perf_counter()
    said = [_keras().callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: log(
        f"epoch {epoch + 1}/{epochs}: loss {logs['loss']:.4f}"))] if log else []
    hist = model.fit(z, z, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
                     callbacks=said)
    seconds = time.perf_counter() - t0
    params = {"dim": dim, "bands": list(bands), "patch_px": PATCH, "epochs": epochs,
              "batch_size": batch_size, "seed": seed, "mean": mean.tolist(),
              "std": std.tolist(), "architecture": "conv16-32-64/dense/deconv"}
    losses = [float(v) for v in hist.history["loss"]]
    metrics = {"loss": losses[-1], "loss_history": losses, "patches": int(len(z)),
               "train_seconds": round(seconds, 3),
               "train_patches_per_s": round(len(z) * epochs / max(seconds, 1e-9), 1)}
    return model, params, metrics


def train_encoder(store: Store, product_ids: Sequence[str] | None = None, epochs: int = 5,
                  dim: int = DIM, max_patches: int = 20000, batch_size: int = 128, seed: int = 0,
                  log: Callable[[str], None] | None = None,
                  bands: Sequence[str] = BANDS) -> dict[str, Any]:
    """Train in this process, save `<workspace>/models/encoder-v<N>.keras`, record it;
    return its row (`compute.encoder.train` runs the same on the runner)."""
    x, used = collect_patches(store, product_ids, max_patches, seed=seed, bands=bands,
                              log=log)
    model, params, metrics = fit_autoencoder(x, epochs, dim, batch_size, seed, log, bands)
    return save_model(store, KIND, model, params, metrics, used)
