"""`encoder`: embeddings from a small convolutional autoencoder (TensorFlow/Keras 3).

The autoencoder is trained without labels on the user's own level-32 patches
(`eominer encoder train --method autoencoder`); no pretrained weights are needed.
Input: 32 x 32 px of B02, B03, B04, B08 reflectance, standardised per band with the
training set's mean and std (stored with the model), nodata set to the band mean (0 after
standardising).
Patches larger than 32 px are averaged down by an integer factor to 32 x 32; smaller
ones (a workspace ingested at 16 px) are repeated up to it; other sizes (BigEarthNet's
120 px) are resampled by area.
Architecture: 3 strided 3x3 convolutions (16, 32, 64 filters, ReLU) -> dense
embedding (`dim`, linear, layer "embedding") -> mirrored transposed convolutions; MSE.

Models are saved as `<workspace>/models/encoder-v<N>.keras`; their parameters,
normalisation, loss and the products they were trained on are a row in `models`.
A feature set's identity includes the model id, so a retrained encoder never mixes
its embeddings with an older one's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import FeatureError, ModelNotTrainedError
from eominer.features.registry import Descriptor, require_bands
from eominer.tfimport import import_tensorflow

if TYPE_CHECKING:
    from types import ModuleType

    from keras import Model

    from eominer.store import Store

VERSION = 1
BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
PATCH = 32
KIND = "encoder"
DIM = 32  # embedding size: the feature set's columns


def _keras() -> ModuleType:
    import_tensorflow("the encoder")
    import keras

    return keras


def set_single_thread() -> None:
    """One TF thread per worker process: on these machines processes beat threads."""
    tf = import_tensorflow("the encoder")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process: keep its setting
        pass


def autoencoder(n_bands: int = len(BANDS), dim: int = DIM, seed: int = 0) -> Model:
    keras = _keras()
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((PATCH, PATCH, n_bands), name="patch")
    x = inp
    for f in (16, 32, 64):
        x = layers.Conv2D(f, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    z = layers.Dense(dim, name="embedding")(x)
    y = layers.Dense(4 * 4 * 64, activation="relu")(z)
    y = layers.Reshape((4, 4, 64))(y)
    for f in (32, 16):
        y = layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu")(y)
    out = layers.Conv2DTranspose(n_bands, 3, strides=2, padding="same", name="reconstruction")(y)
    model = keras.Model(inp, out, name="eominer_autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


def area_weights(size: int, out: int = PATCH) -> np.ndarray:
    """(out, size) weights of area resampling: row i is the share of each input pixel in
    output cell i (the interval [i, i + 1) * size / out), summing to 1."""
    edges = np.arange(out + 1) * (size / out)
    lo, hi = edges[:-1, None], edges[1:, None]
    px = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def _area_resample(p: np.ndarray) -> np.ndarray:
    """(bands, h, h) -> (bands, 32, 32) by area weights, NaN-aware: a cell averages the
    valid pixels it covers (by covered area); NaN where it covers none."""
    a = area_weights(p.shape[1])
    valid = np.isfinite(p)
    num = np.einsum("iy,byx,jx->bij", a, np.where(valid, p, 0.0), a)
    den = np.einsum("iy,byx,jx->bij", a, valid.astype(np.float64), a)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-9, num / den, np.nan).astype(np.float32)


def patch_tensor(stack: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """(n, 32, 32, bands) float32 patches, NaN kept: multiples of 32 px averaged down by
    blocks, divisors (16, 8 px) repeated up (each pixel a k x k block), any other square
    size (BigEarthNet's 120 px, a 20 px grid) resampled by area."""
    out = np.empty((len(windows), PATCH, PATCH, stack.shape[0]), np.float32)
    for i, (y, x, h, w) in enumerate(windows):
        if h != w:
            raise FeatureError(f"encoder patches must be square, got {h} x {w}")
        p = stack[:, y:y + h, x:x + w]
        k = h // PATCH
        if h % PATCH and PATCH % h:
            p = _area_resample(p)
        elif h < PATCH:
            p = np.repeat(np.repeat(p, PATCH // h, axis=1), PATCH // h, axis=2)
        elif k > 1:  # all-nodata cells stay NaN (errstate, unlike catch_warnings, is
            # thread-safe; np.nanmean would warn)
            cells = p.reshape(p.shape[0], PATCH, k, PATCH, k)
            valid = ~np.isnan(cells)
            with np.errstate(invalid="ignore", divide="ignore"):
                p = (np.where(valid, cells, 0.0).sum(axis=(2, 4))
                     / valid.sum(axis=(2, 4))).astype(np.float32)
        out[i] = np.moveaxis(p, 0, -1)
    return out


def standardise(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    z = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    z[~np.isfinite(z)] = 0.0
    return z


@functools.lru_cache(maxsize=4)
def load_embedder(path: str) -> Callable[[np.ndarray], np.ndarray]:
    """The model's encoder half, loaded once per process (each Ray worker keeps it)."""
    keras = _keras()
    set_single_thread()
    if not Path(path).exists():
        raise ModelNotTrainedError(
            f"encoder model file {path} is missing: train again (eominer encoder train)")
    model = keras.models.load_model(path, compile=False)
    embed = keras.Model(model.inputs, model.get_layer("embedding").output)

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(embed.predict(x, batch_size=256, verbose=0), np.float32)

    return run


def _compute(stack: np.ndarray, windows: np.ndarray, *, model_id: str, dim: int,
             path: str, mean: list[float], std: list[float]) -> np.ndarray:
    if not len(windows):
        return np.zeros((0, dim), np.float32)
    x = standardise(patch_tensor(stack, windows), mean, std)
    return load_embedder(path)(x)


def column_names(dim: int = DIM) -> tuple[str, ...]:
    """The feature set's columns for an embedding of `dim`, known before training."""
    return tuple(f"enc_{i:03d}" for i in range(dim))


def build(product_bands: Sequence[str], model: dict[str, Any] | None = None) -> Descriptor:
    """Configured with a `models` row (see `latest_encoder`)."""
    if model is None:
        raise ModelNotTrainedError(
            "no autoencoder has been trained in this database: run `eominer encoder train "
            "--method autoencoder` first (it learns from the ingested Sentinel-2 patches)"
        )
    p = model["params"]
    bands = model_bands(p)
    require_bands("encoder", product_bands, list(bands))
    dim = int(p["dim"])
    params = {"model_id": model["model_id"], "dim": dim}
    extra = {"path": model["path"], "mean": p["mean"], "std": p["std"]}
    return Descriptor("encoder", VERSION, "S2", params, bands, 0, column_names(dim), _compute,
                      extra)


def model_bands(params: dict[str, Any]) -> tuple[str, ...]:
    """The input bands a trained encoder's row records (its training choice)."""
    return tuple(params.get("bands") or BANDS)


def latest_encoder(store: Store) -> dict[str, Any] | None:
    return store.latest_model(KIND)
