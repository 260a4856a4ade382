"""Every product of a scope on one map in Web Mercator (EPSG:3857).

Each product keeps its own grid (its UTM zone, its patch grid); the map draws them
together in EPSG:3857:
- the product image is read at screen resolution for the visible part (`warp_view`)
  and warped to a 3857 grid with rasterio;
- the hover names the patch under the mouse from the exact grid, as a click does: the
  browser evaluates a polynomial fit of 3857 -> grid column and row (`GridPolynomial`,
  < 1e-5 patch off pyproj on a whole tile) and looks the cell up in the grid's patch ids;
- the score overlay is one byte per screen pixel of the visible part of a product,
  gathered through an index map from 3857 pixels to patch-grid cells
  (`MercatorLayer.index`), computed with `rasterio.warp.reproject` (nearest) once per
  view (`view_layer`): a recolour is a numpy gather over the screen's pixels, never a
  reproject, whatever the number of patches (10M patches: ~1 MB a click, not 4);
- clicks, boxes and lassos drawn in 3857 go back to patches: a point through pyproj into
  the product's CRS and its grid cell (`MercatorLayer.patch_at`), a shape against the
  patch centres projected to 3857 once (`MercatorLayer.inside`, vectorised shapely);
- a map across 180 degrees (a product across it, or products on either side of it) runs
  on past 180 instead of wrapping (`Frame`, `map_frames`): its products sit side by side,
  as on the ground, and the basemap's tiles repeat there.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from eominer.store.records import Product
from eominer.ui.layers import MAX_SCREEN_PX, PatchGrid, colour_bands, read_view, to_rgb

if TYPE_CHECKING:
    from pyproj import Transformer
    from rasterio.transform import Affine
    from shapely.geometry.base import BaseGeometry

MERCATOR = "EPSG:3857"
WORLD_X = 2 * 20037508.342789244  # one turn of the Earth along 3857's x, in metres
# EPSG:3857 that does not wrap longitudes (PROJ's +over), moved east by x_0
_MERCATOR_ON = ("+proj=merc +a=6378137 +b=6378137 +lat_ts=0 +lon_0=0 +x_0={x0!r} +y_0=0 "
                "+k=1 +units=m +nadgrids=@null +over +no_defs")
_LONLAT_ON = "+proj=longlat +datum=WGS84 +over +no_defs"  # WGS84 lon/lat, not wrapped
MAX_OVERLAY_PX = 2048  # longest side of a whole-product index map
OVERSAMPLE = 1.25  # whole-product index map: pixels per patch each way, at most
# zoomed in, the view's overlay pixels per patch each way, at most: its colour edges lie
# within 1/8 patch of the patch edges (at 1.25, 0.4 patch off the outlines drawn on it);
# the bytes stay bounded by the screen's pixels
VIEW_OVERSAMPLE = 4.0
HOVER_DEGREE = 4  # of the hover's polynomials: ~1e-6 patch off on a 110 km tile at 72 N
MAX_HOVER_ERROR = 1e-3  # patches; a higher degree is fitted until the fit is within it


def _transformer(src: str, dst: str) -> Transformer:
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


@dataclass(frozen=True)
class Frame:
    """How one product's CRS is drawn on the map: `src` to `dst`. Away from 180
    degrees, the product's CRS to EPSG:3857. On a map across 180 both leave longitudes
    unwrapped (+over), so a product across 180 stays one piece past x = 20,037 km, and
    a product east of 180 (longitudes -180 .. 0) is drawn one turn of the Earth further
    east (`dst`'s false easting), beside its neighbours west of 180."""

    src: str
    dst: str = MERCATOR

    @property
    def plain(self) -> bool:
        return self.dst == MERCATOR


def _unwrapped(crs: str) -> str:
    """`crs` as a PROJ string whose longitudes are not wrapped to +-180 (+over)."""
    from pyproj import CRS

    with warnings.catch_warnings():  # what a PROJ string drops does not matter here
        warnings.simplefilter("ignore", UserWarning)
        return CRS.from_user_input(crs).to_proj4() + " +over"


def _lon_range(product: Product) -> tuple[float, float]:
    """West and east longitude of the product's box, continuous (past +-180 where it
    crosses), from its edges densified."""
    left, bottom, right, top = product.bounds
    t = np.linspace(0.0, 1.0, 21)
    xs = np.r_[left + t * (right - left), np.full(21, right), right - t * (right - left),
               np.full(21, left)]
    ys = np.r_[np.full(21, bottom), bottom + t * (top - bottom), np.full(21, top),
               top - t * (top - bottom)]
    lon, _ = _transformer(_unwrapped(product.crs), _LONLAT_ON).transform(xs, ys)
    lon = np.asarray(lon)
    return float(lon.min()), float(lon.max())


def map_frames(products: Sequence[Product]) -> list[Frame]:
    """Each product's frame on one map: EPSG:3857, unless the products together lie
    across 180 degrees (one of them crosses it, or the shortest span of longitude that
    holds them all does: `antimeridian.bbox`); then the unwrapped frames of `Frame`."""
    import shapely

    from eominer import antimeridian

    plain = [Frame(p.crs) for p in products]
    if not products:
        return plain
    spans = [_lon_range(p) for p in products]
    west, _, east, _ = antimeridian.bbox([shapely.box(w, -1, e, 1) for w, e in spans])
    if west <= east and all(e - w < 180 and w >= -180 and e <= 180 for w, e in spans):
        return plain
    return [Frame(_unwrapped(p.crs), _MERCATOR_ON.format(
        x0=WORLD_X if (w + e) / 2 < 0 else 0.0)) for p, (w, e) in zip(products, spans)]


def mercator_bounds(frame: Frame, bounds: tuple[float, float, float, float],
                    ) -> tuple[float, float, float, float]:
    """left, bottom, right, top on the map of a box in the product's CRS (edges
    densified)."""
    from rasterio.warp import transform_bounds

    return tuple(float(v) for v in transform_bounds(frame.src, frame.dst, *bounds,
                                                    densify_pts=21))  # type: ignore[return-value]


def suggested_transform(frame: Frame, cols: int, rows: int,
                        bounds: tuple[float, float, float, float],
                        resolution: float | None = None) -> tuple[Affine, int, int]:
    """(transform, width, height) of a north-up grid on the map that holds a raster of
    cols x rows over `bounds` (its CRS): GDAL's suggestion for EPSG:3857; in an
    unwrapped frame, which GDAL's suggestion wraps, the same rule by hand: the box of
    the densified edges, and as many pixels along its diagonal as the raster has."""
    from rasterio.transform import from_origin
    from rasterio.warp import calculate_default_transform

    left, bottom, right, top = bounds
    if frame.plain:
        return calculate_default_transform(
            frame.src, MERCATOR, cols, rows, left=left, bottom=bottom, right=right, top=top,
            **({} if resolution is None else {"resolution": (resolution, resolution)}))
    x0, y0, x1, y1 = mercator_bounds(frame, bounds)
    res = resolution or float(np.hypot(x1 - x0, y1 - y0) / np.hypot(cols, rows))
    w, h = max(1, int(np.ceil((x1 - x0) / res))), max(1, int(np.ceil((y1 - y0) / res)))
    return from_origin(x0, y1, res, res), w, h


def _for_the_browser(ids: np.ndarray) -> np.ndarray:
    """Patch ids as BokehJS takes them: int32 while they fit, else float64 (exact to
    2**53); JavaScript has no int64 typed array that Bokeh sends."""
    fits = not ids.size or ids.max() < 2**31 - 1
    return ids.astype(np.int32 if fits else np.float64)


def _terms(a: np.ndarray, b: np.ndarray, degree: int) -> np.ndarray:
    """(n, terms) a**i * b**j for i = 0..degree, j = 0..degree - i: the order in which
    the map's hover script (`mapview._GRID_JS`) sums them."""
    return np.column_stack([a**i * b**j for i in range(degree + 1)
                            for j in range(degree + 1 - i)])


@dataclass(frozen=True)
class GridPolynomial:
    """A product's patch grid seen from 3857 by polynomials, for the browser: the
    grid's column and row (continuous: cell c spans [c, c + 1)) of a 3857 point, and
    the 3857 point of a grid position. The browser cannot run pyproj; a polynomial of
    low degree follows the UTM -> Mercator map over a whole tile far below a patch
    (`error`), so the hover names the same patch as a click (pyproj) but within 1e-3
    patch of an edge."""

    box: tuple[float, float, float, float]  # 3857 box that x, y are scaled from, to [-1, 1]
    rows: int
    cols: int
    degree: int
    to_col: np.ndarray  # coefficients over `_terms` of the scaled (x, y)
    to_row: np.ndarray
    to_x: np.ndarray  # coefficients over `_terms` of (2 col / cols - 1, 2 row / rows - 1)
    to_y: np.ndarray
    error: float  # largest |column or row| off pyproj on points between the fitted ones

    @classmethod
    def fit(cls, product: Product, grid: PatchGrid, degree: int = HOVER_DEGREE,
            n: int = 33, frame: Frame | None = None) -> GridPolynomial:
        """Least squares on an n x n lattice of grid positions (corners included),
        checked on the (n - 1) x (n - 1) lattice between them; the degree is raised
        until the check is within MAX_HOVER_ERROR patch (a product far larger than a
        tile)."""
        frame = frame or Frame(product.crs)
        tr = _transformer(frame.src, frame.dst)
        left, bottom, right, top = grid.bounds

        def lattice(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            c, r = (a.ravel() for a in np.meshgrid(u * grid.cols, u * grid.rows))
            x, y = tr.transform(left + c / grid.cols * (right - left),
                                top - r / grid.rows * (top - bottom))
            return c, r, np.asarray(x), np.asarray(y)

        c, r, x, y = lattice(np.linspace(0.0, 1.0, n))
        ce, re_, xe, ye = lattice((np.arange(n - 1) + 0.5) / (n - 1))
        box = (float(x.min()), float(y.min()), float(x.max()), float(y.max()))

        def scaled(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return (2 * (x - box[0]) / (box[2] - box[0]) - 1,
                    2 * (y - box[1]) / (box[3] - box[1]) - 1)

        while True:
            fwd, back = _terms(*scaled(x, y), degree), _terms(2 * c / grid.cols - 1,
                                                              2 * r / grid.rows - 1, degree)
            to_col, to_row, to_x, to_y = (np.linalg.lstsq(m, v, rcond=None)[0] for m, v in
                                          ((fwd, c), (fwd, r), (back, x), (back, y)))
            m = _terms(*scaled(xe, ye), degree)
            error = float(max(np.abs(m @ to_col - ce).max(), np.abs(m @ to_row - re_).max()))
            if error <= MAX_HOVER_ERROR or degree >= 8:
                return cls(box, grid.rows, grid.cols, degree, to_col, to_row, to_x, to_y,
                           error)
            degree += 1

    def grid_at(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(column, row), continuous, of 3857 points: what the browser computes."""
        b = self.box
        m = _terms(2 * (np.asarray(x, np.float64) - b[0]) / (b[2] - b[0]) - 1,
                   2 * (np.asarray(y, np.float64) - b[1]) / (b[3] - b[1]) - 1, self.degree)
        return m @ self.to_col, m @ self.to_row

    def mercator_at(self, col: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """3857 (x, y) of continuous grid positions."""
        m = _terms(2 * np.asarray(col, np.float64) / self.cols - 1,
                   2 * np.asarray(row, np.float64) / self.rows - 1, self.degree)
        return m @ self.to_x, m @ self.to_y

    def packed(self) -> np.ndarray:
        """One float64 array for the browser: box, degree, cols, rows, then the four
        coefficient blocks (to_col, to_row, to_x, to_y)."""
        head = [*self.box, self.degree, self.cols, self.rows]
        return np.concatenate([np.asarray(head, np.float64), self.to_col, self.to_row,
                               self.to_x, self.to_y])


@dataclass
class MercatorLayer:
    """One product's patch grid as the map sees it in EPSG:3857."""

    product: Product
    grid: PatchGrid
    bounds: tuple[float, float, float, float]  # of the overlay image, in 3857
    shape: tuple[int, int]  # rows, cols of the overlay image
    # (rows * cols,) int32, bottom row first (Bokeh): grid cell, or pad; None: made from
    # bounds and shape when first asked for (the map uses the views' index maps)
    _index: np.ndarray | None = field(default=None, repr=False)
    _centres: tuple | None = field(default=None, repr=False)
    _pixel_rows: np.ndarray | None = field(default=None, repr=False)
    _score_rows: np.ndarray | None = field(default=None, repr=False)
    _polynomial: GridPolynomial | None = field(default=None, repr=False)
    frame: Frame = None  # type: ignore[assignment]  # None: the product's plain frame

    def __post_init__(self) -> None:
        if self.frame is None:
            self.frame = Frame(self.product.crs)

    @property
    def product_id(self) -> str:
        return self.grid.product_id

    @property
    def index(self) -> np.ndarray:
        """Per pixel of the image (`bounds`, `shape`), the grid cell under its centre,
        or `pad` (reprojected with nearest once, from the whole grid)."""
        if self._index is None:
            from rasterio.transform import from_bounds
            from rasterio.warp import Resampling, reproject

            g, (h, w) = self.grid, self.shape
            left, bottom, right, top = g.bounds
            cells = np.arange(g.rows * g.cols, dtype=np.int32).reshape(g.rows, g.cols)
            out = np.full((h, w), -1, np.int32)
            reproject(cells, out, src_transform=from_bounds(left, bottom, right, top, g.cols,
                                                            g.rows),
                      src_crs=self.frame.src, src_nodata=-1,
                      dst_transform=from_bounds(*self.bounds, w, h), dst_crs=self.frame.dst,
                      dst_nodata=-1, resampling=Resampling.nearest)
            self._index = np.where(out >= 0, out, self.pad)[::-1].reshape(-1).astype(np.int32)
        return self._index

    @property
    def pad(self) -> int:
        return self.grid.rows * self.grid.cols

    def levels(self, scores: np.ndarray | None) -> np.ndarray:
        """(rows, cols) uint8 overlay in 3857, bottom row first (as Bokeh draws images):
        the bytes of `PatchGrid.levels` (0: no score, else 1 + round(score * 254)), one
        per pixel, each its patch's score gathered first: the work follows the image's
        pixels, not the session's patches (10M scores are never all quantised)."""
        out = np.zeros(self.shape[0] * self.shape[1], np.uint8)
        if scores is None or not len(self.grid.flat):
            return out.reshape(self.shape)
        rows = self.score_rows
        hit = rows >= 0
        v = np.nan_to_num(scores[rows[hit]], nan=0.0)
        out[hit] = (np.clip(v, 0.0, 1.0) * 254.0 + 1.5).astype(np.uint8)
        return out.reshape(self.shape)

    @property
    def score_rows(self) -> np.ndarray:
        """Per overlay pixel, the row of its patch in the session's scores, or -1 where
        there is no session patch (computed once)."""
        if self._score_rows is None:
            self._score_rows = np.append(self.grid.session_rows.astype(np.int64),
                                         -1)[self.pixel_rows]
        return self._score_rows

    @property
    def pixel_rows(self) -> np.ndarray:
        """Per overlay pixel, its patch's position in the grid's session patches
        (`grid.flat`), or len(grid.flat) where there is none (computed once)."""
        if self._pixel_rows is None:
            g = self.grid
            of_cell = np.full(self.pad + 1, len(g.flat), np.int32)
            of_cell[g.flat] = np.arange(len(g.flat), dtype=np.int32)
            self._pixel_rows = of_cell[self.index]
        return self._pixel_rows

    def cell_ids(self) -> tuple[float, np.ndarray]:
        """How the browser's hover finds the patch id of a grid cell (row-major from the
        top): (first, empty) when every cell has a patch and the ids run first + cell
        (an ingested product's grid: nothing to send but one number, where a 10M-patch
        grid's ids would be 40 MB), else (-1, the id of each cell, -1: none; int32
        while the ids fit, else float64)."""
        ids = np.asarray(self.grid.patch_ids, np.int64)
        if ids.size and ids[0] >= 0 and np.array_equal(ids, ids[0] + np.arange(ids.size)):
            return float(ids[0]), np.empty(0, np.int32)
        return -1.0, _for_the_browser(ids)

    @property
    def polynomial(self) -> GridPolynomial:
        """3857 <-> grid polynomials of this layer's product grid (fitted once)."""
        if self._polynomial is None:
            self._polynomial = GridPolynomial.fit(self.product, self.grid,
                                                  frame=self.frame)
        return self._polynomial

    def cell_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Grid cell (row-major) under 3857 points, -1 outside the grid."""
        g = self.grid
        px, py = _transformer(self.frame.dst, self.frame.src).transform(
            np.asarray(x, np.float64), np.asarray(y, np.float64))
        left, bottom, right, top = g.bounds
        c = np.floor((px - left) / (right - left) * g.cols)
        r = np.floor((top - py) / (top - bottom) * g.rows)
        ok = np.isfinite(c) & np.isfinite(r) & (c >= 0) & (c < g.cols) & (r >= 0) & (r < g.rows)
        return np.where(ok, r * g.cols + c, -1).astype(np.int64)

    def patch_at(self, x: float, y: float) -> int | None:
        """Patch id under the 3857 point (x, y), or None."""
        cell = int(self.cell_at(np.array([x]), np.array([y]))[0])
        if cell < 0:
            return None
        pid = int(self.grid.patch_ids[cell])
        return pid if pid >= 0 else None

    def centres(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(patch ids, x, y) in 3857 of the patch centres of the session's patches of this
        product (every patch of the grid without a session), computed once."""
        if self._centres is None:
            g = self.grid
            cells = g.flat if len(g.flat) else np.flatnonzero(g.patch_ids >= 0)
            ids = g.patch_ids[cells]
            r, c = np.divmod(cells, g.cols)
            left, bottom, right, top = g.bounds
            px = left + (c + 0.5) * (right - left) / g.cols
            py = top - (r + 0.5) * (top - bottom) / g.rows
            x, y = _transformer(self.frame.src, self.frame.dst).transform(px, py)
            self._centres = (ids.astype(np.int64), np.asarray(x), np.asarray(y))
        return self._centres

    def inside(self, shape: BaseGeometry) -> np.ndarray:
        """Patch ids whose centre lies inside a 3857 (multi)polygon (shapely's
        `contains_xy`: on the edge is outside), after a bounding-box cut."""
        import shapely

        ids, x, y = self.centres()
        x0, y0, x1, y1 = shape.bounds
        near = np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))
        if not len(near):
            return np.empty(0, np.int64)
        shapely.prepare(shape)
        return ids[near[shapely.contains_xy(shape, x[near], y[near])]]

    def quads(self, patch_ids: np.ndarray) -> tuple[list[list[float]], list[list[float]],
                                                    np.ndarray]:
        """The four corners in 3857 of each patch of `patch_ids` that is in this grid:
        (xs, ys, the ids found)."""
        g = self.grid
        ids = np.asarray(patch_ids, np.int64)
        if not len(ids):
            return [], [], ids
        cells = np.flatnonzero(np.isin(g.patch_ids, ids))
        found = g.patch_ids[cells]
        r, c = np.divmod(cells, g.cols)
        left, bottom, right, top = g.bounds
        dx, dy = (right - left) / g.cols, (top - bottom) / g.rows
        x0, x1 = left + c * dx, left + (c + 1) * dx
        y0, y1 = top - (r + 1) * dy, top - r * dy
        cx = np.stack([x0, x1, x1, x0], axis=1).ravel()
        cy = np.stack([y0, y0, y1, y1], axis=1).ravel()
        mx, my = _transformer(self.frame.src, self.frame.dst).transform(cx, cy)
        mx, my = np.asarray(mx).reshape(-1, 4), np.asarray(my).reshape(-1, 4)
        return mx.tolist(), my.tolist(), found


def mercator_layer(product: Product, grid: PatchGrid, max_px: int = MAX_OVERLAY_PX,
                   oversample: float = OVERSAMPLE, frame: Frame | None = None,
                   ) -> MercatorLayer:
    """`grid` in 3857: its box, and an image of square pixels a little smaller than a
    patch (`oversample`; at most `max_px` on the longest side) whose index map (each
    pixel's grid cell, `MercatorLayer.index`) is made when first asked for. Smaller than
    a patch, so that the pixel under a patch's centre is that patch (the UTM grid is
    turned by up to ~3 degrees in 3857)."""
    frame = frame or Frame(product.crs)
    one, w, h = suggested_transform(frame, grid.cols, grid.rows, grid.bounds)
    res = max(abs(one.a), abs(one.e)) / oversample
    res = max(res, res * max(w, h) * oversample / max_px)
    dst, w, h = suggested_transform(frame, grid.cols, grid.rows, grid.bounds, res)
    b = (dst.c, dst.f + h * dst.e, dst.c + w * dst.a, dst.f)
    return MercatorLayer(product, grid, (float(b[0]), float(min(b[1], b[3])), float(b[2]),
                                         float(max(b[1], b[3]))), (h, w), frame=frame)


def fine_resolution(product: Product, grid: PatchGrid,
                    oversample: float = OVERSAMPLE, frame: Frame | None = None) -> float:
    """The finest overlay pixel worth drawing, in 3857 metres: `oversample` pixels per
    patch each way, so that the pixel under a patch's centre is that patch."""
    one, _, _ = suggested_transform(frame or Frame(product.crs), grid.cols, grid.rows,
                                    grid.bounds)
    return max(abs(one.a), abs(one.e)) / oversample


def view_layer(layer: MercatorLayer, view: tuple[float, float, float, float] | None,
               screen: tuple[int, int], oversample: float = VIEW_OVERSAMPLE,
               ) -> MercatorLayer | None:
    """The overlay of `layer`'s product for the map showing the 3857 box `view` (None:
    the whole product) on `screen` (width, height) device pixels: square pixels of the
    view's resolution, but never finer than `fine_resolution` (zoomed in, the visible
    part at full patch resolution), over the visible part of the product only. None
    when the product is out of view. Its index map is reprojected from the grid cells
    under the view alone, so the cost follows the screen, not the product."""
    from rasterio.transform import from_origin
    from rasterio.warp import Resampling, reproject, transform_bounds

    g = layer.grid
    full = layer.bounds
    v = full if view is None else view
    x0, y0 = max(full[0], v[0]), max(full[1], v[1])
    x1, y1 = min(full[2], v[2]), min(full[3], v[3])
    if x1 <= x0 or y1 <= y0:
        return None
    sw, sh = max(1, int(screen[0])), max(1, int(screen[1]))
    res = max((v[2] - v[0]) / sw, (v[3] - v[1]) / sh,
              fine_resolution(layer.product, g, oversample, layer.frame))
    w, h = max(1, int(np.ceil((x1 - x0) / res))), max(1, int(np.ceil((y1 - y0) / res)))
    x1, y0 = x0 + w * res, y1 - h * res  # whole pixels from the top-left corner
    # the grid cells under the view (one cell of margin), in the product's CRS
    left, bottom, right, top = g.bounds
    dx, dy = (right - left) / g.cols, (top - bottom) / g.rows
    sx0, sy0, sx1, sy1 = transform_bounds(layer.frame.dst, layer.frame.src, x0, y0, x1,
                                          y1, densify_pts=21)
    c0 = int(np.clip(np.floor((sx0 - left) / dx) - 1, 0, g.cols - 1))
    c1 = int(np.clip(np.ceil((sx1 - left) / dx) + 1, c0 + 1, g.cols))
    r0 = int(np.clip(np.floor((top - sy1) / dy) - 1, 0, g.rows - 1))
    r1 = int(np.clip(np.ceil((top - sy0) / dy) + 1, r0 + 1, g.rows))
    cells = (np.arange(r0, r1, dtype=np.int32)[:, None] * np.int32(g.cols)
             + np.arange(c0, c1, dtype=np.int32)[None, :])
    out = np.full((h, w), -1, np.int32)
    reproject(cells, out, src_transform=from_origin(left + c0 * dx, top - r0 * dy, dx, dy),
              src_crs=layer.frame.src, src_nodata=-1,
              dst_transform=from_origin(x0, y1, res, res), dst_crs=layer.frame.dst,
              dst_nodata=-1, resampling=Resampling.nearest)
    index = np.where(out >= 0, out, layer.pad)[::-1].reshape(-1).astype(np.int32)
    return MercatorLayer(layer.product, g, (float(x0), float(y0), float(x1), float(y1)),
                         (h, w), index, frame=layer.frame)


def warp_view(product: Product, false_colour: bool, stretch: tuple[np.ndarray, np.ndarray],
              view: tuple[float, float, float, float] | None, screen_px: int = MAX_SCREEN_PX,
              frame: Frame | None = None,
              ) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
    """The product's colour image over the visible 3857 box `view` (None: all of it) at
    about `screen_px` pixels across the view: (rows, cols) uint32 RGBA bottom row first
    and its 3857 bounds, or None when the product is not in view."""
    from rasterio.transform import from_bounds
    from rasterio.warp import Resampling, reproject, transform_bounds

    frame = frame or Frame(product.crs)
    full = mercator_bounds(frame, product.bounds)
    v = full if view is None else view
    x0, y0 = max(full[0], v[0]), max(full[1], v[1])
    x1, y1 = min(full[2], v[2]), min(full[3], v[3])
    if x1 <= x0 or y1 <= y0:
        return None
    res = max(v[2] - v[0], v[3] - v[1]) / screen_px
    w = int(min(MAX_SCREEN_PX, max(2, np.ceil((x1 - x0) / res))))
    h = int(min(MAX_SCREEN_PX, max(2, np.ceil((y1 - y0) / res))))
    sx0, sy0, sx1, sy1 = transform_bounds(frame.dst, frame.src, x0, y0, x1, y1,
                                          densify_pts=21)
    data, sb = read_view(product, colour_bands(product, false_colour), (sx0, sx1), (sy0, sy1),
                         max_px=int(max(w, h) * 1.5) + 1)
    rgba = np.moveaxis(to_rgb(data, stretch), -1, 0)
    out = np.zeros((4, h, w), np.uint8)
    reproject(rgba, out, src_transform=from_bounds(*sb, rgba.shape[2], rgba.shape[1]),
              src_crs=frame.src, dst_transform=from_bounds(x0, y0, x1, y1, w, h),
              dst_crs=frame.dst, resampling=Resampling.nearest)
    img = np.ascontiguousarray(np.moveaxis(out, 0, -1)[::-1])
    return img.view(np.uint32).reshape(h, w), (x0, y0, x1, y1)


def selected_patches(layers: list[MercatorLayer], shape: BaseGeometry) -> np.ndarray:
    """Sorted ids of the patches (of every layer) whose centre is inside the 3857 shape."""
    parts = [lay.inside(shape) for lay in layers]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)


def shape_of(geometry: dict) -> BaseGeometry | None:
    """A Bokeh selection geometry (box: type 'rect' x0..y1; lasso and polygon: type
    'poly' x, y lists) as a shapely polygon in 3857, or None when it has no area."""
    import shapely

    kind = geometry.get("type")
    if kind == "rect":
        poly = shapely.box(geometry["x0"], geometry["y0"], geometry["x1"], geometry["y1"])
    elif kind == "poly":
        xs, ys = list(geometry.get("x") or []), list(geometry.get("y") or [])
        if len(xs) < 3:
            return None
        poly = shapely.make_valid(shapely.Polygon(list(zip(xs, ys))))
    else:
        return None
    return poly if poly.area > 0 else None


def to_lonlat(shape: BaseGeometry) -> BaseGeometry:
    """A 3857 shape in EPSG:4326 (edges densified first: a straight line on the map stays
    that line on the ground). Past x = 20,037 km (a map across 180) the longitudes run
    on past 180, as `aoi.as_aoi` takes them."""
    import shapely

    x0, y0, x1, y1 = shape.bounds
    dense = shapely.segmentize(shape, max(x1 - x0, y1 - y0) / 100 or 1.0)
    tr = _transformer(_MERCATOR_ON.format(x0=0.0), _LONLAT_ON)
    return shapely.transform(dense, lambda xy: np.column_stack(tr.transform(xy[:, 0],
                                                                            xy[:, 1])))


def from_lonlat(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3857 x, y of longitudes and latitudes (past 180: past x = 20,037 km)."""
    x, y = _transformer(_LONLAT_ON, _MERCATOR_ON.format(x0=0.0)).transform(
        np.asarray(lon), np.asarray(lat))
    return np.asarray(x), np.asarray(y)
