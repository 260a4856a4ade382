"""The learned change method: a small fully-convolutional encoder trained on the pair itself.

Self-supervised, no labels: one encoder E is shared by the two dates, each date has its
own decoder (D1, D2), and training minimises
    |D1(E(z1)) - z1|^2 + |D2(E(z2)) - z2|^2 + ALIGN * huber(E(z1) - E(z2))
on random crops of both (per-date standardised) dates at the same places. Reconstruction
forces the features to keep what is in each image; the alignment term asks the two dates
to share features wherever they can, and the per-date decoders absorb what differs
between the dates everywhere (season, illumination, atmosphere). Changed pixels are a
minority the encoder cannot align without losing their reconstruction, so they keep a
large feature distance; the robust (Huber) alignment lets them stay far apart.
Change distance: per-pixel Euclidean distance of the two feature maps (3 x 3 conv
receptive field twice: 5 x 5 px of context), each feature's difference divided by its
robust no-change scale on the training crops, averaged over a 3 x 3 window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from eominer.change.normalise import apply_stats, band_stats
from eominer.tfimport import import_tensorflow

if TYPE_CHECKING:
    from types import ModuleType

    from keras import Model
    from keras.layers import Conv2D
    from tensorflow import Tensor


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture and training schedule (part of the method's identity in the DB)."""

    features: int = 16
    hidden: int = 16
    dilation: int = 1
    crop: int = 32
    crops: int = 768
    epochs: int = 6
    batch: int = 32
    align: float = 1.0
    learning_rate: float = 2e-3
    window: int = 3
    whiten: bool = True
    block_rows: int = 256  # inference rows per call (+ halo): 256 ran faster than 1024
    seed: int = 0
    threads: int = 1
    # the encoder sees pool x pool means of the bands. 2 x 2 (20 m) with 16 hidden channels
    # needs a twelfth of the inference multiply-adds and half the training of the first
    # 10 m, 32-channel encoder, and scored higher on the 9 OSCD cities, both as the
    # `encoder` method (F1 0.236 vs 0.215) and as `selftrain_encoder`'s guide (0.307 vs
    # 0.303; docs/change.md)
    pool: int = 2


def _keras(threads: int) -> ModuleType:
    tf = import_tensorflow("the encoder change method")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised in this process: keep its setting
        pass
    import keras

    return keras


def build_models(bands: int, cfg: EncoderConfig) -> tuple[Model, Model]:
    """(encoder, trainer): the encoder maps (H, W, bands) to (H, W, features)."""
    keras = _keras(cfg.threads)
    L = keras.layers

    def conv(n: int, k: int, act: str | None, name: str,
             dilation: int = 1) -> Conv2D:
        return L.Conv2D(n, k, padding="same", activation=act, name=name,
                        dilation_rate=dilation)

    x_in = keras.Input((None, None, bands))
    h = conv(cfg.hidden, 3, "relu", "enc1")(x_in)
    h = conv(cfg.hidden, 3, "relu", "enc2", cfg.dilation)(h)
    f = conv(cfg.features, 1, None, "enc_out")(h)
    encoder = keras.Model(x_in, f, name="encoder")

    def decoder(name: str) -> Model:
        z = keras.Input((None, None, cfg.features))
        g = conv(cfg.hidden, 3, "relu", f"{name}_1")(z)
        g = conv(bands, 1, None, f"{name}_out")(g)
        return keras.Model(z, g, name=name)

    d1, d2 = decoder("dec1"), decoder("dec2")
    a = keras.Input((None, None, bands), name="date1")
    b = keras.Input((None, None, bands), name="date2")
    fa, fb = encoder(a), encoder(b)
    diff = L.Subtract(name="align")([fa, fb])
    trainer = keras.Model([a, b], [d1(fa), d2(fb), diff])
    trainer.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate),
        loss=["mse", "mse", keras.losses.Huber(delta=1.0)],
        loss_weights=[1.0, 1.0, cfg.align],
    )
    return encoder, trainer


def sample_crops(
    x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, stats1: tuple[np.ndarray, np.ndarray],
    stats2: tuple[np.ndarray, np.ndarray], cfg: EncoderConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random crops (n, crop, crop, bands), standardised, of both dates at the same
    places, kept when at least 90% of the crop is valid."""
    rng = np.random.default_rng(cfg.seed)
    _, rows, cols = x1.shape
    c = min(cfg.crop, rows, cols)
    ys = rng.integers(0, rows - c + 1, size=cfg.crops * 2)
    xs = rng.integers(0, cols - c + 1, size=cfg.crops * 2)
    keep = [(y, x) for y, x in zip(ys, xs) if valid[y:y + c, x:x + c].mean() >= 0.9]
    keep = keep[: cfg.crops] or [(int(ys[0]), int(xs[0]))]

    def crops(x: np.ndarray, stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        out = [apply_stats(x[:, y:y + c, x0:x0 + c], valid[y:y + c, x0:x0 + c], stats)
               for y, x0 in keep]
        return np.ascontiguousarray(np.stack(out).transpose(0, 2, 3, 1))

    return crops(x1, stats1), crops(x2, stats2)


def graph_of(encoder: Model, bands: int) -> Callable[[np.ndarray], Tensor]:
    """The encoder's inference as one TensorFlow graph for any block size: half the time
    of calling the Keras model eagerly (0.50 s against 0.95 s on a 272 x 5490 block)."""
    tf = import_tensorflow("the encoder change method")
    spec = tf.TensorSpec((None, None, None, bands), tf.float32)
    return tf.function(lambda x: encoder(x, training=False), input_signature=[spec])


def difference_scale(encoder: Model, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Robust scale (scaled MAD) of each feature's date-to-date difference on the
    training crops: mostly unchanged pixels, so it measures each feature's no-change
    noise, and dividing by it keeps noisy features from dominating the distance."""
    from eominer.change.normalise import robust_location_scale

    diff = np.asarray(encoder(a, training=False)) - np.asarray(encoder(b, training=False))
    diff = diff.reshape(-1, diff.shape[-1])
    return np.array([robust_location_scale(diff[:, k])[1] for k in range(diff.shape[1])],
                    dtype=np.float32)


def feature_distance(
    encoder: Model, x1: np.ndarray, x2: np.ndarray, valid: np.ndarray,
    stats1: tuple[np.ndarray, np.ndarray], stats2: tuple[np.ndarray, np.ndarray],
    block_rows: int, halo: int = 8, scale: np.ndarray | None = None,
) -> np.ndarray:
    """(rows, cols) Euclidean distance of the two dates' feature maps (each feature
    divided by `scale` when given), by row blocks with a halo (so block edges see the
    same context as the interior): memory stays at a few blocks whatever the scene size."""
    from eominer.change.rowblocks import map_row_blocks

    infer = graph_of(encoder, x1.shape[0])

    def block(a0: int, a1: int) -> np.ndarray:
        v = valid[a0:a1]
        feats = []
        for x, stats in ((x1, stats1), (x2, stats2)):
            z = apply_stats(x[:, a0:a1], v, stats)
            feats.append(np.asarray(infer(np.ascontiguousarray(z.transpose(1, 2, 0))[None]))[0])
        diff = feats[0] - feats[1]
        if scale is not None:
            diff /= scale
        return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))

    # one thread: TensorFlow spreads each block over the cores itself
    return map_row_blocks(block, valid.shape, halo, threads=1, block_rows=block_rows)


def train_encoder(
    x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, cfg: EncoderConfig,
) -> tuple[Model, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray],
           np.ndarray | None]:
    """(encoder, stats1, stats2, scale): the encoder trained on this pair (seeded) and
    its per-feature difference scale (None unless `cfg.whiten`)."""
    keras = _keras(cfg.threads)
    keras.utils.set_random_seed(cfg.seed)
    stats1 = band_stats(x1, valid, cfg.seed)
    stats2 = band_stats(x2, valid, cfg.seed)
    encoder, trainer = build_models(x1.shape[0], cfg)
    a, b = sample_crops(x1, x2, valid, stats1, stats2, cfg)
    zeros = np.zeros((*a.shape[:3], cfg.features), dtype=np.float32)
    trainer.fit([a, b], [a, b, zeros], batch_size=cfg.batch, epochs=cfg.epochs,
                shuffle=True, verbose=0)
    scale = difference_scale(encoder, a, b) if cfg.whiten else None
    return encoder, stats1, stats2, scale


def pooled(x: np.ndarray, valid: np.ndarray, pool: int,
           threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(bands, rows // pool, cols // pool) float32 block means and their valid mask (a
    block is valid when all its pixels are); band by band on `threads`, no full-size
    temporary."""
    from concurrent.futures import ThreadPoolExecutor

    bands, rows, cols = x.shape
    r, c = rows // pool, cols // pool
    out = np.empty((bands, r, c), dtype=np.float32)

    def band(i: int) -> None:  # strided sums: numpy's mean over axes (1, 3) is ~3x slower
        acc = out[i]
        acc[:] = x[i, 0:r * pool:pool, 0:c * pool:pool]
        for dy in range(pool):
            for dx in range(pool):
                if dy or dx:
                    acc += x[i, dy:r * pool:pool, dx:c * pool:pool]
        acc *= np.float32(1.0 / (pool * pool))

    with ThreadPoolExecutor(max(1, threads)) as ex:
        list(ex.map(band, range(bands)))
    ok = valid[:r * pool, :c * pool].reshape(r, pool, c, pool).all(axis=(1, 3))
    return out, ok


def upsampled(d: np.ndarray, valid: np.ndarray, pool: int) -> np.ndarray:
    """A pooled map back on the full grid `valid.shape` (bilinear between block centres,
    edge rows and columns past the last whole block repeat it); 0 outside `valid`."""
    from scipy.ndimage import zoom

    rows, cols = valid.shape
    up = zoom(d, pool, order=1, mode="nearest", grid_mode=True)
    out = np.empty((rows, cols), dtype=np.float32)
    h, w = min(rows, up.shape[0]), min(cols, up.shape[1])
    out[:h, :w] = up[:h, :w]
    out[h:, :w] = up[h - 1:h, :w]
    out[:, w:] = out[:, w - 1:w]
    out[~valid] = 0.0
    return out


def encoder_distance(
    x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, cfg: EncoderConfig | None = None,
) -> np.ndarray:
    """(rows, cols) float32 feature distance; 0 outside `valid`. Trains on this pair."""
    from scipy.ndimage import uniform_filter

    cfg = cfg or EncoderConfig()
    if cfg.pool > 1:
        from dataclasses import replace

        a, valid_a = pooled(x1, valid, cfg.pool, cfg.threads)
        b, _ = pooled(x2, valid, cfg.pool, cfg.threads)
        return upsampled(encoder_distance(a, b, valid_a, replace(cfg, pool=1)), valid, cfg.pool)
    encoder, stats1, stats2, scale = train_encoder(x1, x2, valid, cfg)
    d = feature_distance(encoder, x1, x2, valid, stats1, stats2, cfg.block_rows, scale=scale)
    d[~valid] = 0.0
    if cfg.window > 1:
        d = uniform_filter(d, size=cfg.window, mode="nearest")
        d[~valid] = 0.0
    return d
