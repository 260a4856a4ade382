"""Benchmark: Sentinel-1 change map of a full-tile pair (10980 x 10980 px, VV + VH).

    python bench/bench_change_s1.py [--size 10980] [--methods rom,logratio]

The pair is real backscatter made tile-sized: BigEarthNet S1 patch 33UUP_61_41 (date 1)
and the same patch with a planted 40 x 40 px block of patch 33UUP_61_40 (date 2, as in
tests/change/test_sar.py), mirrored out to size x size. Timed per method: change
magnitude (box filters), Kittler-Illingworth + CFAR threshold, probability, binary map
and both COGs written. Target: 180 s per pair on our 2-core machine (the S2 target).
Bound, measured in the same run: streaming both dates once through memory.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def build_pair(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, tuple[float, ...]]:
    import numpy as np

    from eominer.change.align import align_pair, scene_from_path

    root = Path(os.environ.get("EOMINER_SHARED_DATA",
                               Path(__file__).resolve().parents[2] / "shared" / "data"))
    s1 = root / "bigearthnet" / "s1-tiny"
    (first,) = s1.glob("*_33UUP_61_41")
    (other,) = s1.glob("*_33UUP_61_40")
    a, b = scene_from_path(first), scene_from_path(other)
    data = a.data.copy()
    data[:, 20:60, 30:70] = b.data[:, 0:40, 0:40]
    import dataclasses

    pair = align_pair(a, dataclasses.replace(a, data=data))

    def tile(x: np.ndarray) -> np.ndarray:
        _, h, w = x.shape
        row = np.concatenate([x, x[:, :, ::-1]], axis=2)
        block = np.concatenate([row, row[:, ::-1, :]], axis=1)
        reps = (-(-size // (2 * h)), -(-size // (2 * w)))
        return np.stack([np.tile(block[i], reps)[:size, :size] for i in range(x.shape[0])])

    x1, x2 = tile(pair.x1), tile(pair.x2)
    return x1, x2, np.ones((size, size), dtype=bool), pair.crs_wkt, pair.transform


def main() -> int:
    import numpy as np

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=10980)
    ap.add_argument("--methods", default="rom,logratio")
    args = ap.parse_args()
    from eominer.change.maps import change_map, write_maps
    from eominer.change.sar import s1_change  # noqa: F401  (imports outside the timing)

    t = time.perf_counter()
    x1, x2, valid, crs, transform = build_pair(args.size)
    print(f"S1 pair {args.size} x {args.size} px, VV + VH x 2 dates "
          f"(built in {time.perf_counter() - t:.1f} s)")
    t = time.perf_counter()
    for x in (x1, x2):
        for i in range(x.shape[0]):
            np.add.reduce(x[i], axis=None)
    bound = time.perf_counter() - t
    print(f"bound: stream both dates once: {bound:.2f} s")
    target = 180.0
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            t, cpu = time.perf_counter(), time.process_time()
            cmap = change_map(x1, x2, valid, method)
            t_map = time.perf_counter() - t
            write_maps(cmap, crs, transform, Path(tmp) / f"{method}.tif")
            total = time.perf_counter() - t
            cpu = time.process_time() - cpu
            print(f"{method}: {total:.1f} s per pair (CPU {cpu:.1f} s) (map {t_map:.1f} s, COGs "
                  f"{total - t_map:.1f} s); target {target:.0f} s: ratio {total / target:.2f}; "
                  f"vs memory bound {total / bound:.0f}x; changed "
                  f"{cmap.changed_fraction:.2%}", flush=True)
            del cmap
    return 0


if __name__ == "__main__":
    sys.exit(main())
