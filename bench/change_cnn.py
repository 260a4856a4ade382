"""Self-training with a small convolutional network: issue 19's "small supervised model
(TensorFlow) trained on high-confidence pseudo-labels", scored on the 9 OSCD cities.

The teacher is the product's map (`selftrain_regression`'s probability, seed 0): its top
2 % of valid pixels are "change", its bottom 80 % "no change", the rest unlabelled. The
student sees both dates' bands (each standardised on its valid pixels: median, standard
deviation), 20 channels, through four 3 x 3 convolutions of 24 channels (dilations 1, 1,
2, 4: a 31 px reach) and a 1 x 1 output; it learns from 300 batches of 8 crops of 64 px
(half of them around a "change" pixel, each turned by a random multiple of 90 degrees and
mirrored at random), a cross-entropy over the labelled pixels only, "change" weighted by
the classes' ratio. Its probability over the whole pair is smoothed as the product's is
(masked Gaussian, sigma 1) and cut by Otsu. `cnn_mean` is the mean of the student's and
the teacher's probabilities.

    python bench/change_cnn.py [--data ../shared/data/oscd] [--cache DIR]
        [--variants regression,cnn,cnn_mean]

Prints per city F1 / best-threshold F1, then pooled F1, its bound and AUPRC (labels only
to score). ~1 min a city for each student on 2 cores."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from change_thresholds import arguments, score_cities  # this folder

if TYPE_CHECKING:
    from tensorflow import Tensor

    from eominer.change.align import AlignedPair

VARIANTS = ("regression", "cnn", "cnn_mean")
TEACHER_HIGH, TEACHER_LOW = 0.98, 0.80
CHANNELS, DILATIONS = 24, (1, 1, 2, 4)
STEPS, BATCH, CROP = 300, 8, 64


def standardised(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, np.float32)
    for i, band in enumerate(x):
        v = band[valid]
        out[i] = (band - np.median(v)) / (np.std(v) + 1e-6)
    return np.where(valid, out, np.float32(0))


def pseudo_labels(teacher: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """int8: 1 change, 0 no change, -1 unlabelled (or masked)."""
    p = np.where(valid, np.nan_to_num(teacher, nan=0.0), 0.0)
    high, low = np.quantile(p[valid], [TEACHER_HIGH, TEACHER_LOW])
    y = np.full(valid.shape, -1, np.int8)
    y[valid & (p >= high)] = 1
    y[valid & (p <= low)] = 0
    return y


def student_probability(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, teacher: np.ndarray,
                        seed: int = 0) -> np.ndarray:
    import tensorflow as tf

    from eominer.change.selftrain import POST_SIGMA, masked_smooth

    tf.keras.utils.set_random_seed(seed)
    x = np.concatenate([standardised(x1, valid), standardised(x2, valid)]).transpose(1, 2, 0)
    y = pseudo_labels(teacher, valid)
    w_change = np.float32((y == 0).sum() / max(1, (y == 1).sum()))
    rows, cols, _ = x.shape
    rng = np.random.default_rng(seed)
    changed = np.argwhere(y == 1)

    def batch() -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for k in range(BATCH):
            if k % 2 == 0 and len(changed):  # a crop that holds a "change" pixel
                r, c = changed[rng.integers(len(changed))]
                r0 = int(np.clip(r - rng.integers(CROP), 0, rows - CROP))
                c0 = int(np.clip(c - rng.integers(CROP), 0, cols - CROP))
            else:
                r0, c0 = int(rng.integers(rows - CROP + 1)), int(rng.integers(cols - CROP + 1))
            xc, yc = x[r0:r0 + CROP, c0:c0 + CROP], y[r0:r0 + CROP, c0:c0 + CROP]
            turn = int(rng.integers(4))
            xc, yc = np.rot90(xc, turn), np.rot90(yc, turn)
            if rng.random() < 0.5:
                xc, yc = xc[:, ::-1], yc[:, ::-1]
            xs.append(xc)
            ys.append(yc)
        return np.stack(xs).astype(np.float32), np.stack(ys)

    layers = tf.keras.layers
    inp = layers.Input((None, None, x.shape[2]))
    h = inp
    for d in DILATIONS:
        h = layers.Conv2D(CHANNELS, 3, padding="same", dilation_rate=d, activation="relu")(h)
    model = tf.keras.Model(inp, layers.Conv2D(1, 1)(h))
    opt = tf.keras.optimizers.Adam(1e-3)

    @tf.function
    def step(xb: Tensor, yb: Tensor) -> None:
        labelled = tf.cast(yb >= 0, tf.float32)
        target = tf.cast(yb > 0, tf.float32)
        weight = labelled * (1.0 + (w_change - 1.0) * target)
        with tf.GradientTape() as tape:
            logit = model(xb, training=True)[..., 0]
            loss = tf.reduce_sum(weight * tf.nn.sigmoid_cross_entropy_with_logits(
                target, logit)) / tf.reduce_sum(weight)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))

    for _ in range(STEPS):
        step(*batch())
    logit = model(x[None].astype(np.float32), training=False)[0, ..., 0].numpy()
    prob = (1 / (1 + np.exp(-np.clip(logit, -30, 30)))).astype(np.float32)
    return np.where(valid, masked_smooth(prob, valid, POST_SIGMA), np.nan).astype(np.float32)


def main() -> None:
    from eominer.change.maps import change_map

    args = arguments(__doc__, VARIANTS)
    maps: dict[tuple, dict[str, np.ndarray]] = {}

    def probability_of(variant: str, pair: AlignedPair, _cached: np.ndarray | None
                       ) -> np.ndarray:
        # one teacher and one student a city, shared by its variants (its pixels name it)
        key = (pair.x1.shape, float(pair.x1[:, ::37, ::41].sum()))
        if key not in maps:
            maps.clear()
            maps[key] = {"regression": change_map(pair.x1, pair.x2, pair.valid,
                                                  "selftrain_regression", 0).probability}
        city = maps[key]
        if variant != "regression" and "cnn" not in city:
            city["cnn"] = student_probability(pair.x1, pair.x2, pair.valid, city["regression"])
        if variant == "cnn_mean":
            return 0.5 * (city["cnn"] + city["regression"])
        return city[variant]

    score_cities(args.variants, probability_of, Path(args.data), Path(args.cache))


if __name__ == "__main__":
    main()
