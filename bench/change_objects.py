"""Object-level rules on `selftrain_encoder`'s change map (issue 19): label-free filters
of the connected components of the Otsu map, scored on the 9 OSCD cities against the map
as it is. OSCD's changes are objects (buildings, roads); a false alarm might be a weak
or small component.

Per city, the probability is `change_map(..., "selftrain_encoder", 0)`, cached by
`bench/change_thresholds.py` (same --cache). Components are 8-connected. Variants:
- `otsu`: the product's map;
- `hyst2`: components whose maximum passes a second Otsu level, computed on the
  pixels above the first (hysteresis, the strong core kept with its component);
- `mmu4`, `mmu9`: components of at least 4 or 9 pixels (0.04 / 0.09 ha);
- `compmean`: each pixel given its component's mean probability, Otsu on that;
- `grow`: components of p above a low level (Otsu of the pixels below the first
  level) that hold a pixel above the first level (grown from the map).

    python bench/change_objects.py [--data ../shared/data/oscd] [--cache DIR]

Labels are used only to score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from change_thresholds import CITIES, add, arguments, probability, summary, tallies


def per_component(keep: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """The pixels of the components (labels 1..n of `lab`) whose `keep` is set."""
    return np.concatenate([[False], keep])[lab]


def main() -> None:
    args = arguments(__doc__)

    from scipy import ndimage as ndi

    from eominer.change.threshold import otsu_threshold

    rules = ("otsu", "hyst2", "mmu4", "mmu9", "compmean", "grow")
    pooled, f1 = tallies(rules)
    eight = np.ones((3, 3), bool)
    for city in CITIES:
        prob, valid, truth = probability(Path(args.data), city, Path(args.cache))
        t = otsu_threshold(prob, valid, 0)
        base = valid & (prob > t)
        lab, n = ndi.label(base, structure=eight)
        idx = np.arange(1, n + 1)

        core = ndi.maximum(prob, lab, idx) > otsu_threshold(prob, base, 0)
        size = ndi.sum(np.ones_like(prob), lab, idx)
        mean = np.concatenate([[0.0], ndi.mean(prob, lab, idx)])[lab].astype(np.float32)
        low = valid & (prob > otsu_threshold(prob, valid & ~base, 0))
        lab2, _ = ndi.label(low, structure=eight)
        seeds = np.unique(lab2[base])
        maps = {"otsu": base, "hyst2": per_component(core, lab), "mmu4": per_component(size >= 4, lab),
                "mmu9": per_component(size >= 9, lab),
                "compmean": base & (mean > otsu_threshold(mean, base, 0)),
                "grow": np.isin(lab2, seeds[seeds > 0])}
        for r in rules:
            add(pooled, f1, r, maps[r], truth & valid)
        print(f"{city:12s} {n} components; " + " ".join(f"{r} {f1[r][-1]:.3f}" for r in rules),
              flush=True)
    summary(pooled, f1)


if __name__ == "__main__":
    main()
