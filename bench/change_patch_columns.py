"""Which per-patch statistic of a change map ranks OSCD's "new construction" patches best
with no label (issue 17): the zero-label AP of each candidate column, pooled over the 9
cities and per city.

The map is `selftrain_regression`'s (`change_map`, seed 0) on each city's pair; the
patches are the 16 px windows of imgs_1's 10 m grid, positive above 5 % changed pixels
(the `eval learning` task). Candidates: the mean (`change_prob_mean`), the share above
Otsu (`change_share`), shares above fixed levels, the 90th / 95th percentiles, the maximum
(`change_prob_max`) and the mean of the highest 13 and 26 pixels (5 % / 10 %;
`change_prob_top5` is the first).

    python bench/change_patch_columns.py [--data ../shared/data/oscd]

Labels are used only to score."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from change_thresholds import CITIES

PATCH = 16


def candidates(p: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """(n_patches, PATCH^2) probabilities and binary calls -> one value per patch each."""
    top = np.sort(p, 1)[:, ::-1]
    return {"prob_mean": p.mean(1), "share_otsu": b.mean(1),
            **{f"share_p{int(t * 100)}": (p > t).mean(1) for t in (0.2, 0.3, 0.5, 0.7, 0.9)},
            "p90": np.quantile(p, 0.9, 1), "p95": np.quantile(p, 0.95, 1), "max": top[:, 0],
            "top13_mean": top[:, :13].mean(1), "top26_mean": top[:, :26].mean(1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/oscd")
    args = ap.parse_args()

    from eominer.change.maps import change_map
    from eominer.evaluation.oscd import load_city
    from eominer.evaluation.ranking import average_precision

    cols: dict[str, list[np.ndarray]] = {}
    per_city: dict[str, list[float]] = {}
    truths = []
    for city in CITIES:
        pair, truth = load_city(Path(args.data), city)
        cm = change_map(pair.x1, pair.x2, pair.valid, "selftrain_regression", 0)
        r, c = truth.shape[0] // PATCH, truth.shape[1] // PATCH

        def blocks(a: np.ndarray, r: int = r, c: int = c) -> np.ndarray:
            return a[:r * PATCH, :c * PATCH].reshape(r, PATCH, c, PATCH).transpose(
                0, 2, 1, 3).reshape(r * c, PATCH * PATCH)

        p = blocks(np.where(pair.valid, cm.probability, 0.0).astype(np.float64))
        y = np.where(blocks(truth.astype(bool)).mean(1) > 0.05, 1, -1)
        for k, v in candidates(p, blocks(cm.binary == 1)).items():
            cols.setdefault(k, []).append(v)
            per_city.setdefault(k, []).append(average_precision(y, v))
        truths.append(y)
        print(f"{city}: {int((y == 1).sum())} of {len(y)} patches positive", flush=True)
    y = np.concatenate(truths)
    print(f"\n{'column':12s} pooled AP  per-city mean AP")
    for k, v in cols.items():
        print(f"{k:12s} {average_precision(y, np.concatenate(v)):.3f}      "
              f"{np.mean(per_city[k]):.3f}")


if __name__ == "__main__":
    main()
