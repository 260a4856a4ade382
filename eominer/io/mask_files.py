"""Where a Sentinel-2 product keeps its cloud masks (found at discovery, read at ingest).

- L2A: the scene classification `GRANULE/*/IMG_DATA/R20m/*_SCL_20m.jp2` (the finest one:
  R20m before R60m);
- L1C and L2A of baseline >= 04.00: `GRANULE/*/QI_DATA/MSK_CLASSI_B00.jp2`;
- older L1C: `GRANULE/*/QI_DATA/MSK_CLOUDS_B00.gml` (old product names too).

A folder of band files gets the masks in the folder itself and, for a SAFE's
`GRANULE/*/IMG_DATA` folder, in its sibling `QI_DATA`. File patterns: eominer.sensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from eominer import sensors as S

# The kinds of mask, in the order ingest prefers them (eominer.io.clouds).
MASK_KINDS: tuple[str, ...] = ("SCL", "MSK_CLASSI", "MSK_CLOUDS")


def mask_kind(rel: str) -> tuple[str, int] | None:
    """(kind, resolution in m) of a file that is a cloud mask, by its path; else None."""
    name = rel.replace("\\", "/")
    base = name.rsplit("/", 1)[-1]
    if m := S.S2_SCL_RE.search(base):
        return "SCL", int(m.group(1))
    if S.S2_MSK_CLASSI_RE.search(name):
        return "MSK_CLASSI", 60
    if S.S2_MSK_CLOUDS_RE.search(base):
        return "MSK_CLOUDS", 60
    return None


def find_mask_files(files: Iterable[str], resolve: Callable[[str], str]) -> dict[str, str]:
    """The cloud masks among a product's files (paths relative to its root; `resolve`
    makes the path GDAL reads, e.g. /vsizip/...): kind -> path, the finest of each kind
    (several granules: the first by name)."""
    best: dict[str, tuple[int, str]] = {}
    for rel in sorted(files):
        found = mask_kind(rel)
        if found is None:
            continue
        kind, res = found
        if kind not in best or res < best[kind][0]:
            best[kind] = (res, rel)
    return {kind: resolve(best[kind][1]) for kind in MASK_KINDS if kind in best}


def masks_near(folder: Path) -> dict[str, str]:
    """Cloud masks for a folder of band files: in it, or in a `QI_DATA` beside it."""
    places = [folder, folder.parent / "QI_DATA"]
    files = [str(f) for place in places if place.is_dir()
             for f in place.iterdir() if f.is_file()]
    return find_mask_files(files, lambda p: p)
