"""Self-training over the archive instead of one pair, scored on the 9 OSCD cities (issue
19). `selftrain_regression` teaches each pair's logistic regression with that pair's own
confident pixels; its false alarms are mostly whole objects of other change (fields,
water) that differ from city to city, while new construction looks alike everywhere. So
the pseudo-labels of every pair (the product's: the regression guide's top 1 % and
bottom 80 %, `pseudo_labels`, each pair standardised on its own pixels) train one model,
applied to every pair.

Variants: `pair` (the product's map), `archive` (one logistic regression on the pooled
pseudo-labels, the same features and final smoothing), `mean` (the mean of the two
probabilities), `loo` (the pooled model of the other 8 pairs, the archive as it would be
before this pair came). Otsu thresholds every map, as the product's.

    python bench/change_archive_selftrain.py [--data ../shared/data/oscd]

Prints per city F1 / best-threshold F1, then per variant the pooled F1, its bound
(`best_f1`) and AUPRC. Labels are used only to score."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from change_thresholds import CITIES, score_maps

if TYPE_CHECKING:
    from collections.abc import Iterator

    from eominer.change.selftrain import SelfTrained

VARIANTS = ("pair", "archive", "mean", "loo")


def prepared(data: Path, city: str) -> dict:
    """A city's pair, stats, guide, pseudo-labels and its own fitted model."""
    from eominer.change import selftrain as st
    from eominer.change.normalise import band_stats
    from eominer.change.regression import regression_distance
    from eominer.change.rowblocks import map_row_blocks
    from eominer.evaluation.oscd import load_city

    pair, truth = load_city(data, city)
    x1, x2, valid = pair.x1, pair.x2, pair.valid
    stats = (band_stats(x1, valid, 0), band_stats(x2, valid, 0))
    guide = regression_distance(x1, x2, valid, 0, stats)
    guide = np.where(valid, guide, np.float32(0)).astype(np.float32)
    seeds = map_row_blocks(lambda a0, a1: st._seed_block(
        x1[:, a0:a1], x2[:, a0:a1], valid[a0:a1], stats, guide[a0:a1]),
        valid.shape, st._margin(), 1)
    X, y, _, _ = st.pseudo_labels(x1, x2, valid, stats, seeds, 0, guide)
    return {"x1": x1, "x2": x2, "valid": valid, "truth": truth, "stats": stats,
            "guide": guide, "X": X, "y": y}


def fit(X: np.ndarray, y: np.ndarray) -> SelfTrained:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from eominer.change import selftrain as st

    model = make_pipeline(StandardScaler(), LogisticRegression(C=st.C, max_iter=2000))
    model.fit(X, y)
    return st.SelfTrained(model, 0.0, 0.0, int((y == 1).sum()), int((y == 0).sum()))


def probability(c: dict, fitted: SelfTrained) -> np.ndarray:
    """The product's whole-scene probability of `fitted` on a city (step 5 of selftrain)."""
    from eominer.change import selftrain as st

    w, bias = fitted.weights()
    return st._probability_block(c["x1"], c["x2"], c["valid"], c["stats"], w, bias,
                                 c["guide"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/oscd")
    args = ap.parse_args()

    t0 = time.perf_counter()
    cities = {c: prepared(Path(args.data), c) for c in CITIES}
    print(f"prepared in {time.perf_counter() - t0:.0f} s; pseudo-labels per city: "
          + " ".join(f"{k} {int((c['y'] == 1).sum())}/{int((c['y'] == 0).sum())}"
                     for k, c in cities.items()), flush=True)
    every = fit(np.concatenate([c["X"] for c in cities.values()]),
                np.concatenate([c["y"] for c in cities.values()]))

    def maps() -> Iterator[tuple[str, np.ndarray, np.ndarray,
                                 dict[str, tuple[np.ndarray, None]]]]:
        for name, c in cities.items():
            others = [o for k, o in cities.items() if k != name]
            p = {"pair": probability(c, fit(c["X"], c["y"])),
                 "archive": probability(c, every),
                 "loo": probability(c, fit(np.concatenate([o["X"] for o in others]),
                                           np.concatenate([o["y"] for o in others])))}
            p["mean"] = (p["pair"] + p["archive"]) / 2
            yield name, c["valid"], c["truth"], {v: (p[v], None) for v in VARIANTS}

    score_maps(list(VARIANTS), maps())
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
