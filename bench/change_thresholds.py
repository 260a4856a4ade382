"""Label-free thresholds on `selftrain_encoder`'s probability, scored on the 9 OSCD cities
(issue 19): Otsu (the product's rule) against Kittler-Illingworth (`change/threshold.py`,
Gaussian and generalised-Gaussian classes) and a two-component Gaussian mixture, on the
probability and on its logit. The probability maps are
computed once per city (`change_map`, seed 0) and cached as .npy under --cache.

    python bench/change_thresholds.py [--data ../shared/data/oscd] [--cache DIR]

Labels are used only to score."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from eominer.change.align import AlignedPair

CITIES = ("abudhabi", "aguasclaras", "bercy", "bordeaux", "hongkong", "nantes", "paris",
          "rennes", "saclay_e")
CVA_IRMAD = ((.263, .100), (.130, .132), (.085, .041), (.084, .016), (.362, .289),
             (.210, .092), (.058, .061), (.340, .371), (.076, .078))  # docs/change.md


def probability(root: Path, city: str, cache: Path) -> tuple[np.ndarray, ...]:
    d = cache / city
    if (d / "prob.npy").exists():
        return tuple(np.load(d / f"{n}.npy") for n in ("prob", "valid", "truth"))
    from eominer.change.maps import change_map
    from eominer.evaluation.oscd import load_city

    pair, truth = load_city(root, city)
    prob = change_map(pair.x1, pair.x2, pair.valid, "selftrain_encoder", 0).probability
    d.mkdir(parents=True, exist_ok=True)
    for n, a in (("prob", prob), ("valid", pair.valid), ("truth", truth)):
        np.save(d / f"{n}.npy", a)
    return prob, pair.valid, truth


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def gmm_threshold(v: np.ndarray, seed: int = 0) -> float:
    """Where the high component's posterior passes 0.5, on a sample of the values."""
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    s = v if v.size <= 200_000 else rng.choice(v, 200_000, replace=False)
    g = GaussianMixture(2, random_state=seed).fit(s[:, None])
    hi = int(np.argmax(g.means_.ravel()))
    grid = np.linspace(s.min(), s.max(), 4001)
    post = g.predict_proba(grid[:, None])[:, hi]
    above = np.flatnonzero((post >= 0.5) & (grid >= g.means_.ravel().min()))
    return float(grid[above[0]]) if above.size else float(s.max())


def arguments(doc: str, variants: tuple[str, ...] = ()) -> argparse.Namespace:
    """--data (the OSCD folder) and --cache (the probability maps), for these scripts; with
    `variants`, also --variants (comma-separated, default all, checked) as a list."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/oscd")
    ap.add_argument("--cache", default="/tmp/chg_thresholds")
    if variants:
        ap.add_argument("--variants", default=",".join(variants))
    args = ap.parse_args()
    if variants:
        args.variants = args.variants.split(",")
        if set(args.variants) - set(variants):
            ap.error(f"unknown variants {sorted(set(args.variants) - set(variants))}; "
                     f"known: {', '.join(variants)}")
    return args


def tallies(rules: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, list[float]]]:
    """Per rule: the pooled confusion counts and the per-city F1, empty."""
    return {r: np.zeros(4, np.int64) for r in rules}, {r: [] for r in rules}


def add(pooled: dict[str, np.ndarray], f1: dict[str, list[float]], rule: str,
        changed: np.ndarray, truth: np.ndarray) -> None:
    """Tally one city's binary map under `rule`: its confusion counts and its F1."""
    from eominer.evaluation.change_metrics import confusion, from_confusion

    c = confusion(changed, truth)
    pooled[rule] += c
    f1[rule].append(from_confusion(*c, float("nan")).f1)


def main() -> None:
    args = arguments(__doc__)

    from eominer.change.threshold import kittler_illingworth, otsu_threshold

    rules = ("otsu", "ki_p", "ki_logit", "kigg_logit", "gmm_p", "gmm_logit")
    pooled, f1 = tallies(rules)
    for city in CITIES:
        prob, valid, truth = probability(Path(args.data), city, Path(args.cache))
        v = prob[valid].astype(np.float64)
        lv = logit(v)

        def ki(x: np.ndarray, model: str) -> float:
            return kittler_illingworth(x, None, model=model).threshold

        def back(t: float) -> float:
            return float(1 / (1 + np.exp(-t)))

        th = {"otsu": otsu_threshold(prob, valid, 0), "ki_p": ki(v, "gaussian"),
              "ki_logit": back(ki(lv, "gaussian")), "kigg_logit": back(ki(lv, "gg")),
              "gmm_p": gmm_threshold(v), "gmm_logit": back(gmm_threshold(lv))}
        for r in rules:
            add(pooled, f1, r, valid & (prob > th[r]), truth)
        print(city, " ".join(f"{r} {th[r]:.3f}:{f1[r][-1]:.3f}" for r in rules), flush=True)
    summary(pooled, f1)


def score_cities(variants: list[str],
                 probability_of: Callable[[str, AlignedPair, np.ndarray | None], np.ndarray],
                 data: Path, cache: Path | None) -> None:
    """Per city and variant, `probability_of(variant, pair, cached)` (`cached`:
    `selftrain_encoder`'s map; None without a `cache`) thresholded by Otsu; prints each
    city's F1 / best-threshold F1 and seconds, then per variant the pooled F1, its bound
    (`best_f1`) and AUPRC."""
    import time

    from eominer.evaluation.oscd import load_city

    def maps() -> Iterator[tuple[str, np.ndarray, np.ndarray,
                                 dict[str, tuple[np.ndarray, float]]]]:
        for city in CITIES:
            cached = probability(data, city, cache)[0] if cache is not None else None
            pair, truth = load_city(data, city)
            out = {}
            for v in variants:
                t0 = time.perf_counter()
                out[v] = (probability_of(v, pair, cached), time.perf_counter() - t0)
            yield city, pair.valid, truth, out

    score_maps(variants, maps())


def score_maps(variants: list[str],
               cities: Iterable[tuple[str, np.ndarray, np.ndarray,
                                      Mapping[str, tuple[np.ndarray, float | None]]]]
               ) -> None:
    """`cities`: per city, (name, valid, truth, {variant: (probability, seconds or
    None)}). Each map thresholded by Otsu; prints each city's F1 / best-threshold F1 (and
    seconds), then per variant the pooled F1, its bound (`best_f1`) and AUPRC."""
    from eominer.change.threshold import otsu_threshold
    from eominer.evaluation.change_metrics import F1Hull, auprc, best_f1, confusion

    pooled = {v: np.zeros(4, np.int64) for v in variants}
    hulls: dict[str, list] = {v: [] for v in variants}
    probs: dict[str, list[np.ndarray]] = {v: [] for v in variants}
    truths = []
    for city, valid, truth, maps in cities:
        truths.append(truth.ravel())
        line = []
        for v in variants:
            p, seconds = maps[v]
            p0 = np.where(valid, np.nan_to_num(p, nan=0.0), 0.0)
            c = confusion(valid & (p0 > otsu_threshold(p, valid, 0)), truth)
            pooled[v] += c
            hulls[v].append(F1Hull.of(p0, truth))
            probs[v].append(p0.ravel())
            line.append(f"{v} {2 * c[0] / (2 * c[0] + c[1] + c[2]):.3f}/"
                        f"{best_f1([hulls[v][-1]])[0]:.3f}"
                        + (f" ({seconds:.0f} s)" if seconds is not None else ""))
        print(city, "  ".join(line), flush=True)
    t = np.concatenate(truths)
    print("\nvariant      pooled F1  bound  AUPRC")
    for v in variants:
        tp, fp, fn, _ = (int(x) for x in pooled[v])
        print(f"{v:12s} {2 * tp / (2 * tp + fp + fn):.3f}      {best_f1(hulls[v])[0]:.3f}  "
              f"{auprc(np.concatenate(probs[v]), t):.3f}")


def summary(pooled: dict[str, np.ndarray], f1: dict[str, list[float]]) -> None:
    """Pooled F1, precision, recall, wins over CVA and IR-MAD, and F1 per city."""
    from eominer.evaluation.change_metrics import from_confusion

    print("\nvariant         pooled F1  precision  recall  wins  per city")
    for v in pooled:
        m = from_confusion(*(int(x) for x in pooled[v]), float("nan"))
        wins = sum(f > max(b) for f, b in zip(f1[v], CVA_IRMAD, strict=True))
        print(f"{v:15s} {m.f1:.3f}      {m.precision:.3f}      {m.recall:.3f}   {wins}/9   "
              + " ".join(f"{x:.3f}" for x in f1[v]))


if __name__ == "__main__":
    main()
