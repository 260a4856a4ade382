"""The morphological building index (MBI; Huang & Zhang 2011) as a change signal on the 9
OSCD cities (issues 17 and 19): built-up structures are bright and small against their
surroundings, so the white top-hats of the visible brightness by linear structuring
elements (4 directions, lengths 3-13 px = 30-130 m) should rise where buildings appear.

Per city and date: the brightness max(B02, B03, B04); per length, the mean over directions
of its white top-hat; the MBI is the mean of the differences between successive lengths
(the differential profile), `th` the mean top-hat itself. Two screens, labels scoring only:
- pixels: the pooled best F1 (each city's threshold chosen by its labels, a bound as in
  `bench/change_bounds.py`) of MBI2 - MBI1, th2 - th1 and their absolute values, against
  `selftrain_regression` (the product's default) and CVA, and of the two mixes
  z(regression) + z(|th2 - th1|) and regression x (1 + max(z(th2 - th1), 0));
- patches (the `eval learning` task: 16 px windows of imgs_1's grid inside the pair's valid
  area, positive above 5 % changed pixels): the 5-fold out-of-fold AP of an RBF SVM on the
  mean, std, q10 and q90 per patch of the 10 band differences and the NDBI difference
  (`base`), with the regression map (`reg`), with the four MBI layers (`mbi`).

    python bench/change_mbi.py [--data ../shared/data/oscd] [--cache /tmp/change_mbi]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from change_thresholds import CITIES

LENGTHS = (3, 5, 7, 9, 11, 13)
ANGLES = (0, 45, 90, 135)
PATCH = 16


def line(length: int, angle: float) -> np.ndarray:
    """A one-pixel-wide line of `length` px at `angle` degrees, as a footprint."""
    fp = np.zeros((length, length), bool)
    c = length // 2
    for t in np.linspace(-c, c, 4 * length):
        fp[round(c - t * np.sin(np.deg2rad(angle))), round(c + t * np.cos(np.deg2rad(angle)))] = 1
    return fp


def mbi(bright: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(MBI, mean top-hat) of one brightness image."""
    from scipy import ndimage as ndi

    th = np.array([np.mean([bright - ndi.grey_opening(bright, footprint=line(n, a))
                            for a in ANGLES], axis=0) for n in LENGTHS])
    return np.abs(np.diff(th, axis=0)).mean(axis=0), th.mean(axis=0)


def layers(root: Path, city: str, cache: Path) -> dict[str, np.ndarray]:
    """Both dates' MBI, top-hat and NDBI, the band difference, the product's two maps."""
    f = cache / f"{city}.npz"
    if f.exists():
        return dict(np.load(f))
    from eominer.change.maps import change_map
    from eominer.evaluation.oscd import load_city

    pair, truth = load_city(root, city)
    out = {"truth": truth, "valid": pair.valid, "d": pair.x2 - pair.x1}
    for k, x in (("1", pair.x1), ("2", pair.x2)):
        out["mbi" + k], out["th" + k] = mbi(np.max(x[:3], axis=0))
        out["ndbi" + k] = (x[8] - x[6]) / (x[8] + x[6] + 1e-6)  # B11, B08
    for m in ("selftrain_regression", "cva"):
        out[m] = change_map(pair.x1, pair.x2, pair.valid, m, 0).probability
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(f, **out)
    return out


def pixel_maps(m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    v = m["valid"]

    def z(a: np.ndarray) -> np.ndarray:
        return (a - a[v].mean()) / (a[v].std() + 1e-9)

    dmbi, dth = m["mbi2"] - m["mbi1"], m["th2"] - m["th1"]
    return {"regression": m["selftrain_regression"], "cva": m["cva"], "dmbi": dmbi,
            "|dmbi|": np.abs(dmbi), "dth": dth, "|dth|": np.abs(dth),
            "z(reg)+z(|dth|)": z(m["selftrain_regression"]) + z(np.abs(dth)),
            "reg*(1+z(dth)+)": m["selftrain_regression"] * (1 + np.clip(z(dth), 0, None))}


def patch_stats(m: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per full, valid 16 px window: the three groups of columns and the label."""
    def stats(a: np.ndarray) -> np.ndarray:  # (n, k, 256) -> (n, 4k)
        return np.concatenate([a.mean(-1), a.std(-1), np.quantile(a, .1, -1),
                               np.quantile(a, .9, -1)], axis=1)

    h, w = m["truth"].shape
    r, c = h // PATCH, w // PATCH

    def blocks(a: np.ndarray) -> np.ndarray:  # (k, h, w) -> (r*c, k, 256)
        a = a[:, :r * PATCH, :c * PATCH].reshape(len(a), r, PATCH, c, PATCH)
        return a.transpose(1, 3, 0, 2, 4).reshape(r * c, len(a), PATCH * PATCH)

    keep = blocks(m["valid"][None]).all(axis=(1, 2))
    y = blocks(m["truth"][None] > 0).mean(axis=(1, 2))[keep] > 0.05
    dndbi = (m["ndbi2"] - m["ndbi1"])[None]
    mb = np.stack([m["mbi2"] - m["mbi1"], m["th2"] - m["th1"], m["mbi1"], m["mbi2"]])
    return {"base": stats(blocks(np.concatenate([m["d"], dndbi]))[keep]),
            "reg": stats(blocks(m["selftrain_regression"][None])[keep]),
            "mbi": stats(blocks(mb)[keep])}, y


def ceiling(x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x = StandardScaler().fit_transform(x)
    s = np.zeros(len(y))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y):
        s[te] = SVC(kernel="rbf", class_weight="balanced").fit(x[tr], y[tr]) \
            .decision_function(x[te])
    return float(average_precision_score(y, s))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/oscd")
    ap.add_argument("--cache", default="/tmp/change_mbi")
    args = ap.parse_args()

    from eominer.evaluation.change_metrics import F1Hull, best_f1

    hulls: dict[str, list[F1Hull]] = {}
    cols: dict[str, list[np.ndarray]] = {}
    ys = []
    for city in CITIES:
        m = layers(Path(args.data), city, Path(args.cache))
        for k, p in pixel_maps(m).items():
            hulls.setdefault(k, []).append(F1Hull.of(np.where(m["valid"], p, np.nan),
                                                     m["truth"]))
        print(city, " ".join(f"{k} {best_f1([h[-1]])[0]:.3f}" for k, h in hulls.items()),
              flush=True)
        groups, y = patch_stats(m)
        for k, v in groups.items():
            cols.setdefault(k, []).append(v)
        ys.append(y)
    print("\npooled best F1 (thresholds from labels):",
          ", ".join(f"{k} {best_f1(h)[0]:.3f}" for k, h in hulls.items()))
    y = np.concatenate(ys)
    x = {k: np.concatenate(v) for k, v in cols.items()}
    print(f"\n{len(y)} patches, {int(y.sum())} positive; 5-fold RBF SVM AP:")
    for parts in (["base"], ["base", "reg"], ["mbi"], ["base", "mbi"], ["base", "reg", "mbi"]):
        print(f"  {'+'.join(parts):14s} {ceiling(np.hstack([x[p] for p in parts]), y):.3f}",
              flush=True)


if __name__ == "__main__":
    main()
