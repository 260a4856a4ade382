"""Raster layers for the map: the product image at screen resolution and the score
overlay as one RGBA pixel per patch.

The overlay never draws polygons: a session's float32 scores go through a 256-entry
colour table into an image aligned with the patch grid, so 1M patches recolour in a
few milliseconds (bench/bench_ui.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from eominer.errors import ProductReadError
from eominer.store.records import Product

if TYPE_CHECKING:
    from eominer.store import Store

TRUE_COLOUR = ("B04", "B03", "B02")
FALSE_COLOUR = ("B08", "B04", "B03")
SAR_COLOUR = ("VV", "VH", "VV")
MAX_SCREEN_PX = 1200  # longest side of an image sent to the browser


LEVEL_RANGE = (1, 255)  # colour-mapper range of PatchGrid.levels; 0 (below) is transparent


@lru_cache(maxsize=4)
def score_lut(name: str = "viridis") -> np.ndarray:
    """256 RGBA colours (uint32, little-endian RGBA) of a matplotlib-free colormap."""
    from bokeh import palettes

    pal = {"viridis": palettes.Viridis256, "inferno": palettes.Inferno256,
           "magma": palettes.Magma256}[name]
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in pal], np.uint32)
    return rgb[:, 0] | (rgb[:, 1] << 8) | (rgb[:, 2] << 16) | (np.uint32(255) << 24)


@dataclass(frozen=True)
class PatchGrid:
    """Where each session patch of one product sits in that product's patch grid."""

    product_id: str
    level: int
    rows: int
    cols: int
    bounds: tuple[float, float, float, float]  # left, bottom, right, top (product CRS)
    session_rows: np.ndarray  # rows of the session's patch_ids that are in this product
    flat: np.ndarray  # their index in the (rows, cols) grid, row-major from the top
    patch_ids: np.ndarray  # patch id of each grid cell (-1: none), row-major

    def colour(self, scores: np.ndarray | None, out: np.ndarray | None = None,
               cmap: str = "viridis") -> np.ndarray:
        """(rows, cols) uint32 RGBA of the scores in [0, 1]; transparent where no score."""
        img = np.zeros(self.rows * self.cols, np.uint32) if out is None else out.reshape(-1)
        if out is not None:
            img[:] = 0
        if scores is not None and len(self.flat):
            s = scores[self.session_rows]
            q = np.clip(s * 255.0, 0, 255).astype(np.uint8)
            img[self.flat] = score_lut(cmap)[q]
        return img.reshape(self.rows, self.cols)

    def levels(self, scores: np.ndarray | None) -> np.ndarray:
        """(rows, cols) uint8 for the map's colour mapper: 0 where there is no score,
        else 1 + round(score * 254). A quarter of the bytes of RGBA on the wire, and the
        browser colours them (LEVEL_RANGE)."""
        img = np.zeros(self.rows * self.cols, np.uint8)
        if scores is not None and len(self.flat):
            s = np.nan_to_num(scores[self.session_rows], nan=0.0)
            img[self.flat] = (np.clip(s, 0.0, 1.0) * 254.0 + 1.5).astype(np.uint8)
        return img.reshape(self.rows, self.cols)

    def cell_of(self, x: float, y: float) -> int | None:
        """Patch id under the map coordinate (x, y), or None."""
        left, bottom, right, top = self.bounds
        if not (left <= x < right and bottom < y <= top):
            return None
        c = int((x - left) / (right - left) * self.cols)
        r = int((top - y) / (top - bottom) * self.rows)
        pid = int(self.patch_ids[min(r, self.rows - 1) * self.cols + min(c, self.cols - 1)])
        return pid if pid >= 0 else None


def patch_grid(store: Store, product: Product, level: int,
               session_ids: np.ndarray | None) -> PatchGrid:
    """The grid geometry of `product` at `level`; `session_ids` (sorted) maps scores."""
    t = store.scope_patches([product.product_id], level)
    pids = t["patch_id"].to_numpy().astype(np.int64)
    if not len(pids):
        raise ProductReadError(
            f"product {product.product_id} has no patches at level {level}: pick a "
            "level it was tiled at"
        )
    r = t["y_off"].to_numpy() // level
    c = t["x_off"].to_numpy() // level
    rows, cols = int(r.max()) + 1, int(c.max()) + 1
    a, _, xoff, _, e, yoff = product.transform
    left, top = xoff, yoff
    right, bottom = xoff + cols * level * a, yoff + rows * level * e
    flat_all = (r * cols + c).astype(np.int64)
    cells = np.full(rows * cols, -1, np.int64)
    cells[flat_all] = pids
    if session_ids is None or not len(session_ids):
        srows, flat = np.empty(0, np.int64), np.empty(0, np.int64)
    else:
        pos = np.searchsorted(session_ids, pids)
        pos = np.clip(pos, 0, len(session_ids) - 1)
        hit = session_ids[pos] == pids
        srows, flat = pos[hit], flat_all[hit]
    return PatchGrid(product.product_id, level, rows, cols,
                     (float(left), float(min(top, bottom)), float(right), float(max(top, bottom))),
                     srows, flat, cells)


def product_bounds(product: Product) -> tuple[float, float, float, float]:
    """left, bottom, right, top in the product's CRS."""
    return product.bounds


def colour_bands(product: Product, false_colour: bool) -> list[int]:
    """1-based band indexes of the composite (true or false colour)."""
    names = product.bands
    want = SAR_COLOUR if product.sensor.upper().startswith("S1") else (
        FALSE_COLOUR if false_colour else TRUE_COLOUR)
    missing = [b for b in want if b not in names]
    if missing:
        raise ProductReadError(
            f"product {product.product_id} lacks band(s) {', '.join(missing)} for the "
            f"{'false' if false_colour else 'true'}-colour image (has {', '.join(names)})"
        )
    return [names.index(b) + 1 for b in want]


def read_view(product: Product, bands: list[int], x_range: tuple[float, float] | None,
              y_range: tuple[float, float] | None, max_px: int = MAX_SCREEN_PX,
              ) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The product's bands over the visible range at screen resolution: decimated reads
    use the COG's overviews, so a full 10980 px product paints as fast as a crop."""
    from pathlib import Path

    import rasterio
    from rasterio.windows import Window

    path = Path(product.ard_path)
    if not path.exists():
        raise ProductReadError(
            f"analysis-ready file {path} of product {product.product_id} is missing: "
            f"re-ingest it (eominer ingest {product.source_path or 'SOURCE'})"
        )
    a, _, c, _, e, f = product.transform
    W, H = product.width, product.height
    c0, r0, c1, r1 = 0, 0, W, H
    if x_range and y_range and None not in (*x_range, *y_range):
        c0 = max(0, int(np.floor((min(x_range) - c) / a)))
        c1 = min(W, int(np.ceil((max(x_range) - c) / a)))
        r0 = max(0, int(np.floor((max(y_range) - f) / e)))
        r1 = min(H, int(np.ceil((min(y_range) - f) / e)))
        if c1 - c0 < 2 or r1 - r0 < 2:
            c0, r0, c1, r1 = 0, 0, W, H
    w, h = c1 - c0, r1 - r0
    scale = max(w, h) / max_px
    shape = (len(bands), max(1, int(h / scale)), max(1, int(w / scale))) if scale > 1 \
        else (len(bands), h, w)
    try:
        with rasterio.open(path) as ds:
            data = ds.read(bands, window=Window(c0, r0, w, h), out_shape=shape,
                           resampling=rasterio.enums.Resampling.average if scale > 1
                           else rasterio.enums.Resampling.nearest)
    except rasterio.errors.RasterioIOError as exc:
        raise ProductReadError(f"cannot read {path}: {exc}; re-ingest the product") from exc
    x0, x1 = c + c0 * a, c + c1 * a
    y0, y1 = f + r0 * e, f + r1 * e
    return data, (x0, min(y0, y1), x1, max(y0, y1))


def to_rgb(data: np.ndarray, stretch: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(3, rows, cols) values -> (rows, cols, 4) uint8 with a per-band linear stretch;
    nodata (0 or NaN) is transparent."""
    lo, hi = stretch
    x = data.astype(np.float32)
    valid = np.isfinite(x).all(axis=0) & (x != 0).any(axis=0)
    x = (x - lo[:, None, None]) / np.maximum(hi - lo, 1e-6)[:, None, None]
    rgb = (np.clip(np.nan_to_num(x), 0, 1) ** 0.8 * 255).astype(np.uint8)
    out = np.empty((*data.shape[1:], 4), np.uint8)
    out[..., :3] = np.moveaxis(rgb, 0, -1)
    out[..., 3] = np.where(valid, 255, 0)
    return out


def stretch_of(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-98 % percentiles of each band's valid pixels (from an overview read)."""
    lo, hi = [], []
    for band in data.astype(np.float32):
        v = band[np.isfinite(band) & (band != 0)]
        if v.size == 0:
            lo.append(0.0)
            hi.append(1.0)
        else:
            p = np.percentile(v, [2, 98])
            lo.append(float(p[0]))
            hi.append(float(max(p[1], p[0] + 1e-6)))
    return np.asarray(lo, np.float32), np.asarray(hi, np.float32)


def change_layer_path(store: Store, product: Product) -> str | None:
    """The probability COG of the newest change pair that contains `product` (rows of
    kind `change` in `product_pairs`) whose file exists, or None."""
    from pathlib import Path

    for pair in store.pairs(kind="change", product_id=product.product_id).to_pylist():
        path = pair.get("layer_path")
        if path and Path(path).exists():
            return str(path)
    return None


def change_layer(store: Store, product: Product,
                 max_px: int = MAX_SCREEN_PX,
                 ) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
    """The change-detection raster of `product` (`change_layer_path`) at screen
    resolution, as (data, bounds), or None."""
    import rasterio

    path = change_layer_path(store, product)
    if path is None:
        return None
    with rasterio.open(path) as ds:
        scale = max(1.0, max(ds.width, ds.height) / max_px)
        data = ds.read(1, out_shape=(max(1, int(ds.height / scale)),
                                     max(1, int(ds.width / scale)))).astype(np.float32)
        if ds.nodata is not None:
            data[data == ds.nodata] = np.nan
        b = ds.bounds
    data[data <= 0] = np.nan  # no change is transparent
    return data, (b.left, b.bottom, b.right, b.top)
