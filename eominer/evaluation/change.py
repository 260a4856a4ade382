"""Change maps scored on OSCD-shaped folders (no database involved; the layout is read
by eominer.evaluation.oscd). Every method sees the same aligned pair and mask; 'overall'
pools the pixels of all cities (confusion counts summed; the PR curve over all pixels
together). Each score carries `f1_bound`, the best F1 a threshold could give (chosen with
the labels; overall, one threshold per city): the part of the F1 that no threshold rule
can fix is the map's ranking.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eominer.change.maps import METHODS, change_map, check_method
from eominer.errors import ProductReadError
from eominer.evaluation.change_metrics import (
    ChangeScores,
    F1Hull,
    PRPoints,
    auprc,
    best_f1,
    confusion,
    from_confusion,
    score_maps,
)
from eominer.evaluation.oscd import list_cities, load_city


@dataclass(frozen=True)
class CityResult:
    city: str
    method: str
    scores: ChangeScores
    threshold: float
    seconds: float
    masked_fraction: float


def evaluate(
    root: str | Path, cities: Sequence[str] | None = None,
    methods: Sequence[str] = METHODS, seed: int = 0, threads: int = 1,
    progress: Callable[[CityResult], None] | None = None,
) -> tuple[list[CityResult], dict[str, ChangeScores]]:
    """Per-city results and the pooled 'overall' scores per method."""
    for m in methods:
        check_method(m)
    known = list_cities(root)
    chosen = list(cities) if cities else known
    missing = [c for c in chosen if c not in known]
    if missing:
        raise ProductReadError(
            f"no labels for {', '.join(missing)} under {root}: known cities {', '.join(known)}"
        )
    results: list[CityResult] = []
    pooled = {m: np.zeros(4, dtype=np.int64) for m in methods}
    probs: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    truths: list[np.ndarray] = []
    hulls: dict[str, list[F1Hull]] = {m: [] for m in methods}
    for city in chosen:
        pair, truth = load_city(root, city)
        truths.append(truth.ravel())
        for m in methods:
            t0 = time.perf_counter()
            cmap = change_map(pair.x1, pair.x2, pair.valid, m, seed, threads)
            seconds = time.perf_counter() - t0
            p0 = np.nan_to_num(cmap.probability, nan=0.0)  # nodata scores as no change
            points = PRPoints.of(p0, truth)  # one sort of the map for the AUPRC and the bound
            hulls[m].append(F1Hull.from_points(points))
            s = score_maps(p0, cmap.binary, truth, points)
            pooled[m] += confusion(cmap.binary == 1, truth)
            probs[m].append(p0.ravel())
            r = CityResult(city, m, s, cmap.threshold, seconds, float(1 - pair.valid.mean()))
            results.append(r)
            if progress:
                progress(r)
    all_truth = np.concatenate(truths)
    overall = {  # f1_bound: each city's threshold chosen, with labels, for the pooled F1
        m: from_confusion(*(int(v) for v in pooled[m]), auprc(np.concatenate(probs[m]), all_truth),
                          best_f1(hulls[m])[0])
        for m in methods
    }
    return results, overall


def chosen_elsewhere(results: Sequence[CityResult]) -> tuple[dict[str, str], ChangeScores]:
    """Each city's map from the method with the best pooled F1 over the *other* cities,
    and the pooled scores of those maps (AUPRC left NaN: it needs the maps themselves).
    No method is chosen on the city it is scored on, so the F1 estimates what the choice
    gives a city nobody looked at. Needs two cities or more."""
    cities = list(dict.fromkeys(r.city for r in results))
    if len(cities) < 2:
        raise ValueError("choosing on the other cities needs two cities or more")
    tallies = {(r.city, r.method): np.array([r.scores.tp, r.scores.fp, r.scores.fn,
                                             r.scores.tn], dtype=np.int64) for r in results}
    methods = list(dict.fromkeys(r.method for r in results))
    chosen: dict[str, str] = {}
    total = np.zeros(4, dtype=np.int64)
    for city in cities:
        def f1_elsewhere(m: str, city: str = city) -> float:
            tp, fp, fn, _ = sum(tallies[c, m] for c in cities if c != city)
            return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        chosen[city] = max(methods, key=f1_elsewhere)  # ties: the first method asked
        total += tallies[city, chosen[city]]
    return chosen, from_confusion(*(int(v) for v in total), float("nan"))
