"""How far thresholds and method choice could take the unsupervised change maps on the 9
OSCD cities (issue 19): bounds, with the labels choosing, against issue 19's 0.40.

Per city the maps of `bench/change_fusion.py` (cva, encoder, selftrain and
selftrain_encoder, seed 0, cached under --cache). Every pixel is scored as `eval change`
scores it (nodata: probability 0, no change). Pooled F1, where the labels choose:
- `otsu`: nothing; each map as the product thresholds it;
- `threshold`: each city's threshold (`evaluation.change_metrics.best_f1`);
- `method`: each city's method, at its Otsu threshold;
- `method + threshold`: both.

    python bench/change_bounds.py [--data ../shared/data/oscd] [--cache DIR]

A bound below 0.40 means no label-free rule over these maps reaches the target: the maps'
ranking has to improve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from change_fusion import OTHERS, maps
from change_thresholds import CITIES, arguments

METHODS = ("selftrain_encoder", *OTHERS)


def main() -> None:
    args = arguments(__doc__)

    from eominer.evaluation.change_metrics import F1Hull, best_f1, confusion

    hulls: dict[str, list[F1Hull]] = {m: [] for m in METHODS}
    otsu: dict[str, list[F1Hull]] = {m: [] for m in METHODS}  # one point: the Otsu map
    for city in CITIES:
        p, b, valid, truth = maps(Path(args.data), city, Path(args.cache))
        for m in METHODS:
            hulls[m].append(F1Hull.of(np.where(valid, p[m], np.nan), truth))
            tp, fp, fn, _ = confusion(valid & b[m], truth)
            otsu[m].append(F1Hull(np.array([tp + fp + tp + fn]), np.array([2 * tp]),
                                  np.array([np.nan])))
        print(city, " ".join(f"{m} {best_f1([hulls[m][-1]])[0]:.3f}" for m in METHODS),
              flush=True)

    def union(parts: list[list[F1Hull]]) -> list[F1Hull]:
        """Per city, every option of every method: best_f1 takes the best of them."""
        return [F1Hull(*(np.concatenate([getattr(h[i], k) for h in parts])
                         for k in ("d", "n", "level"))) for i in range(len(CITIES))]

    print("\npooled F1          otsu   threshold")
    for m in METHODS:
        print(f"{m:18s} {best_f1(otsu[m])[0]:.3f}  {best_f1(hulls[m])[0]:.3f}")
    print(f"method             {best_f1(union(list(otsu.values())))[0]:.3f}")
    print(f"method + threshold        {best_f1(union(list(hulls.values())))[0]:.3f}")


if __name__ == "__main__":
    main()
