"""Pair Sentinel-2 and Sentinel-1 products that see the same place at nearly the same time.

A pair needs an S2 product and an S1 product whose footprints overlap by at least
`min_overlap` of the S2 footprint and whose acquisitions are at most `max_days` apart.
Pairing resamples the S1 backscatter onto the S2 product's 10 m grid (bilinear on linear
power, back to dB; eominer.fusion.sar) and writes it as a COG in the workspace's layers
folder, so "the S1 patch of S2 patch p" is simply the same pixel window in that layer.
The pair is recorded in `product_pairs` (kind 's1s2').

S1 scale: the ARD of an S1 product holds dB. With `s1_scale='auto'` (default) a product
found to hold linear power is converted (and `params.s1_scale_found` says so); 'db'
refuses linear input with an error; 'linear' always converts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import PairingError
from eominer.fusion.sar import as_db, detect_scale, require_db, resample_to_grid
from eominer.workspace import layers_dir

if TYPE_CHECKING:
    from eominer.store import Product, Store

DEFAULT_MAX_DAYS = 3.0
DEFAULT_MIN_OVERLAP = 0.5


@dataclass(frozen=True)
class Candidate:
    s2_id: str
    s1_id: str
    days_apart: float
    overlap_fraction: float

    @property
    def pair_id(self) -> str:
        return "s1s2_" + hashlib.sha1(f"{self.s2_id}|{self.s1_id}".encode()).hexdigest()[:16]


def _footprints(products: Sequence[Product]) -> dict[str, Any]:
    from shapely import wkt

    return {p.product_id: wkt.loads(p.footprint_wkt) for p in products}


def _overlap(s2_fp: Any, s1_fp: Any) -> float:
    # footprints are WGS84; an area ratio in degrees is fine at patch/tile scale
    area = s2_fp.area
    return float(s2_fp.intersection(s1_fp).area / area) if area > 0 else 0.0


def _days(a: dt.datetime | None, b: dt.datetime | None) -> float:
    if a is None or b is None:
        return float("inf")
    return abs((a - b).total_seconds()) / 86400.0


def check_pair(store: Store, s2_id: str, s1_id: str, max_days: float = DEFAULT_MAX_DAYS,
               min_overlap: float = DEFAULT_MIN_OVERLAP) -> Candidate:
    """The pair of two named products, or PairingError saying why they cannot pair."""
    s2, s1 = _product(store, s2_id), _product(store, s1_id)
    if s2.sensor != "S2" or s1.sensor != "S1":
        raise PairingError(
            f"a fusion pair is (S2, S1): {s2_id} is {s2.sensor} and {s1_id} is "
            f"{s1.sensor}; give the Sentinel-2 product first"
        )
    fps = _footprints([s2, s1])
    overlap = _overlap(fps[s2_id], fps[s1_id])
    days = _days(s2.acquired, s1.acquired)
    if overlap < min_overlap:
        raise PairingError(
            f"{s1_id} covers {overlap:.0%} of {s2_id}, at least {min_overlap:.0%} needed: "
            "they do not show the same place (unpaired products)"
        )
    if days > max_days:
        raise PairingError(
            f"{s2_id} and {s1_id} are {days:.1f} days apart, at most {max_days:g} allowed: "
            "pick a closer acquisition or raise --max-days"
        )
    return Candidate(s2_id, s1_id, days, overlap)


def find_candidates(store: Store, max_days: float = DEFAULT_MAX_DAYS,
                    min_overlap: float = DEFAULT_MIN_OVERLAP,
                    ) -> tuple[list[Candidate], list[str]]:
    """For every S2 product, the best S1 partner (most overlap, then closest in time).

    Returns the candidates and the ids of products left without a partner.
    """
    products = store.product_list()
    s2s = [p for p in products if p.sensor == "S2"]
    s1s = [p for p in products if p.sensor == "S1"]
    fps = _footprints(products)
    found: list[Candidate] = []
    for s2 in s2s:
        best: Candidate | None = None
        for s1 in s1s:
            days = _days(s2.acquired, s1.acquired)
            if days > max_days:
                continue
            ov = _overlap(fps[s2.product_id], fps[s1.product_id])
            if ov < min_overlap:
                continue
            c = Candidate(s2.product_id, s1.product_id, days, ov)
            if best is None or (round(ov, 3), -days) > (round(best.overlap_fraction, 3),
                                                        -best.days_apart):
                best = c
        if best is not None:
            found.append(best)
    used = {c.s2_id for c in found} | {c.s1_id for c in found}
    unpaired = [p.product_id for p in products if p.product_id not in used]
    return found, unpaired


def _product(store: Store, product_id: str) -> Product:
    product = store.product(product_id)
    if product is None:
        raise PairingError(f"product {product_id!r} is not in the database: ingest it first")
    return product


def _grid(product: Product) -> tuple[Any, Any]:
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    return CRS.from_wkt(product.crs), Affine(*product.transform)


def s1_layer_on_s2_grid(store: Store, c: Candidate, s1_scale: str = "auto",
                        dest_dir: Path | None = None) -> tuple[Path, str]:
    """Write the S1 product resampled onto the S2 grid (float32 dB, NaN outside S1).

    Returns the layer path and the scale found in the S1 ARD.
    """
    import rasterio

    from eominer.io.ard import read_ard, write_layer

    s2, s1 = _product(store, c.s2_id), _product(store, c.s1_id)
    idx = [s1.band_index(b) for b in ("VV", "VH") if b in s1.bands]
    if len(idx) != 2:
        raise PairingError(f"S1 product {c.s1_id} has bands {list(s1.bands)}: fusion needs "
                           "VV and VH")
    raw = read_ard(s1.ard_path, bands=idx).astype(np.float32)
    finite = raw[np.isfinite(raw)]
    found = detect_scale(finite)
    if s1_scale == "db":
        require_db(finite, f"S1 product {c.s1_id}")  # raises on linear power
        db = raw
    elif s1_scale in ("auto", "linear"):
        db = as_db(raw, "linear" if s1_scale == "linear" else found)
    else:
        raise PairingError(f"s1_scale must be 'auto', 'db' or 'linear', got {s1_scale!r}")
    src_crs, src_tr = _grid(s1)
    dst_crs, dst_tr = _grid(s2)
    out = resample_to_grid(db, src_tr, src_crs, dst_tr, dst_crs, (s2.height, s2.width))
    dest = (dest_dir or layers_dir()) / f"{c.pair_id}_s1_on_s2.tif"
    profile = {"driver": "GTiff", "width": s2.width, "height": s2.height, "count": 2,
               "dtype": "float32", "crs": dst_crs, "transform": dst_tr, "nodata": np.nan,
               "tiled": True, "blockxsize": 256, "blockysize": 256}

    def fill(tmp: Path) -> None:
        with rasterio.open(tmp, "w", **profile) as ds:
            ds.write(out)
            ds.descriptions = ("VV", "VH")

    return write_layer(dest, fill), found


def pair_products(
    store: Store, s2_id: str | None = None, s1_id: str | None = None,
    max_days: float = DEFAULT_MAX_DAYS, min_overlap: float = DEFAULT_MIN_OVERLAP,
    s1_scale: str = "auto", progress: Callable[[str], None] | None = None,
) -> tuple[list[dict], list[str]]:
    """Pair the two named products, or every S2 product with its best S1 partner.

    Returns the recorded pairs (as `store.fusion_pairs` rows) and the unpaired product ids.
    """
    if (s2_id is None) != (s1_id is None):
        raise PairingError("give both an S2 and an S1 product id, or neither (pair all)")
    if s2_id is not None and s1_id is not None:
        cands, unpaired = [check_pair(store, s2_id, s1_id, max_days, min_overlap)], []
    else:
        cands, unpaired = find_candidates(store, max_days, min_overlap)
    for c in cands:
        path, found = s1_layer_on_s2_grid(store, c, s1_scale)
        store.put_fusion_pair(
            c.pair_id, c.s2_id, c.s1_id, c.days_apart, c.overlap_fraction, str(path),
            {"max_days": max_days, "min_overlap": min_overlap, "s1_scale": s1_scale,
             "s1_scale_found": found, "resampling": "bilinear on linear power, then dB"},
        )
        if progress:
            progress(f"{c.s2_id} + {c.s1_id}: {c.days_apart:.2f} days apart, "
                     f"{c.overlap_fraction:.0%} overlap")
    pairs = [p for c in cands for p in store.fusion_pairs(c.s2_id) if p["pair_id"] == c.pair_id]
    return pairs, unpaired
