"""Each pixel against its own surroundings (sibling regression, Kondmann et al. 2021,
"SiROC"), alone and as `selftrain`'s guide, scored on the 9 OSCD cities (issue 19).

A pixel's date-2 value is predicted from its date-1 value times the ratio of the two
dates' sums over a square ring of neighbours around it (inner radius r_k, outer r_k+1):
a local gain, so a change in light, season or atmosphere that its surroundings share
cancels, and a pixel that departs from them does not. Per ring, the residual of each band
over its median absolute value, averaged over bands; rings 0-200 px in 27 equal steps
(the paper's OSCD setting), box sums from separable box means (no cost growth with radius).
Variants: `ring` (mean over rings, averaged over sigma 1, 2, 4, the common probability
rule, Otsu); `ringvote` (each ring's map cut by Otsu, closed then opened by a 5 x 5
square, the votes averaged, Otsu on the vote); `st_ring` (`ring`'s distance as the guide
of the product's `selftrain_probability`, as `selftrain_regression` uses the global
regression's); `st_reg` (the product's `selftrain_regression`, for comparison);
`st_both` (guide = the mean of the two guides, each over its median).

    python bench/change_rings.py [--data ../shared/data/oscd]
        [--variants ring,ringvote,st_ring,st_reg,st_both] [--rings 27] [--reach 200]

Prints per city F1 / best-threshold F1, then pooled F1, its bound and AUPRC. Labels are
used only to score."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from eominer.change.align import AlignedPair

VARIANTS = ("ring", "ringvote", "st_ring", "st_reg", "st_both")


def box_sums(a: np.ndarray, r: int) -> np.ndarray:
    """Sum of `a` over the (2r+1)^2 square around each pixel, clipped at the edges (the
    zero padding of a box mean adds nothing to a sum)."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(a, 2 * r + 1, mode="constant") * (2 * r + 1) ** 2


def ring_maps(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, rings: int,
              reach: int) -> list[np.ndarray]:
    """Per ring, the band-mean of |x2 - x1 * sum_ring(x2) / sum_ring(x1)| / its median."""
    edges = np.linspace(0, reach, rings + 1).round().astype(int)
    out = [np.zeros(valid.shape) for _ in range(rings)]
    for b in range(x1.shape[0]):
        p = np.where(valid, x1[b], 0).astype(np.float64)
        q = np.where(valid, x2[b], 0).astype(np.float64)
        sp = [box_sums(p, r) for r in edges]
        sq = [box_sums(q, r) for r in edges]
        for k in range(rings):
            den = sp[k + 1] - sp[k]
            gain = np.where(den > 1e-9, (sq[k + 1] - sq[k]) / np.maximum(den, 1e-9), 1.0)
            res = np.abs(q - p * gain)
            out[k] += res / (np.median(res[valid]) + 1e-9)
    return [np.where(valid, m / x1.shape[0], 0).astype(np.float32) for m in out]


def probability_of(variant: str, pair: AlignedPair, rings: int, reach: int) -> np.ndarray:
    from scipy import ndimage

    from eominer.change.normalise import to_probability
    from eominer.change.regression import regression_distance
    from eominer.change.selftrain import SCALES, masked_smooth, selftrain_probability
    from eominer.change.threshold import otsu_threshold

    x1, x2, valid = pair.x1, pair.x2, pair.valid
    if variant == "st_reg":
        return selftrain_probability(x1, x2, valid, 0,
                                     guide=regression_distance(x1, x2, valid, 0))[0]
    maps = ring_maps(x1, x2, valid, rings, reach)
    if variant == "ringvote":
        square = np.ones((5, 5), bool)
        votes = np.zeros(valid.shape, np.float32)
        for m in maps:
            b = valid & (m > otsu_threshold(m, valid, 0))
            votes += ndimage.binary_opening(ndimage.binary_closing(b, square), square)
        return np.where(valid, votes / len(maps), 0)
    d = np.mean(maps, axis=0).astype(np.float32)
    if variant == "ring":
        return to_probability(sum(masked_smooth(d, valid, s) for s in SCALES) / len(SCALES),
                              valid)
    if variant == "st_both":
        g = regression_distance(x1, x2, valid, 0)
        d = (d / np.median(d[valid]) + g / np.median(g[valid])) / 2
    return selftrain_probability(x1, x2, valid, 0, guide=np.where(valid, d, 0))[0]


def main() -> None:
    import sys
    from pathlib import Path

    import change_thresholds
    from change_thresholds import arguments, score_cities

    sys.argv, extra = [sys.argv[0]], sys.argv[1:]
    rings, reach = 27, 200
    rest = []
    while extra:
        a = extra.pop(0)
        if a == "--rings":
            rings = int(extra.pop(0))
        elif a == "--reach":
            reach = int(extra.pop(0))
        else:
            rest.append(a)
    sys.argv += rest
    args = arguments(__doc__, VARIANTS)
    # no variant here reads the cached selftrain_encoder map: skip computing it
    change_thresholds.probability = lambda *a: (None,)
    score_cities(args.variants, lambda v, pair, cached: probability_of(v, pair, rings, reach),
                 Path(args.data), Path(args.cache))


if __name__ == "__main__":
    main()
