"""A full-size Sentinel-1 IW GRDH SAFE for the S1 ingest benchmark, built once and cached.

The metadata are the real product's (shared/data/s1_grd_metadata: manifest, annotation
with its 210 tie points, calibration and noise LUTs of the 25,931 x 16,854 sample image).
The shared zip has no imagery, so the two measurements (VV, VH) are written here at the
annotated size: real backscatter, BigEarthNet S1 patches in dB repeated over the image
and taken back to DN through the product's own LUTs, as tests/io/test_s1_safe.py does
for its crop. Uncompressed uint16 GeoTIFFs, as ESA delivers them: 874 MB each. Building
takes ~2-3 min; the folder is reused until it is deleted.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from full_tile import ROOT, cache_dir, shared_data

if TYPE_CHECKING:
    from collections.abc import Callable

BLOCK_LINES = 2400  # a multiple of the backscatter mosaic's 240 rows: blocks repeat it


def full_s1(log: Callable[[str], None] = print) -> Path:
    """The .SAFE folder of the full-size product, built on first use."""
    sys.path.insert(0, str(ROOT))  # the measurement helpers of the SAFE tests
    from tests.io.test_s1_safe import NAME, backscatter_db, to_dn

    root = cache_dir() / "S1_full"
    safe = root / f"{NAME}.SAFE"
    done = root / ".complete"
    if done.exists():
        return safe
    import shutil

    import rasterio
    from rasterio.control import GroundControlPoint
    from rasterio.windows import Window

    from eominer.io import s1_safe

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    log(f"building a full-size S1 IW GRDH SAFE in {root} (once, ~3 min)")
    with zipfile.ZipFile(shared_data() / "s1_grd_metadata" / f"{NAME}.zip") as z:
        z.extractall(root)
    ben = shared_data() / "bigearthnet"
    for f in sorted((safe / "annotation").glob("*.xml")):
        stem, pol = f.stem, f.stem.split("-")[3].upper()
        info = ET.fromstring(f.read_bytes()).find("imageAnnotation/imageInformation")
        lines, samples = int(info.findtext("numberOfLines")), int(info.findtext("numberOfSamples"))
        cal = s1_safe.read_calibration(
            (safe / f"annotation/calibration/calibration-{stem}.xml").read_bytes())
        noise = s1_safe.read_noise((safe / f"annotation/calibration/noise-{stem}.xml").read_bytes())
        gcps = [GroundControlPoint(row=float(p.findtext("line")), col=float(p.findtext("pixel")),
                                   x=float(p.findtext("longitude")), y=float(p.findtext("latitude")))
                for p in ET.fromstring(f.read_bytes()).iter("geolocationGridPoint")]
        db = backscatter_db(ben, pol, (BLOCK_LINES, samples))
        with rasterio.open(safe / "measurement" / f"{stem}.tiff", "w", driver="GTiff",
                           width=samples, height=lines, count=1, dtype="uint16",
                           gcps=gcps, crs="EPSG:4326") as out:
            for y in range(0, lines, BLOCK_LINES):
                h = min(BLOCK_LINES, lines - y)
                out.write(to_dn(db[:h], cal, noise, row_off=y), 1,
                          window=Window(0, y, samples, h))
        log(f"  {pol}: {lines} x {samples} written")
    done.write_text("")
    return safe
