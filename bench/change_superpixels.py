"""Superpixel aggregation of `selftrain_encoder`'s probability, scored on the 9 OSCD
cities (issue 19: "spatial context ... or superpixel aggregation"). The pair is cut into
superpixels (scikit-image SLIC on both dates' standardised B02, B03, B04, B08 stacked, so
a segment is uniform in both dates), and each pixel's probability becomes
(1 - W) p + W (the mean p of its superpixel) before Otsu. The probability maps are those
of `change_thresholds.py` (cached per city under --cache).

    python bench/change_superpixels.py [--data ../shared/data/oscd] [--cache DIR]
                                       [--sizes 25,50,100] [--weights 0.5,1]

Labels are used only to score."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from change_thresholds import CITIES, add, probability, summary  # noqa: E402

FOUR = (0, 1, 2, 6)  # B02, B03, B04, B08 in CHANGE_BANDS


def segments(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, size: int) -> np.ndarray:
    """SLIC labels (rows, cols), about `size` px a segment, on the valid pixels."""
    from skimage.segmentation import slic

    def z(x: np.ndarray) -> np.ndarray:
        v = x[:, valid]
        return (x - np.median(v, axis=1)[:, None, None]) / (v.std(axis=1)[:, None, None] + 1e-6)

    img = np.concatenate([z(x1[list(FOUR)]), z(x2[list(FOUR)])]).transpose(1, 2, 0)
    return slic(img.astype(np.float64), n_segments=max(1, int(valid.sum() / size)),
                compactness=0.1, channel_axis=-1, mask=valid, start_label=1)


def segment_mean(p: np.ndarray, seg: np.ndarray, valid: np.ndarray) -> np.ndarray:
    lab = np.where(valid, seg, 0).ravel()
    sums = np.bincount(lab, weights=np.nan_to_num(p).ravel())
    counts = np.maximum(np.bincount(lab), 1)
    return (sums / counts)[lab].reshape(p.shape).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/oscd")
    ap.add_argument("--cache", default="/tmp/chg_thresholds")
    ap.add_argument("--sizes", default="25,50,100")
    ap.add_argument("--weights", default="0.5,1")
    args = ap.parse_args()

    from eominer.change.threshold import otsu_threshold
    from eominer.evaluation.oscd import load_city

    variants = ["plain"] + [f"slic{s}_w{w}" for s in args.sizes.split(",")
                            for w in args.weights.split(",")]
    pooled = {v: np.zeros(4, np.int64) for v in variants}
    f1: dict[str, list[float]] = {v: [] for v in variants}
    for city in CITIES:
        prob, valid, truth = probability(Path(args.data), city, Path(args.cache))
        pair, _ = load_city(Path(args.data), city)
        maps = {"plain": prob}
        for s in args.sizes.split(","):
            seg = segments(pair.x1, pair.x2, valid, int(s))
            mean = segment_mean(prob, seg, valid)
            for w in args.weights.split(","):
                q = (1 - float(w)) * np.nan_to_num(prob) + float(w) * mean
                maps[f"slic{s}_w{w}"] = np.where(valid, q, np.nan).astype(np.float32)
        for v, p in maps.items():
            add(pooled, f1, v, valid & (p > otsu_threshold(p, valid, 0)), truth)
        print(city, " ".join(f"{v}={f1[v][-1]:.3f}" for v in variants), flush=True)
    summary(pooled, f1)


if __name__ == "__main__":
    main()
