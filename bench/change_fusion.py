"""Label-free fusion of the unsupervised change maps (issue 19), scored on the 9 OSCD
cities against `selftrain_encoder` alone. Every method's false alarms sit at a
precision of 0.1-0.2; where two methods built on different evidence (band differences,
a learned encoder, a self-trained classifier) agree, fewer of them might survive.

Per city the maps are `change_map(..., method, 0)` for cva, encoder, selftrain and
selftrain_encoder, cached under --cache (`selftrain_encoder`'s as
`bench/change_thresholds.py` caches it). Variants:
- `otsu`: `selftrain_encoder`'s map as the product makes it;
- `rank-all`, `rank-st`: each method's probability replaced by its rank among the
  city's valid pixels (0-1), averaged over the four methods or over the two self-trained
  ones, then Otsu on the mean;
- `geo-st`: the geometric mean of the two self-trained probabilities, then Otsu;
- `and-st`: a pixel is change where both self-trained binary maps say so;
- `vote-3`: where at least 3 of the 4 binary maps say so.

    python bench/change_fusion.py [--data ../shared/data/oscd] [--cache DIR]

Labels are used only to score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from change_thresholds import CITIES, add, arguments, probability, summary, tallies

OTHERS = ("cva", "encoder", "selftrain")


def maps(root: Path, city: str, cache: Path) -> tuple[dict[str, np.ndarray], ...]:
    """Per method, the probability and the binary map; and the valid pixels and truth."""
    from eominer.change.threshold import otsu_threshold

    prob, valid, truth = probability(root, city, cache)
    p = {"selftrain_encoder": prob}
    b = {"selftrain_encoder": valid & (prob > otsu_threshold(prob, valid, 0))}
    d = cache / city
    if not all((d / f"prob_{m}.npy").exists() for m in OTHERS):
        from eominer.change.maps import change_map
        from eominer.evaluation.oscd import load_city

        pair, _ = load_city(root, city)
        for m in OTHERS:
            cm = change_map(pair.x1, pair.x2, pair.valid, m, 0)
            np.save(d / f"prob_{m}.npy", cm.probability)
            np.save(d / f"bin_{m}.npy", cm.binary == 1)
    for m in OTHERS:
        p[m], b[m] = np.load(d / f"prob_{m}.npy"), np.load(d / f"bin_{m}.npy")
    return p, b, valid, truth


def ranks(p: np.ndarray, valid: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    out = np.zeros(p.shape, np.float64)
    out[valid] = rankdata(np.nan_to_num(p[valid], nan=0.0)) / valid.sum()
    return out


def main() -> None:
    args = arguments(__doc__)

    from eominer.change.threshold import otsu_threshold

    rules = ("otsu", "rank-all", "rank-st", "geo-st", "and-st", "vote-3")
    pooled, f1 = tallies(rules)
    st = ("selftrain", "selftrain_encoder")
    for city in CITIES:
        p, b, valid, truth = maps(Path(args.data), city, Path(args.cache))
        r = {m: ranks(p[m], valid) for m in p}
        fused = {"rank-all": np.mean([r[m] for m in p], axis=0),
                 "rank-st": np.mean([r[m] for m in st], axis=0),
                 "geo-st": np.sqrt(np.nan_to_num(p[st[0]]) * np.nan_to_num(p[st[1]]))}
        binary = {"otsu": b["selftrain_encoder"], "and-st": b[st[0]] & b[st[1]],
                  "vote-3": np.sum([b[m] for m in b], axis=0) >= 3}
        for name, f in fused.items():
            binary[name] = valid & (f > otsu_threshold(f, valid, 0))
        for rule in rules:
            add(pooled, f1, rule, valid & binary[rule], truth)
        print(city, " ".join(f"{rule} {f1[rule][-1]:.3f}" for rule in rules), flush=True)
    summary(pooled, f1)


if __name__ == "__main__":
    main()
