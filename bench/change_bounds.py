"""How far thresholds and method choice could take the unsupervised change maps on the 9
OSCD cities (issue 19): bounds, with the labels choosing, against issue 19's 0.40.

Per city the maps of `bench/change_fusion.py` (cva, encoder, selftrain and
selftrain_encoder, seed 0, cached under --cache) and `selftrain_regression`'s (cached here
the same way). Every pixel is scored as `eval change`
scores it (nodata: probability 0, no change). Pooled F1, where the labels choose:
- `otsu`: nothing; each map as the product thresholds it;
- `threshold`: each city's threshold (`evaluation.change_metrics.best_f1`);
- `method`: each city's method, at its Otsu threshold;
- `method + threshold`: both;
the last two among the four earlier maps, then with `selftrain_regression` too.

    python bench/change_bounds.py [--data ../shared/data/oscd] [--cache DIR]

A bound below 0.40 means no label-free rule over these maps reaches the target: the maps'
ranking has to improve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from change_fusion import OTHERS, maps
from change_thresholds import CITIES, arguments

METHODS = ("selftrain_encoder", *OTHERS, "selftrain_regression")


def regression_map(root: Path, city: str, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """`selftrain_regression`'s probability and binary map of `city`, cached."""
    d = cache / city
    if not (d / "prob_selftrain_regression.npy").exists():
        from eominer.change.maps import change_map
        from eominer.evaluation.oscd import load_city

        pair, _ = load_city(root, city)
        cm = change_map(pair.x1, pair.x2, pair.valid, "selftrain_regression", 0)
        np.save(d / "prob_selftrain_regression.npy", cm.probability)
        np.save(d / "bin_selftrain_regression.npy", cm.binary == 1)
    return (np.load(d / "prob_selftrain_regression.npy"),
            np.load(d / "bin_selftrain_regression.npy"))


def main() -> None:
    args = arguments(__doc__)

    from eominer.evaluation.change_metrics import F1Hull, best_f1, confusion

    hulls: dict[str, list[F1Hull]] = {m: [] for m in METHODS}
    otsu: dict[str, list[F1Hull]] = {m: [] for m in METHODS}  # one point: the Otsu map
    for city in CITIES:
        p, b, valid, truth = maps(Path(args.data), city, Path(args.cache))
        p["selftrain_regression"], b["selftrain_regression"] = regression_map(
            Path(args.data), city, Path(args.cache))
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
    old = [m for m in METHODS if m != "selftrain_regression"]  # the four maps before it
    for name, ms in (("the four earlier maps", old), ("all five", list(METHODS))):
        print(f"method, {name}: {best_f1(union([otsu[m] for m in ms]))[0]:.3f}; "
              f"method + threshold: {best_f1(union([hulls[m] for m in ms]))[0]:.3f}")


if __name__ == "__main__":
    main()
