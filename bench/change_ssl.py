"""Deep change vector analysis (DCVA) on the archive's self-supervised encoder, scored on
the 9 OSCD cities (issue 19): one VICReg encoder (`features/ssl.py`, the `ssl` feature
set's network) is trained on 32 px windows of every date of every city (no label), both
dates of each city go through it, and the change distance is the difference of its
feature maps, layer by layer (each channel over its robust scale on the city's valid
pixels, each layer's distance upsampled to 10 m and brought to a robust z, then averaged
over the layers), then a 3 x 3 mean as the `encoder` method does. Scored alone (the
common distance -> probability rule, Otsu) and as the guide of `selftrain` in place of
the per-pair encoder (`selftrain_encoder`'s seed map and features).

    python bench/change_ssl.py [--data ../shared/data/oscd] [--bands 4|10] [--epochs 5]
                               [--layers 0,1,2,3]

Every threshold is Otsu on the final probability; labels are used only to score."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from keras import Model

CITIES = ("abudhabi", "aguasclaras", "bercy", "bordeaux", "hongkong", "nantes", "paris",
          "rennes", "saclay_e")
# docs/change.md, F1 per city in CITIES order (make eval, 2026-12-02)
COMMITTED = {
    "cva": (.263, .130, .085, .084, .362, .210, .058, .340, .076),
    "irmad": (.100, .132, .041, .016, .289, .092, .061, .371, .078),
    "selftrain_encoder": (.388, .156, .189, .235, .464, .326, .103, .493, .102),
}
FOUR = ("B02", "B03", "B04", "B08")


def windows(x: np.ndarray, valid: np.ndarray, stride: int = 16) -> np.ndarray:
    """(n, 32, 32, bands) windows of one date (bands, rows, cols) with no invalid pixel."""
    _, h, w = x.shape
    out = [x[:, r:r + 32, c:c + 32].transpose(1, 2, 0)
           for r in range(0, h - 31, stride) for c in range(0, w - 31, stride)
           if valid[r:r + 32, c:c + 32].all()]
    return np.stack(out).astype(np.float32)


def fully_convolutional(enc: Model, n_bands: int) -> Model:
    """The trained encoder's layers on any image size; outputs: each block's ReLU."""
    import keras

    from eominer.features.ssl import ssl_encoder

    same = ssl_encoder(n_bands, enc.output.shape[-1])
    inp = keras.Input((None, None, n_bands))
    x, outs = inp, []
    for layer in same.layers[1:]:
        if isinstance(layer, keras.layers.GlobalAveragePooling2D):
            break
        x = layer(x)
        if isinstance(layer, keras.layers.ReLU):
            outs.append(x)
    model = keras.Model(inp, outs)
    model.set_weights(enc.get_weights())
    return model


def dcva(model: Model, x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, mean: np.ndarray,
         std: np.ndarray, layers: list[int]) -> np.ndarray:
    """(rows, cols) distance: per layer, channel differences over their robust scale,
    upsampled to 10 m and robust-z'd on the valid pixels; mean over `layers`."""
    from scipy.ndimage import uniform_filter, zoom

    from eominer.change.normalise import robust_location_scale

    h, w = valid.shape
    H, W = -(-h // 4) * 4, -(-w // 4) * 4  # strides 2 x 2: a multiple of 4 maps back

    def feats(x: np.ndarray) -> list[np.ndarray]:
        z = ((x.transpose(1, 2, 0) - mean) / std).astype(np.float32)
        z = np.pad(z, ((0, H - h), (0, W - w), (0, 0)), mode="reflect")
        return [np.asarray(f)[0] for f in model(z[None], training=False)]

    total = np.zeros((h, w), np.float32)
    for k in layers:
        fa, fb = feats(x1)[k], feats(x2)[k]
        f = H // fa.shape[0]
        d = fa - fb
        v = valid[::f, ::f][: d.shape[0], : d.shape[1]] if f > 1 else valid
        v = np.pad(v, ((0, d.shape[0] - v.shape[0]), (0, d.shape[1] - v.shape[1])))
        s = np.array([robust_location_scale(d[..., c][v].astype(np.float64))[1]
                      for c in range(d.shape[-1])], np.float32)
        dist = np.sqrt(np.mean((d / np.maximum(s, 1e-6)) ** 2, axis=-1))
        dist = zoom(dist, f, order=1)[:h, :w] if f > 1 else dist[:h, :w]
        m, sc = robust_location_scale(dist[valid].astype(np.float64))
        total += (dist - np.float32(m)) / np.float32(sc)
    total /= len(layers)
    total[~valid] = 0.0
    total = uniform_filter(total, size=3, mode="nearest")
    total[~valid] = 0.0
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/oscd")
    ap.add_argument("--bands", type=int, choices=(4, 10), default=4)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--patches", type=int, default=20000)
    ap.add_argument("--layers", default="0,1,2,3")
    args = ap.parse_args()

    from eominer.change.align import CHANGE_BANDS
    from eominer.change.normalise import to_probability
    from eominer.change.selftrain import selftrain_probability
    from eominer.change.threshold import binary_map, otsu_threshold
    from eominer.evaluation.change_metrics import confusion, from_confusion
    from eominer.evaluation.oscd import load_city
    from eominer.features.encoder import set_single_thread
    from eominer.features.ssl import fit_ssl

    set_single_thread()
    names = FOUR if args.bands == 4 else CHANGE_BANDS
    idx = [CHANGE_BANDS.index(b) for b in names]
    layers = [int(k) for k in args.layers.split(",")]
    data = {c: load_city(Path(args.data), c) for c in CITIES}
    rng = np.random.default_rng(0)
    x = np.concatenate([windows(getattr(p, d)[idx], p.valid)
                        for p, _ in data.values() for d in ("x1", "x2")])
    x = x[np.sort(rng.choice(len(x), min(args.patches, len(x)), replace=False))]
    t0 = time.perf_counter()
    enc, params, _ = fit_ssl(x, epochs=args.epochs, seed=0, bands=names)
    print(f"VICReg on {len(x)} windows of the 18 dates, {len(names)} bands, {args.epochs} "
          f"epochs: {time.perf_counter() - t0:.0f} s", flush=True)
    model = fully_convolutional(enc, len(names))
    mean, std = np.asarray(params["mean"], np.float32), np.asarray(params["std"], np.float32)

    methods = ("dcva_ssl", "selftrain_ssl")
    pooled = {m: np.zeros(4, np.int64) for m in methods}
    f1: dict[str, dict[str, float]] = {m: {} for m in methods}
    for city, (pair, truth) in data.items():
        x1, x2, valid = pair.x1, pair.x2, pair.valid
        dist = dcva(model, x1[idx], x2[idx], valid, mean, std, layers)
        probs = {"dcva_ssl": to_probability(dist, valid, 0),
                 "selftrain_ssl": selftrain_probability(x1, x2, valid, 0, guide=dist)[0]}
        for m, p in probs.items():
            b = binary_map(p, valid, otsu_threshold(p, valid, 0))
            c = confusion(b == 1, truth)
            pooled[m] += c
            f1[m][city] = from_confusion(*c, float("nan")).f1
        print(city, " ".join(f"{m}={f1[m][city]:.3f}" for m in methods), flush=True)
    print("\nmethod             pooled  wins  " + " ".join(f"{c[:6]:>6}" for c in CITIES))
    for m in methods:
        wins = sum(f1[m][c] > max(COMMITTED["cva"][i], COMMITTED["irmad"][i])
                   for i, c in enumerate(CITIES))
        pf = from_confusion(*(int(v) for v in pooled[m]), float("nan")).f1
        print(f"{m:18s} {pf:.3f}  {wins}/9   " + " ".join(f"{f1[m][c]:6.3f}" for c in CITIES))


if __name__ == "__main__":
    main()
