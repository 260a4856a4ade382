"""Time series of ingested products: a stack of >= 3 Sentinel-2 products of one place,
read as an index series (NDVI, NDBI or NDWI) on one product's 10 m grid, gives every
patch of that product its seasonal descriptors (the `temporal` feature set) and the
date and size of its largest break (`ts_breaks`), both queryable in SQL and usable in a
session like any feature set (`eominer timeseries`).

- **The grid.** The descriptors live on the patches of one product of the stack (`on`,
  default the latest). Products on another grid (another crop, another UTM zone) are
  resampled onto it on the fly (GDAL's warped VRT, bilinear; outside their footprint:
  no data).
- **Clear.** A pixel of a date is clear when it has data in every band read and the
  brightness / cirrus cloud test of `eominer change` (`change.align.cloud_mask`) does not
  flag it; a patch's value of a date is the median of its clear pixels, clear when at
  least half of them are (`change.timeseries.patch_series`).
- **The models.** `change.timeseries`: the robust seasonal fit and its descriptors, and
  the largest break (a step in the seasonal model, F > 30, |size| >= `min_size`).
  Patches without enough clear dates get NaN and the reason code (1: fewer than 3, 2:
  fewer than 12, no seasonal model; for breaks 3: no break).
- **Work.** The stack is read in bands of whole patch rows sized to `MAX_STACK_BYTES`
  (a year of full tiles fits a laptop), one task each (`series_band`, no database):
  `compute/series.py` runs them as a runner job (Ray, or this process), with resume.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from eominer.change.temporal import MIN_CLEAR_SHARE, TEMPORAL_VERSION
from eominer.change.timeseries import (
    HARMONICS,
    MIN_DATES,
    MIN_SIZE,
    REASONS,
    TEMPORAL_COLUMNS,
    Breaks,
    day_numbers,
    largest_break,
    patch_series,
    temporal_descriptors,
)
from eominer.errors import ConfigError, ProductReadError

if TYPE_CHECKING:
    from eominer.store import FeatureSet, Store
    from eominer.store.records import Product

INDICES: dict[str, tuple[str, str]] = {  # (a, b): (a - b) / (a + b)
    "ndvi": ("B08", "B04"), "ndbi": ("B11", "B08"), "ndwi": ("B03", "B08")}
CLOUD_BANDS = ("B01", "B02", "B04", "B10")  # what `cloud_mask` looks at, when present
BREAK_COLUMNS: tuple[str, ...] = ("ts_break_year", "ts_break_size", "ts_break_f",
                                  "ts_break_reason_code")
BREAKS_VERSION = 1
MAX_STACK_BYTES = 256 * 2**20
MASK = "data in every band read, and not cloud by eominer change's brightness/cirrus test"


@dataclass(frozen=True)
class Band:
    """One task: rows y0..y0+h of the grid and, per level, the patches inside them
    (ids, x_off, y_off)."""

    y0: int
    h: int
    windows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(repr=False)

    @property
    def n_patches(self) -> int:
        return sum(len(w[0]) for w in self.windows.values())


@dataclass
class SeriesPlan:
    """A stack planned on the driver: the products by date, the grid holder `ref`, the
    feature sets to write (planned, not created), the bands of rows."""

    products: list[Product]
    ref: Product
    index: str
    levels: list[int]
    dates: list[str]
    min_size: float
    grids: dict[str, _Grid]
    temporal: FeatureSet
    breaks: FeatureSet
    bands: list[Band]

    @property
    def resampled(self) -> list[str]:
        return [p for p, g in self.grids.items() if g.warped]


def stack_of(store: Store, product_ids: Sequence[str], on: str | None = None,
             ) -> tuple[list[Product], Product]:
    """The products in date order and the one whose grid holds the descriptors; every
    way a stack cannot be one is refused with what to do."""
    ids = list(dict.fromkeys(product_ids))
    products = [store.product(p) for p in ids]
    missing = [p for p, row in zip(ids, products) if row is None]
    if missing:
        raise ConfigError(f"product(s) {', '.join(missing)} are not in {store.url}: "
                          "`eominer products` lists the ids")
    if len(products) < MIN_DATES:
        raise ConfigError(f"a time series needs at least {MIN_DATES} products of one place, "
                          f"got {len(products)}: name more, or give --tile")
    s1 = [p.product_id for p in products if p.sensor != "S2"]
    undated = [p.product_id for p in products if p.acquired is None]
    if s1 or undated:
        raise ConfigError(f"product(s) {', '.join(s1 or undated)} "
                          + ("are not Sentinel-2: the series is of an optical index"
                             if s1 else "have no acquisition time: the series needs dates"))
    products.sort(key=lambda p: p.acquired)
    for a, b in zip(products, products[1:]):
        if a.acquired == b.acquired:
            raise ConfigError(f"{a.product_id} and {b.product_id} were acquired at the same "
                              "time: one date, two products (crops of one granule?); keep "
                              "one of them")
    ref = products[-1] if on is None else next(
        (p for p in products if p.product_id == on), None)
    if ref is None:
        raise ConfigError(f"--on {on} is not among the stack's products")
    return products, ref


def plan_series(store: Store, product_ids: Sequence[str], *, on: str | None = None,
                index: str = "ndvi", levels: Sequence[int] | None = None,
                min_size: float = MIN_SIZE) -> SeriesPlan:
    """Check the stack and plan its bands; nothing is written. The feature sets' params
    name the index, the products (count and digest), the dates and `on`: the same stack
    gives the same sets (a re-run resumes), another stack other sets."""
    if index not in INDICES:
        raise ConfigError(f"unknown index {index!r}: one of {', '.join(INDICES)}")
    products, ref = stack_of(store, product_ids, on)
    have = store.patch_levels([ref.product_id])
    levels = sorted(set(levels or have))
    if not levels or set(levels) - set(have):
        raise ConfigError(f"product {ref.product_id} has no patches at level(s) "
                          f"{sorted(set(levels) - set(have)) or levels} (it has {have})")
    a, b = INDICES[index]
    lacking = [p.product_id for p in products if a not in p.bands or b not in p.bands]
    if lacking:
        raise ProductReadError(f"product(s) {', '.join(lacking)} lack band {a} or {b} for "
                               f"{index.upper()}: choose another --index or leave them out")
    dates = [p.acquired.isoformat() for p in products]
    digest = hashlib.sha256("\n".join(f"{p.product_id} {d}" for p, d in
                                      zip(products, dates)).encode()).hexdigest()[:12]
    params = {"index": index.upper(), "source": "products", "on": ref.product_id,
              "products": len(products), "products_sha": digest, "mask": MASK,
              "dates": len(dates), "first": dates[0], "last": dates[-1],
              "harmonics": HARMONICS, "min_clear_share": MIN_CLEAR_SHARE}
    temporal = store.planned_feature_set("temporal", TEMPORAL_VERSION, params,
                                         list(TEMPORAL_COLUMNS), "S2")
    breaks = store.planned_feature_set("ts_breaks", BREAKS_VERSION,
                                       {**params, "min_size": min_size},
                                       list(BREAK_COLUMNS), "S2")
    patches = {lv: store.patches(ref.product_id, lv) for lv in levels}
    step = math.lcm(*levels)
    rows = max(step, MAX_STACK_BYTES // (len(products) * ref.width * 5) // step * step)
    bands = []
    for y0 in range(0, ref.height, rows):
        h = min(rows, ref.height - y0)
        windows = {}
        for lv, t in patches.items():
            y = t["y_off"].to_numpy()
            inside = (y >= y0) & (y + lv <= y0 + h)
            if inside.any():
                windows[lv] = (t["patch_id"].to_numpy()[inside].astype(np.int64),
                               t["x_off"].to_numpy()[inside], y[inside])
        if windows:
            bands.append(Band(y0, h, windows))
    return SeriesPlan(products, ref, index, levels, dates, min_size,
                      {p.product_id: _Grid.of(p, ref) for p in products}, temporal, breaks,
                      bands)


def series_band(plan: SeriesPlan, band: Band,
                ) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A task: per level, (patch ids, TEMPORAL_COLUMNS rows, BREAK_COLUMNS rows) of the
    band's patches. Reads the products' ARDs; no database."""
    days = day_numbers(plan.dates)
    values, clear = _read_band(plan.products, plan.grids, plan.index, band.y0, band.h,
                               plan.ref.width)
    out = {}
    for lv, (ids, x, y) in band.windows.items():
        rows = band.h // lv * lv
        med, ok = patch_series(values[:, :rows], clear[:, :rows], lv, MIN_CLEAR_SHARE)
        r, c = (y - band.y0) // lv, x // lv
        cols, good = med[:, r, c], ok[:, r, c]
        out[lv] = (ids, temporal_descriptors(cols, good, days).matrix(),
                   _break_columns(largest_break(cols, good, days, plan.min_size),
                                  plan.dates))
    return out


@dataclass(frozen=True)
class _Grid:
    """How a product's ARD is read onto the reference grid."""

    path: str
    band_index: dict[str, int]
    warped: bool
    ref: tuple  # (crs wkt, transform, width, height) of the reference

    @classmethod
    def of(cls, p: Product, ref: Product) -> _Grid:
        from eominer.change.align import same_grid

        same = same_grid(p.crs, p.transform, (p.height, p.width), ref.crs, ref.transform,
                         (ref.height, ref.width))
        return cls(p.ard_path, {b: i + 1 for i, b in enumerate(p.bands)}, not same,
                   (ref.crs, ref.transform, ref.width, ref.height))


def _read_band(products: list[Product], grids: dict[str, _Grid], index: str, y0: int,
               h: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(dates, h, width) float32 index values and clear mask of rows y0..y0+h."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import Affine
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import Resampling
    from rasterio.windows import Window

    from eominer.change.align import Scene, cloud_mask

    a, b = INDICES[index]
    values = np.full((len(products), h, width), np.nan, np.float32)
    clear = np.zeros((len(products), h, width), bool)
    for i, p in enumerate(products):
        g = grids[p.product_id]
        names = [n for n in dict.fromkeys((a, b, *CLOUD_BANDS)) if n in g.band_index]
        try:
            with rasterio.open(g.path) as ds:
                src = ds if not g.warped else WarpedVRT(
                    ds, crs=CRS.from_wkt(g.ref[0]), transform=Affine(*g.ref[1][:6]),
                    width=g.ref[2], height=g.ref[3], nodata=0,
                    resampling=Resampling.bilinear)
                with src:
                    dn = src.read([g.band_index[n] for n in names],
                                  window=Window(0, y0, width, h))
        except rasterio.errors.RasterioIOError as exc:
            raise ProductReadError(f"cannot read {g.path} of {p.product_id}: {exc}; "
                                   "re-ingest the product") from exc
        scene = Scene(dn, tuple(names), g.ref[0], tuple(g.ref[1]), "S2", p.acquired, g.path)
        ok = scene.valid() & ~cloud_mask(scene)
        va = dn[names.index(a)].astype(np.float32)
        vb = dn[names.index(b)].astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            values[i] = (va - vb) / (va + vb)
        clear[i] = ok & np.isfinite(values[i])
    return values, clear


def _break_columns(br: Breaks, dates: list[str]) -> np.ndarray:
    """(n, 4) float32 BREAK_COLUMNS: the break's date as a decimal year, size, F, and the
    reason code (0 found; 1, 2 too few clear dates; 3 no break)."""
    def year(i: float) -> float:
        d = dt.datetime.fromisoformat(dates[int(i)])
        start = dt.datetime(d.year, 1, 1, tzinfo=d.tzinfo)
        span = (dt.datetime(d.year + 1, 1, 1, tzinfo=d.tzinfo) - start).total_seconds()
        return d.year + (d - start).total_seconds() / span

    when = np.array([year(i) if np.isfinite(i) else np.nan for i in br.index.ravel()])
    code = np.array([REASONS.index(r) for r in br.reason.ravel()], np.float32)
    return np.column_stack([when, br.size.ravel(), br.stat.ravel(), code]).astype(np.float32)
