"""Which encoder guides `selftrain_encoder`: F1 on the 9 OSCD cities per guide encoder
(input pooling, hidden channels, training crops and epochs), issue 19.

    python bench/change_guide.py [--data /work/shared/data/oscd]
        [--configs 1x32x768x6,2x16x768x6,...]   # pool x hidden x crops x epochs

Each config trains a fresh encoder per city (seed 0, 2 threads) and runs selftrain guided
by its distance; Otsu threshold, labels only to score. "wins": cities above the better of
CVA and IR-MAD (their F1 from docs/change.md). The product's choice is
`eominer.change.encoder.EncoderConfig`'s defaults."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
from change_variants import BASE, CITIES  # the same cities and baseline F1 (this folder)

from eominer.change.encoder import EncoderConfig, encoder_distance
from eominer.change.selftrain import selftrain_probability
from eominer.change.threshold import binary_map, otsu_threshold
from eominer.evaluation.change_metrics import confusion, from_confusion
from eominer.evaluation.oscd import load_city

BEST_BASELINE = tuple(map(max, BASE["cva"], BASE["irmad"]))


def run(data: str, pool: int, hidden: int, crops: int, epochs: int, threads: int) -> str:
    cfg = replace(EncoderConfig(), pool=pool, hidden=hidden, crops=crops, epochs=epochs,
                  threads=threads)
    pooled_counts = np.zeros(4, dtype=np.int64)
    f1s = []
    t0 = time.perf_counter()
    for city in CITIES:
        pair, truth = load_city(data, city)
        guide = encoder_distance(pair.x1, pair.x2, pair.valid, cfg)
        p, _ = selftrain_probability(pair.x1, pair.x2, pair.valid, 0, guide=guide,
                                     threads=threads)
        b = binary_map(p, pair.valid, otsu_threshold(p, pair.valid, 0))
        c = confusion(b == 1, truth)
        pooled_counts += c
        f1s.append(from_confusion(*c, auprc=0.0).f1)
    overall = from_confusion(*(int(v) for v in pooled_counts), auprc=0.0)
    wins = sum(f > base for f, base in zip(f1s, BEST_BASELINE))
    return (f"pool {pool}, hidden {hidden}, {crops} crops x {epochs} epochs: pooled F1 "
            f"{overall.f1:.3f} (P {overall.precision:.3f}, R {overall.recall:.3f}), wins "
            f"{wins}/9, per city " + " ".join(f"{f:.3f}".lstrip("0") for f in f1s)
            + f" ({time.perf_counter() - t0:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/oscd")
    ap.add_argument("--configs", default="1x32x768x6,1x16x768x6,2x32x768x6,2x16x768x6")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    for spec in args.configs.split(","):
        pool, hidden, crops, epochs = (int(v) for v in spec.split("x"))
        print(run(args.data, pool, hidden, crops, epochs, args.threads), flush=True)


if __name__ == "__main__":
    main()
