"""The direction of a change as a label-free prior for "new construction" (issue 19):
`selftrain_encoder`'s map kept only where the scene lost vegetation or gained built-up
reflectance between the dates, scored on the 9 OSCD cities against the map as it is.

Per city, from the pair's reflectance (`load_city`): dNDVI = NDVI2 - NDVI1 and dNDBI =
NDBI2 - NDBI1 (NDBI = (B11 - B08) / (B11 + B08)), each a 3 x 3 mean as the maps are. The
probability is `change_map(..., "selftrain_encoder", 0)`, cached by
`bench/change_thresholds.py` (same --cache). Variants, all thresholds label-free:
- `otsu`: the product's map (Otsu on the probability);
- `and_ndvi`: that map where dNDVI < 0 (vegetation lost);
- `and_ndbi`: where dNDBI > 0 (built-up index up);
- `and_either`: where either holds;
- `soft_ndvi`: Otsu on p x sigmoid(-dNDVI / s), s the robust scale of dNDVI on the city;
It also prints, per city, the share of labelled change and of the map's false alarms
that lost vegetation: the prior helps only where those differ.

    python bench/change_direction.py [--data ../shared/data/oscd] [--cache DIR]

Labels are used only to score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from change_thresholds import CITIES, add, arguments, probability, summary, tallies


def mean3(a: np.ndarray) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    return uniform_filter(a.astype(np.float32), 3, mode="nearest")


def index(x: np.ndarray, a: int, b: int) -> np.ndarray:
    return (x[a] - x[b]) / np.maximum(x[a] + x[b], 1e-6)


def main() -> None:
    args = arguments(__doc__)

    from eominer.change.align import CHANGE_BANDS
    from eominer.change.threshold import otsu_threshold
    from eominer.evaluation.oscd import load_city

    b04, b08, b11 = (CHANGE_BANDS.index(b) for b in ("B04", "B08", "B11"))
    rules = ("otsu", "and_ndvi", "and_ndbi", "and_either", "soft_ndvi")
    pooled, f1 = tallies(rules)
    for city in CITIES:
        prob, valid, truth = probability(Path(args.data), city, Path(args.cache))
        pair, _ = load_city(Path(args.data), city)
        dndvi = mean3(index(pair.x2, b08, b04) - index(pair.x1, b08, b04))
        dndbi = mean3(index(pair.x2, b11, b08) - index(pair.x1, b11, b08))
        t = otsu_threshold(prob, valid, 0)
        base = valid & (prob > t)
        lost, built = dndvi < 0, dndbi > 0
        d = dndvi[valid]
        s = 1.4826 * np.median(np.abs(d - np.median(d))) or 1.0
        soft = prob * (1 / (1 + np.exp(dndvi / s)))
        maps = {"otsu": base, "and_ndvi": base & lost, "and_ndbi": base & built,
                "and_either": base & (lost | built),
                "soft_ndvi": valid & (soft > otsu_threshold(soft, valid, 0))}
        for r in rules:
            add(pooled, f1, r, maps[r], truth)
        tv, fa = valid & truth, base & ~truth
        print(f"{city:12s} change that lost vegetation {lost[tv].mean():.2f}, false alarms "
              f"{lost[fa].mean():.2f}; NDBI up {built[tv].mean():.2f} / {built[fa].mean():.2f}; "
              + " ".join(f"{r} {f1[r][-1]:.3f}" for r in rules), flush=True)
    summary(pooled, f1)


if __name__ == "__main__":
    main()
