"""`ssl`: embeddings from a convolutional encoder trained self-supervised (VICReg) on the
user's own patches.

VICReg (Bardes, Ponce, LeCun, ICLR 2022) needs no negatives and works with small
batches on a CPU: two augmented views of each patch go through the same encoder and a
projector; the loss pulls the two views' projections together (invariance), keeps each
projected dimension's std over the batch above 1 (variance: no collapse) and
decorrelates the dimensions (covariance). Unlike the autoencoder, nothing rewards
reconstructing pixels, so the embedding keeps what survives the augmentations: what a
patch holds, not where in it or in which orientation.

EO augmentations (pure numpy functions of a (n, 32, 32, bands) reflectance batch and a
seeded Generator, NaN = nodata): horizontal/vertical flips and 90-degree rotations
(overhead imagery has no up), small crops resized back (scale), band dropout (one band
reads as nodata: its mean after standardising) and brightness (reflectance x 0.8..1.2:
illumination, season).

Input and normalisation are the autoencoder's (`features/encoder.py`: 32 x 32 px of
B02, B03, B04, B08, standardised with the training set's mean and std, other patch
sizes resized). Encoder: 3x3 convolutions 16, 32 (stride 2), 64 (stride 2), `dim`,
batch norm and ReLU each, global average pooling -> layer "embedding" (`dim`);
projector (training only): dense 256-256. The saved model is the encoder alone,
`<workspace>/models/ssl-v<N>.keras`, with a `models` row of kind `ssl` (parameters, normalisation, loss history, products).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import FeatureError, ModelNotTrainedError
from eominer.features.encoder import BANDS, PATCH, _compute, _keras, model_bands, standardise
from eominer.features.registry import Descriptor, require_bands
from eominer.tfimport import import_tensorflow

if TYPE_CHECKING:
    from keras import Model, Sequential
    from tensorflow import Tensor

    from eominer.store import Store

VERSION = 1
KIND = "ssl"
DIM = 64  # embedding size: the feature set's columns
PROJECTOR = 256
MIN_BATCH = 16  # the smallest batch whose per-column std VICReg trusts
# VICReg's weights of invariance, variance and covariance (the paper's defaults)
W_INV, W_VAR, W_COV = 25.0, 25.0, 1.0


# ---- augmentations: (n, H, W, C) arrays, pure functions of their inputs ---------------
def flip_rotate(x: np.ndarray, k: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Patch i rotated by k[i] x 90 degrees (counter-clockwise), then mirrored left-right
    where flip[i]: the 8 symmetries of the square."""
    out = np.empty_like(x)
    for i in range(len(x)):
        r = np.rot90(x[i], int(k[i]), axes=(0, 1))
        out[i] = r[:, ::-1] if flip[i] else r
    return out


def crop_resize(x: np.ndarray, y0: np.ndarray, x0: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The size[i] x size[i] crop of patch i at (y0[i], x0[i]), resized back to the
    patch's size by nearest neighbour."""
    n, h, w = x.shape[:3]
    out = np.empty_like(x)
    for i in range(n):
        s = int(size[i])
        if not (s > 0 and y0[i] + s <= h and x0[i] + s <= w):
            raise FeatureError(f"crop {s} px at ({y0[i]}, {x0[i]}) outside a {h} x {w} patch")
        rows = y0[i] + (np.arange(h) * s) // h
        cols = x0[i] + (np.arange(w) * s) // w
        out[i] = x[i][rows][:, cols]
    return out


def band_dropout(x: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Patch i with band[i] set to nodata (NaN; -1: no band dropped)."""
    out = x.copy()
    for i, b in enumerate(band):
        if b >= 0:
            out[i, :, :, int(b)] = np.nan
    return out


def brightness(x: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Reflectance of patch i times factor[i] (NaN stays NaN)."""
    return x * np.asarray(factor, x.dtype).reshape(-1, 1, 1, 1)


def augment(x: np.ndarray, rng: np.random.Generator, *, min_crop: float = 0.75,
            p_dropout: float = 0.2, max_brightness: float = 0.2) -> np.ndarray:
    """One random view of each patch: symmetry, crop of min_crop..1 of the side,
    one band dropped with probability p_dropout, brightness x (1 +- max_brightness)."""
    n, h = len(x), x.shape[1]
    v = flip_rotate(x, rng.integers(0, 4, n), rng.random(n) < 0.5)
    size = rng.integers(int(np.ceil(min_crop * h)), h + 1, n)
    v = crop_resize(v, rng.integers(0, h - size + 1), rng.integers(0, h - size + 1), size)
    drop = np.where(rng.random(n) < p_dropout, rng.integers(0, x.shape[3], n), -1)
    v = band_dropout(v, drop)
    return brightness(v, rng.uniform(1 - max_brightness, 1 + max_brightness, n))


# ---- model and loss -----------------------------------------------------------------
def ssl_encoder(n_bands: int = len(BANDS), dim: int = DIM, seed: int = 0) -> Model:
    keras = _keras()
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((PATCH, PATCH, n_bands), name="patch")
    x = inp
    for f, stride in ((16, 1), (32, 2), (64, 2), (dim, 1)):
        x = layers.Conv2D(f, 3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    z = layers.GlobalAveragePooling2D(name="embedding")(x)
    return keras.Model(inp, z, name="eominer_ssl_encoder")


def projector(dim: int, width: int = PROJECTOR) -> Sequential:
    keras = _keras()
    from keras import layers

    return keras.Sequential([keras.Input((dim,)), layers.Dense(width, use_bias=False),
                             layers.BatchNormalization(), layers.ReLU(), layers.Dense(width)],
                            name="projector")


def vicreg_loss(za: Tensor,
                zb: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(total, invariance, variance, covariance) of two (n, d) batches of projections."""
    from keras import ops

    inv = ops.mean(ops.square(za - zb))
    var = cov = 0.0
    for z in (za, zb):
        z = z - ops.mean(z, axis=0)
        std = ops.sqrt(ops.var(z, axis=0) + 1e-4)
        var = var + ops.mean(ops.relu(1.0 - std)) / 2
        n, d = ops.shape(z)[0], ops.shape(z)[1]
        c = ops.matmul(ops.transpose(z), z) / ops.cast(n - 1, z.dtype)
        off = c * (1.0 - ops.eye(d, dtype=z.dtype))
        cov = cov + ops.sum(ops.square(off)) / ops.cast(d, z.dtype) / 2
    return W_INV * inv + W_VAR * var + W_COV * cov, inv, var, cov


def fit_vicreg(x: np.ndarray, mean: np.ndarray, std: np.ndarray, *, dim: int = DIM,
               epochs: int = 5, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
               log: Callable[[str], None] | None = None) -> tuple[Any, list[float]]:
    """Train on reflectance patches `x` (n, 32, 32, bands); (encoder, loss per epoch)."""
    tf = import_tensorflow("the ssl encoder")
    keras = _keras()
    # one whole batch: VICReg's variance and covariance terms are batch statistics (a
    # small archive gets one step per epoch; raise --epochs for more)
    if len(x) < min(batch_size, MIN_BATCH):
        raise FeatureError(f"ssl training needs at least {min(batch_size, MIN_BATCH)} "
                           f"patches, got {len(x)}: ingest more Sentinel-2 products")
    enc = ssl_encoder(x.shape[-1], dim, seed)
    proj = projector(dim)
    opt = keras.optimizers.Adam(lr)
    weights = enc.trainable_variables + proj.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(a: Tensor, b: Tensor) -> Tensor:
        with tf.GradientTape() as tape:
            za = proj(enc(a, training=True), training=True)
            zb = proj(enc(b, training=True), training=True)
            loss = vicreg_loss(za, zb)[0]
        opt.apply_gradients(zip(tape.gradient(loss, weights), weights, strict=True))
        return loss

    rng = np.random.default_rng(seed)
    bs = min(batch_size, len(x))
    losses = []
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        total, batches = 0.0, 0
        for i in range(0, len(order) - bs + 1, bs):  # whole batches: VICReg's std needs n
            xb = x[order[i:i + bs]]
            a = standardise(augment(xb, rng), mean, std)
            b = standardise(augment(xb, rng), mean, std)
            total += float(step(tf.constant(a), tf.constant(b)))
            batches += 1
        losses.append(total / max(batches, 1))
        if log:
            log(f"epoch {epoch + 1}/{epochs}: VICReg loss {losses[-1]:.4f}")
    return enc, losses


def fit_ssl(x: np.ndarray, epochs: int = 5, dim: int = DIM, batch_size: int = 128,
            seed: int = 0, log: Callable[[str], None] | None = None,
            bands: Sequence[str] = BANDS) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Train on reflectance patches of `bands` (the last axis of x); (encoder, params,
    metrics) of its `models` row."""
    from eominer.features.encoder_train import band_norm, input_bands

    bands = input_bands(x, bands)
    mean, std = band_norm(x)
    if log:
        bs = min(batch_size, len(x))
        steps = len(x) // max(bs, 1)
        log(f"VICReg training on {len(x)} patches, {epochs} epoch(s) of {steps} step(s) of "
            f"{bs}" + ("; so few patches make one step per epoch: raise --epochs for more"
                       if steps == 1 else ""))
    t0 = time.perf_counter()
    enc, losses = fit_vicreg(x, mean, std, dim=dim, epochs=epochs, batch_size=batch_size,
                             seed=seed, log=log)
    seconds = time.perf_counter() - t0
    params = {"dim": dim, "bands": list(bands), "patch_px": PATCH, "epochs": epochs,
              "batch_size": batch_size, "seed": seed, "mean": mean.tolist(),
              "std": std.tolist(), "method": "vicreg",
              "architecture": f"conv16-32s2-64s2-{dim}/bn/gap; projector "
                              f"{PROJECTOR}-{PROJECTOR}",
              "augmentations": "d4 symmetries, crop 0.75-1, band dropout 0.2, "
                               "brightness 0.8-1.2"}
    metrics = {"loss": losses[-1], "loss_history": losses, "patches": int(len(x)),
               "train_seconds": round(seconds, 3),
               "train_patches_per_s": round(len(x) * epochs / max(seconds, 1e-9), 1)}
    return enc, params, metrics


def train_ssl(store: Store, product_ids: Sequence[str] | None = None, epochs: int = 5,
              dim: int = DIM, max_patches: int = 20000, batch_size: int = 128,
              seed: int = 0, log: Callable[[str], None] | None = None,
              bands: Sequence[str] = BANDS) -> dict[str, Any]:
    """Train in this process, save `<workspace>/models/ssl-v<N>.keras`, record it;
    return its `models` row (`compute.encoder.train` runs the same on the runner)."""
    from eominer.features.encoder_train import collect_patches, save_model

    x, used = collect_patches(store, product_ids, max_patches, seed=seed, bands=bands,
                              log=log)
    enc, params, metrics = fit_ssl(x, epochs, dim, batch_size, seed, log, bands)
    return save_model(store, KIND, enc, params, metrics, used)


# ---- the descriptor -----------------------------------------------------------------
def column_names(dim: int = DIM) -> tuple[str, ...]:
    """The feature set's columns for an embedding of `dim`, known before training."""
    return tuple(f"ssl_{i:03d}" for i in range(dim))


def build(product_bands: Sequence[str], model: dict[str, Any] | None = None) -> Descriptor:
    """Configured with a `models` row of kind `ssl` (see `latest_ssl`)."""
    if model is None:
        raise ModelNotTrainedError(
            "no ssl encoder has been trained in this database: run `eominer encoder train "
            "--method ssl` first (it learns from the ingested Sentinel-2 patches)"
        )
    p = model["params"]
    bands = model_bands(p)
    require_bands("ssl", product_bands, list(bands))
    dim = int(p["dim"])
    params = {"model_id": model["model_id"], "dim": dim}
    extra = {"path": model["path"], "mean": p["mean"], "std": p["std"]}
    return Descriptor("ssl", VERSION, "S2", params, bands, 0, column_names(dim), _compute,
                      extra)


def latest_ssl(store: Store) -> dict[str, Any] | None:
    return store.latest_model(KIND)
