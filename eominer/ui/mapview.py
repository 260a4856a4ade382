"""Map: every product of the scope on one map in Web Mercator (EPSG:3857), each in true
or false colour at screen resolution, the score of every session patch as a colour
overlay, outlines of labelled patches (across products), the change layer, and an
optional basemap from an XYZ tile URL (off unless configured: nothing else is fetched).

Clicking a patch (in any product) selects it; shift-click labels it yes, alt-click (or
ctrl-click) no. A box, lasso or polygon drawn with the map's select tools either labels
every session patch whose centre is under it (the count is shown first) or becomes the
area of interest of a new session in the Scope tab. The geometry is in
`eominer.ui.webmercator`; the figure is plain Bokeh so that a recolour or a pan
replaces only the data of its glyphs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import panel as pn
import param
from panel.viewable import Viewer

from eominer.store.records import Product
from eominer.ui.layers import (
    LEVEL_RANGE,
    MAX_SCREEN_PX,
    change_layer_path,
    patch_grid,
    score_lut,
)
from eominer.ui.state import AppState, Soon
from eominer.ui.thumbnails import product_stretch
from eominer.ui.webmercator import (
    Frame,
    MercatorLayer,
    map_frames,
    mercator_bounds,
    mercator_layer,
    selected_patches,
    shape_of,
    suggested_transform,
    to_lonlat,
    view_layer,
    warp_view,
)

if TYPE_CHECKING:
    from bokeh.events import DoubleTap, RangesUpdate, SelectionGeometry, Tap
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.models.renderers import GlyphRenderer
    from bokeh.plotting import figure
    from shapely.geometry.base import BaseGeometry

LABEL_COLOURS = {1: "#00c853", -1: "#ff1744"}
SELECTED_COLOUR = "#ffd600"
REVIEW_COLOUR = "#ff6d00"  # the Review tab's selection (its thumbnails' ring), docs/app.md
REVIEW_WIDTH = {"selected": 3.5, "above": 1.0}  # label outlines are 2 px
MAX_ABOVE_OUTLINES = 5000  # above-threshold outlines drawn while reviewing (the best)
CHANGE_RANGE = (0.0, 1.0)  # change probability
BASEMAP_ENV = "EOMINER_BASEMAP_URL"

# hover on the (invisible) per-product layer `_ids_src`: its images are 1 x 1 over each
# product's box (what the hover hits); the patch comes from the exact grid, as a click's
# (`webmercator.GridPolynomial`: 3857 -> column, row; the cell's id `first` + cell, or
# from `cells`), and the score from the overlay's pixel under that patch's centre (the
# overlay covers the view at the screen's resolution; the pixel under a patch's centre
# is that patch)
_GRID_FUNCS = """
const col = (s, k) => s.data instanceof Map ? s.data.get(k) : s.data[k]
// sum of cf[off + t] * a**i * b**j in webmercator._terms's order
function poly(g, off, a, b) {
  const deg = g[4]
  let s = 0, t = off, ai = 1
  for (let i = 0; i <= deg; i++) {
    let p = ai
    for (let j = 0; j <= deg - i; j++) { s += g[t++] * p; p *= b }
    ai *= a
  }
  return s
}
// the grid cell (row-major) under the 3857 point, -1 outside the grid
function cellAt(g, x, y) {
  const n = (g[4] + 1) * (g[4] + 2) / 2, cols = g[5], rows = g[6]
  const a = 2 * (x - g[0]) / (g[2] - g[0]) - 1, b = 2 * (y - g[1]) / (g[3] - g[1]) - 1
  const c = Math.floor(poly(g, 7, a, b)), r = Math.floor(poly(g, 7 + n, a, b))
  return c >= 0 && c < cols && r >= 0 && r < rows ? r * cols + c : -1
}
// 3857 centre of a grid cell
function centreOf(g, cell) {
  const n = (g[4] + 1) * (g[4] + 2) / 2, cols = g[5], rows = g[6]
  const c = cell % cols + 0.5, r = Math.floor(cell / cols) + 0.5
  const a = 2 * c / cols - 1, b = 2 * r / rows - 1
  return [poly(g, 7 + 2 * n, a, b), poly(g, 7 + 3 * n, a, b)]
}
"""
_GRID_JS = _GRID_FUNCS + """
const ii = special_vars.image_index
const k = ii ? ii.index : -1
const g = k >= 0 ? col(ids, 'grid')[k] : null
const cell = g ? cellAt(g, special_vars.x, special_vars.y) : -1
const first = k >= 0 ? col(ids, 'first')[k] : -1  // ids first + cell, else looked up
const pid = cell < 0 ? -1 : first >= 0 ? first + cell : col(ids, 'cells')[k][cell]
"""
_PATCH_JS = _GRID_JS + "return pid >= 0 ? String(pid) : '-'"
# the hover's filter: a product's tooltip only where its grid is. Its 1 x 1 box is the
# grid's 3857 bounding box, larger than the (rotated) grid, so where boxes of products
# overlap, a product whose grid is not under the mouse would show a tooltip of its own
_IN_GRID_JS = _GRID_FUNCS + """
const ii = cb_data.vars.image_index
return ii != null && cellAt(col(ids, 'grid')[ii.index], cb_data.vars.x, cb_data.vars.y) >= 0
"""
_SCORE_JS = _GRID_JS + """
if (pid < 0) return 'none'
const j = Array.from(col(src, 'product')).indexOf(col(ids, 'product')[k])
if (j < 0) return 'none'
const img = col(src, 'image')[j], [h, w] = img.shape
const at = (x, y) => {
  const c = Math.floor((x - col(src, 'x')[j]) / col(src, 'dw')[j] * w)
  const r = Math.floor((y - col(src, 'y')[j]) / col(src, 'dh')[j] * h)
  return c >= 0 && c < w && r >= 0 && r < h ? img[r * w + c] : -1
}
const [cx, cy] = centreOf(g, cell)
let v = at(cx, cy)  // the centre out of view: the pixel under the mouse
if (v < 0) v = Math.max(0, at(special_vars.x, special_vars.y))
return v > 0 ? ((v - 1) / 254).toFixed(2) : 'none'
"""

# the change layer's probability under the mouse (its image of the same product)
_CHANGE_JS = """
const col = (s, k) => s.data instanceof Map ? s.data.get(k) : s.data[k]
const ii = special_vars.image_index
if (!ii) return 'none'
const j = Array.from(col(chg, 'product')).indexOf(col(ids, 'product')[ii.index])
if (j < 0) return 'none'
const img = col(chg, 'image')[j], [h, w] = img.shape
const c = Math.floor((special_vars.x - col(chg, 'x')[j]) / col(chg, 'dw')[j] * w)
const r = Math.floor((special_vars.y - col(chg, 'y')[j]) / col(chg, 'dh')[j] * h)
const v = c >= 0 && c < w && r >= 0 && r < h ? img[r * w + c] : NaN
return Number.isFinite(v) ? v.toFixed(2) : 'none'
"""
HOVER_ROWS = [("patch", "@image{patch}"), ("product", "@product"), ("score", "$x{score}")]
CHANGE_ROW = ("change", "$y{change}")  # while the change layer is drawn

# runs in the browser when the figure's frame size changes: the ranges grow to keep
# pixels square around the extent the server asked for (`fit`, stored on the figure)
_FIT_JS = """
const dpr = window.devicePixelRatio || 1  // the server draws the overlay for it
if (xr.tags[0] !== dpr) xr.tags = [dpr]
// before the first layout the frame's size is unset and reading it throws: a throw
// here would abort the rest of the server's message (the batch, the scores)
let w = 0, h = 0
try { w = cb_obj.inner_width; h = cb_obj.inner_height } catch (e) { return }
const want = cb_obj.tags && cb_obj.tags.length ? cb_obj.tags[0] : null
if (!want || !(w > 50 && h > 50) || cb_obj._eom_fitted === want.join(',')) return
cb_obj._eom_fitted = want.join(',')
const [lf, b, r, t] = want
const s = Math.max((r - lf) / w, (t - b) / h)
const cx = (lf + r) / 2, cy = (b + t) / 2
xr.setv({start: cx - s * w / 2, end: cx + s * w / 2})
yr.setv({start: cy - s * h / 2, end: cy + s * h / 2})
"""


def _empty_images() -> dict[str, list]:
    return {"image": [], "x": [], "y": [], "dw": [], "dh": [], "product": []}


def _empty_ids() -> dict[str, list]:
    return {**_empty_images(), "first": [], "cells": [], "grid": []}


def ids_data(layers: Iterable[MercatorLayer]) -> dict[str, list]:
    """The hover layer's columns for these `MercatorLayer`s: per product its box (a 1 x 1
    image), its patch ids (`MercatorLayer.cell_ids`) and its grid's polynomials."""
    data = _empty_ids()
    for lay in layers:
        lf, b, r, t = lay.bounds
        first, cells = lay.cell_ids()
        for k, v in zip(("image", "x", "y", "dw", "dh", "product", "first", "cells", "grid"),
                        (np.zeros((1, 1), np.int32), lf, b, r - lf, t - b, lay.product_id,
                         first, cells, lay.polynomial.packed())):
            data[k].append(v)
    return data


def hover_tool(renderer: GlyphRenderer, ids: ColumnDataSource, overlay: ColumnDataSource,
               change: ColumnDataSource, rows: list[tuple[str, str]]) -> HoverTool:
    """The map's HoverTool on the invisible per-product layer `renderer` (source `ids`):
    patch and product, the score under it from `overlay`, the change probability from
    `change`. The rows come and go with the change layer (`MapView._hover_rows`); "$x"
    and "$y" only carry the score's and the change's formatters. A product's tooltip is
    shown only where its grid is (`_IN_GRID_JS`)."""
    from bokeh.models import CustomJS, CustomJSHover, HoverTool

    return HoverTool(
        renderers=[renderer], description="Patch, product, score and change", tooltips=rows,
        formatters={"@image": CustomJSHover(args={"ids": ids}, code=_PATCH_JS),
                    "$x": CustomJSHover(args={"src": overlay, "ids": ids}, code=_SCORE_JS),
                    "$y": CustomJSHover(args={"chg": change, "ids": ids}, code=_CHANGE_JS)},
        filters={"@product": CustomJS(args={"ids": ids}, code=_IN_GRID_JS)})


class MapView(Viewer):
    state = param.ClassSelector(class_=AppState)
    false_colour = param.Boolean(default=False, label="False colour (NIR, red, green)")
    opacity = param.Number(default=0.6, bounds=(0.0, 1.0), step=0.05, label="Overlay opacity")
    show_labels = param.Boolean(default=True, label="Labelled patches")
    show_change = param.Boolean(default=False, label="Change layer")
    basemap = param.Boolean(default=False, label="Basemap")
    basemap_url = param.String(default=None, allow_None=True,
                               doc=f"XYZ tile URL ({{z}}/{{x}}/{{y}}); default ${BASEMAP_ENV}")
    shape_action = param.Selector(default="label", objects=["label", "area"],
                                  doc="what a box, lasso or polygon drawn on the map does")
    overlay_version = param.Integer(default=0, doc="bumped after the overlay is re-drawn")
    base_version = param.Integer(default=0, doc="bumped after the images are re-drawn")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        from bokeh.models import ColumnDataSource

        if self.basemap_url is None:
            self.basemap_url = os.environ.get(BASEMAP_ENV, "").strip()
        self.basemap = bool(self.basemap_url)
        self._layers: list[MercatorLayer] = []
        self._layers_key: tuple | None = None
        self._view: tuple[float, float, float, float] | None = None  # 3857, last drawn
        self._extent: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
        self._change_cache: dict[str, tuple | None] = {}
        self._scope_ids: tuple[str, ...] | None = None  # the products of the last scope
        self._frames: dict[str, Frame] = {}  # each product's on this map (map_frames)
        self._bases_key: tuple | None = None  # what the images on the map were drawn for
        self._shape = None  # the box / lasso / polygon waiting for a decision (3857)
        self._pending = np.empty(0, np.int64)
        self._base_src = ColumnDataSource(_empty_images(), name="eom-base")
        self._overlay_src = ColumnDataSource(_empty_images(), name="eom-overlay")
        self._ids_src = ColumnDataSource(_empty_ids(), name="eom-ids")
        self._ids_key: tuple | None = None
        self._view_layers: list[MercatorLayer] = []  # the overlay's, for the view
        self._view_key: tuple | None = None
        self._overlay_soon = Soon(self._overlay_after_move)  # after a pan or zoom
        self._change_src = ColumnDataSource(_empty_images(), name="eom-change")
        self._outline_src = ColumnDataSource({"xs": [], "ys": [], "colour": []},
                                             name="eom-outlines")
        self._review_src = ColumnDataSource({"xs": [], "ys": [], "width": [], "id": []},
                                            name="eom-review")
        self._shape_src = ColumnDataSource({"xs": [], "ys": []}, name="eom-shape")
        self._fig = None
        self._overlay_renderer = None
        self._tiles = None
        self._hover = None
        self._last_tap: tuple[int, str] | None = None  # (patch, product) of the last tap
        self._change_box = pn.widgets.Checkbox.from_param(self.param.show_change,
                                                          css_classes=["eom-show-change"])
        self._change_legend = pn.pane.HTML(_change_legend(), visible=False,
                                           css_classes=["eom-change-legend"])
        self._basemap_box = pn.widgets.Checkbox.from_param(
            self.param.basemap, disabled=not self.basemap_url, css_classes=["eom-basemap"],
            name="Basemap" if self.basemap_url else f"Basemap (none: set ${BASEMAP_ENV})")
        self._shape_radio = pn.widgets.RadioButtonGroup(
            options={"Box/lasso labels patches": "label", "Box/polygon is the area": "area"},
            value=self.shape_action, css_classes=["eom-shape-action"])
        self._shape_radio.link(self, value="shape_action")
        self._shape_info = pn.pane.HTML("", css_classes=["eom-shape-info"])
        self._yes = pn.widgets.Button(label="Label yes", color="success",
                                      css_classes=["eom-shape-yes"], visible=False)
        self._no = pn.widgets.Button(label="Label no", color="danger",
                                     css_classes=["eom-shape-no"], visible=False)
        self._use_area = pn.widgets.Button(label="Area of interest of a new session",
                                           color="primary", visible=False,
                                           css_classes=["eom-shape-area"])
        self._clear = pn.widgets.Button(label="Clear", css_classes=["eom-shape-clear"],
                                        visible=False)
        self._yes.on_click(lambda _: self.label_shape(1))
        self._no.on_click(lambda _: self.label_shape(-1))
        self._use_area.on_click(lambda _: self.use_area())
        self._clear.on_click(lambda _: self.clear_shape())
        self._version = pn.pane.HTML("", css_classes=["eom-overlay-version"], width=0,
                                     height=0, margin=0)
        self._base_marker = pn.pane.HTML("", css_classes=["eom-base-version"], width=0,
                                         height=0, margin=0)
        # the versions as markers the browser tests wait on (watched once, here: not in
        # __panel__, which would add a watcher each time the view is laid out)
        self.param.watch(lambda e: setattr(self._version, "object",
                                           f'<span data-v="{e.new}"></span>'), "overlay_version")
        self.param.watch(lambda e: setattr(self._base_marker, "object",
                                           f'<span data-v="{e.new}"></span>'), "base_version")
        self._message = pn.pane.HTML("", css_classes=["eom-map-message"])
        self._plot = pn.pane.Bokeh(self._figure(), sizing_mode="stretch_both", min_height=520)
        self.param.watch(lambda _: self._change_controls(), "show_change")
        self.param.watch(lambda _: self._draw_change(), ["show_change", "opacity"])
        self.param.watch(lambda _: self._draw_bases(self._view), "false_colour")
        self.param.watch(self._on_opacity, "opacity")
        self.param.watch(lambda _: self._push_outlines(), "show_labels")
        self.param.watch(self._on_basemap, "basemap")
        self.param.watch(lambda _: self.clear_shape(), "shape_action")
        self.state.param.watch(lambda _: self._scope_changed(), ["product_ids", "session"])
        self.state.param.watch(self._centre, "focus")
        self.state.param.watch(self._push_scores, "scores_version")
        self.state.param.watch(self._push_outlines, ["labels_version", "selected"])
        self.state.param.watch(self._push_review, ["review_ids", "reviewing",
                                                   "review_threshold", "scores_version"])
        self._scope_changed()

    # ---- what is shown -------------------------------------------------------------
    def products(self) -> list[Product]:
        """The products on the map: the session's, else the scope's, else every one."""
        s = self.state
        ids = list(s.session.product_ids) if s.session is not None else list(s.product_ids)
        every = s.store.product_list()  # one query, not one per product
        if not ids:
            return every
        by_id = {p.product_id: p for p in every}
        return [by_id[pid] for pid in ids if pid in by_id]

    def _scope_changed(self) -> None:
        """A new scope or session. Reopening a session by its link changes both (and the
        session twice): what depends on the products alone (extent, change layers, the
        images of the same view) is done once per set of products."""
        self.clear_shape()
        products = self.products()
        self._products = products
        self._layers_key = None
        ids = tuple(p.product_id for p in products)
        if products and self.state.product_id not in ids:
            self.state.product_id = products[0].product_id
        if ids != self._scope_ids:
            self._scope_ids = ids
            self._change_cache = {}
            self._frames = dict(zip(ids, map_frames(products)))
            bounds = [mercator_bounds(self._frames[p.product_id], p.bounds) for p in products]
            if bounds:
                b = np.asarray(bounds)
                self._extent = (float(b[:, 0].min()), float(b[:, 1].min()),
                                float(b[:, 2].max()), float(b[:, 3].max()))
            self._change_controls(self._has_change())
        self.fit(self._extent)  # draws the overlay of the new layers
        self._push_outlines()
        self._push_review()

    def _has_change(self) -> bool:
        try:
            return any(change_layer_path(self.state.store, p) is not None
                       for p in self._products)
        except Exception as exc:  # an older database without pairs: no change layer
            self.state.say(f"change layer: {exc}", "warning")
            return False

    def _change_controls(self, has: bool | None = None) -> None:
        """The change layer's box is ticked (and can be) only when a product on the map
        has one; its legend shows while it is drawn."""
        if has is not None:
            self._change_box.disabled = not has
            self._change_box.label = "Change layer" + ("" if has else " (none on the map)")
            self.show_change = has
        self._change_legend.visible = self.show_change and not self._change_box.disabled
        if self._hover is not None:  # the hover's "change" row goes with the layer
            self._hover.tooltips = self._hover_rows()

    def _frame(self, product: Product) -> Frame:
        """The product's frame on this map (map_frames), EPSG:3857 when unknown."""
        return self._frames.get(product.product_id) or Frame(product.crs)

    def layers(self) -> list[MercatorLayer]:
        """The session's patch grids in 3857 (index maps built once per session)."""
        s = self.state
        sess = s.session
        if sess is None:
            return []
        key = (sess.session_id, sess.level, tuple(sess.product_ids))
        if key != self._layers_key:
            self._layers = []
            self._layers_key = key
            for p in self._products:
                try:
                    g = patch_grid(s.store, p, sess.level, sess.patch_ids)
                except Exception as exc:  # a product without patches at this level
                    self.state.say(f"patch grid: {exc}", "error")
                    continue
                self._layers.append(mercator_layer(p, g, frame=self._frame(p)))
        return self._layers

    # ---- the figure -----------------------------------------------------------------
    def _figure(self) -> figure:
        from bokeh.events import DoubleTap, RangesUpdate, SelectionGeometry, Tap
        from bokeh.models import (
            BoxSelectTool,
            CustomJS,
            LassoSelectTool,
            LinearColorMapper,
            PolySelectTool,
            Range1d,
            WMTSTileSource,
        )
        from bokeh.palettes import Viridis256
        from bokeh.plotting import figure

        fig = figure(x_range=Range1d(0, 1, name="eom-x"), y_range=Range1d(0, 1, name="eom-y"),
                     sizing_mode="stretch_both", min_border=0, toolbar_location="right",
                     tools="pan,wheel_zoom,reset,tap", active_scroll="wheel_zoom",
                     name="eom-figure", output_backend="canvas", css_classes=["eom-map"])
        fig.axis.visible = False
        fig.grid.visible = False
        fig.outline_line_color = None
        fig.background_fill_color = "#f4f4f4"
        if self.basemap_url:
            self._tiles = fig.add_tile(WMTSTileSource(url=self.basemap_url))
            if not self.basemap:
                fig.renderers = [r for r in fig.renderers if r is not self._tiles]
        fig.image_rgba("image", "x", "y", "dw", "dh", source=self._base_src)
        self._change_renderer = fig.image(
            "image", "x", "y", "dw", "dh", source=self._change_src, global_alpha=self.opacity,
                  color_mapper=LinearColorMapper(palette=_change_palette(), low=CHANGE_RANGE[0],
                                                 high=CHANGE_RANGE[1], nan_color=(0, 0, 0, 0)))
        ids = fig.image("image", "x", "y", "dw", "dh", source=self._ids_src, global_alpha=0,
                        color_mapper=LinearColorMapper(palette=["#00000000"], low=0, high=1))
        self._overlay_renderer = fig.image(
            "image", "x", "y", "dw", "dh", source=self._overlay_src, global_alpha=self.opacity,
            color_mapper=LinearColorMapper(palette=list(Viridis256), low=LEVEL_RANGE[0],
                                           high=LEVEL_RANGE[1], low_color=(0, 0, 0, 0)))
        fig.patches("xs", "ys", source=self._outline_src, fill_alpha=0, line_color="colour",
                    line_width=2)
        fig.patches("xs", "ys", source=self._review_src, fill_alpha=0,
                    line_color=REVIEW_COLOUR, line_width="width", name="eom-review-outlines")
        shape = fig.patches("xs", "ys", source=self._shape_src, fill_color="#1565c0",
                            fill_alpha=0.12, line_color="#1565c0", line_dash="dashed",
                            line_width=2)
        self._hover = hover_tool(ids, self._ids_src, self._overlay_src, self._change_src,
                                 self._hover_rows())
        fig.add_tools(
            BoxSelectTool(renderers=[shape], description="Box: label patches or an area"),
            LassoSelectTool(renderers=[shape], description="Lasso: label patches or an area"),
            PolySelectTool(renderers=[shape], description="Polygon: label patches or an area"),
            self._hover)
        fit = CustomJS(args={"xr": fig.x_range, "yr": fig.y_range}, code=_FIT_JS)
        fig.js_on_change("inner_width", fit)
        fig.js_on_change("inner_height", fit)
        fig.js_on_change("tags", fit)
        fig.on_event(Tap, self._on_tap)
        fig.on_event(DoubleTap, self._on_double_tap)
        fig.on_event(RangesUpdate, self._on_ranges)
        fig.on_event(SelectionGeometry, self._on_shape)
        self._fig = fig
        return fig

    def fit(self, bounds: tuple[float, float, float, float]) -> None:
        """Show `bounds` (3857) whole, pixels square: the browser widens the ranges to
        the frame's aspect (`_FIT_JS`); the images are drawn for that view at once."""
        fig = self._fig
        lf, b, r, t = bounds
        w, h = _frame_size(fig)
        s = max((r - lf) / w, (t - b) / h) if w > 50 and h > 50 else None
        cx, cy = (lf + r) / 2, (b + t) / 2
        if s is not None:
            lf, r, b, t = cx - s * w / 2, cx + s * w / 2, cy - s * h / 2, cy + s * h / 2
        else:  # not drawn yet: the browser widens one side; draw what it may show
            hw, hh = (r - lf) / 2, (t - b) / 2
            hw, hh = max(hw, 1.8 * hh), max(hh, hw)
            lf, r, b, t = cx - hw, cx + hw, cy - hh, cy + hh
        fig.x_range.update(start=lf, end=r)
        fig.y_range.update(start=b, end=t)
        fig.tags = [[float(v) for v in bounds]]
        self._draw_bases((lf, b, r, t))
        self._draw_change()
        self._overlay_for_view()

    def screen(self) -> tuple[int, int]:
        """The map's frame in device pixels (CSS pixels x devicePixelRatio, as the browser
        reported them), or MAX_SCREEN_PX a side before it was drawn."""
        w, h = _frame_size(self._fig)
        if w <= 50 or h <= 50:
            return MAX_SCREEN_PX, MAX_SCREEN_PX
        tags = self._fig.x_range.tags
        dpr = float(tags[0]) if tags and isinstance(tags[0], (int, float)) else 1.0
        return int(round(w * dpr)), int(round(h * dpr))

    def overlay_layers(self) -> list[MercatorLayer]:
        """The overlay's images: each product's visible part at the view's resolution
        (`view_layer`), index maps made once per view, layers and screen size."""
        layers = self.layers()
        screen = self.screen()
        key = (self._layers_key, self._view, screen)
        if key != self._view_key:
            self._view_layers = [v for v in (view_layer(lay, self._view, screen)
                                             for lay in layers) if v is not None]
            self._view_key = key
        return self._view_layers

    def _overlay_after_move(self) -> None:
        with self.state.work("map", quiet=True):
            self._overlay_for_view()

    def _overlay_for_view(self) -> None:
        """Re-draw the overlay when the view (or the screen, or the layers) changed."""
        layers = self.layers()
        if (self._layers_key, self._view, self.screen()) != self._view_key or not layers:
            self._push_scores()

    # ---- layers -------------------------------------------------------------------
    def _draw_bases(self, view: tuple[float, float, float, float] | None) -> None:
        """Each product in view, read at screen resolution and warped to 3857."""
        from concurrent.futures import ThreadPoolExecutor

        self._view = view
        fc = self.false_colour
        key = (view, tuple(p.product_id for p in self._products), fc)
        if key == self._bases_key:  # the same images (a reopened session, a re-fit)
            return
        data = _empty_images()
        errors = []

        def one(p: Product,
                ) -> tuple[np.ndarray, tuple[float, float, float, float]] | None | Exception:
            try:
                return warp_view(p, fc, product_stretch(p, fc), view, frame=self._frame(p))
            except Exception as exc:  # a vanished ARD file: say so, keep the app running
                return exc

        # GDAL reads and warps release the GIL: a few products at once
        with ThreadPoolExecutor(max_workers=min(4, max(1, len(self._products)))) as pool:
            results = list(pool.map(one, self._products))
        for p, out in zip(self._products, results):
            if isinstance(out, Exception):
                errors.append(f"{out}")
                continue
            if out is None:
                continue
            img, (x0, y0, x1, y1) = out
            for k, v in zip(("image", "x", "y", "dw", "dh", "product"),
                            (img, x0, y0, x1 - x0, y1 - y0, p.product_id)):
                data[k].append(v)
        self._base_src.data = data
        self._bases_key = None if errors else key  # a vanished file is looked for again
        self._message.object = "" if not errors else \
            f'<b style="color:#b3261e">map: {"; ".join(errors)}</b>'
        if errors:
            self.state.say(f"map: {errors[0]}", "error")
        self.base_version += 1

    def _hover_rows(self) -> list[tuple[str, str]]:
        drawn = self.show_change and not self._change_box.disabled
        return HOVER_ROWS + ([CHANGE_ROW] if drawn else [])

    def _draw_change(self) -> None:
        data = _empty_images()
        if self.show_change and not self._change_box.disabled:
            for p in self._products:
                layer = self._change_of(p)
                if layer is None:
                    continue
                img, (x0, y0, x1, y1) = layer
                for k, v in zip(("image", "x", "y", "dw", "dh", "product"),
                                (img, x0, y0, x1 - x0, y1 - y0, p.product_id)):
                    data[k].append(v)
        self._change_src.data = data

    def _change_of(self, product: Product,
                   ) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
        """The change probability of `product` warped to 3857 (once per scope)."""
        from rasterio.transform import from_bounds
        from rasterio.warp import Resampling, reproject

        from eominer.ui.layers import change_layer

        pid = product.product_id
        if pid not in self._change_cache:
            layer = change_layer(self.state.store, product)
            if layer is None:
                self._change_cache[pid] = None
            else:
                data, (lf, b, r, t) = layer
                h, w = data.shape
                frame = self._frame(product)
                dst, dw, dh = suggested_transform(frame, w, h, (lf, b, r, t))
                out = np.full((dh, dw), np.nan, np.float32)
                reproject(data, out, src_transform=from_bounds(lf, b, r, t, w, h),
                          src_crs=frame.src, src_nodata=np.nan, dst_transform=dst,
                          dst_crs=frame.dst, dst_nodata=np.nan, resampling=Resampling.nearest)
                self._change_cache[pid] = (np.ascontiguousarray(out[::-1]), (
                    dst.c, dst.f + dh * dst.e, dst.c + dw * dst.a, dst.f))
        return self._change_cache[pid]

    def _push_scores(self, *_: param.parameterized.Event) -> None:
        """New scores: one uint8 per screen pixel of each product in view, gathered
        through its index map for the view (a few ms, whatever the number of patches),
        replaces the overlay glyph's data in place; the browser colours it."""
        data = _empty_images()
        self._push_ids()
        for lay in self.overlay_layers():
            lf, b, r, t = lay.bounds
            for k, v in zip(("image", "x", "y", "dw", "dh", "product"),
                            (lay.levels(self.state.scores), lf, b, r - lf, t - b,
                             lay.product_id)):
                data[k].append(v)
        self._overlay_src.data = data
        self.overlay_version += 1

    def _push_ids(self) -> None:
        """What the hover needs, sent once per session: per product its box (a 1 x 1
        image the hover hits), its patch ids (`MercatorLayer.cell_ids`: the first, or
        one per grid cell) and the grid's 3857 polynomials (`_GRID_JS`)."""
        layers = self.layers()
        if self._ids_key is not None and self._ids_key == self._layers_key:
            return
        self._ids_src.data = ids_data(layers)
        self._ids_key = self._layers_key

    def _on_opacity(self, event: param.parameterized.Event) -> None:
        self._overlay_renderer.glyph.global_alpha = event.new
        self._change_renderer.glyph.global_alpha = event.new

    def _push_outlines(self, *_: param.parameterized.Event) -> None:
        """This user's labelled patches (green yes, red no) and the selected one
        (yellow), as quads in 3857 across products."""
        xs: list = []
        ys: list = []
        colours: list[str] = []
        layers = self.layers()
        if self.show_labels and layers:
            ids, labels = self.state.labelled()
            colour_of = dict(zip(ids.tolist(), labels.tolist()))
            sel = self.state.selected
            for lay in layers:
                qx, qy, found = lay.quads(ids)
                xs += qx
                ys += qy
                colours += [LABEL_COLOURS[int(colour_of[int(i)])] for i in found.tolist()]
                if sel is not None:
                    qx, qy, found = lay.quads(np.asarray([sel]))
                    xs += qx
                    ys += qy
                    colours += [SELECTED_COLOUR] * len(found)
        if xs or len(self._outline_src.data["xs"]):  # none before, none now: no message
            self._outline_src.data = {"xs": xs, "ys": ys, "colour": colours}

    def review_outlines(self) -> tuple[np.ndarray, np.ndarray]:
        """The patch ids the map outlines in orange: (selected in Review, and, while the
        Review tab is on screen, the best `MAX_ABOVE_OUTLINES` of those scoring at least
        its threshold that are not selected)."""
        s = self.state
        sel = np.asarray(sorted(set(int(i) for i in s.review_ids)), np.int64)
        above = np.empty(0, np.int64)
        if s.reviewing and s.session is not None and s.scores is not None:
            sc = s.scores
            rows = np.flatnonzero(sc >= np.float32(s.review_threshold))
            if len(rows) > MAX_ABOVE_OUTLINES:
                rows = rows[np.argpartition(-sc[rows], MAX_ABOVE_OUTLINES)[:MAX_ABOVE_OUTLINES]]
            above = np.setdiff1d(np.asarray(s.session.patch_ids, np.int64)[rows], sel)
        return sel, above

    def _push_review(self, *_: param.parameterized.Event) -> None:
        """The review as quads in 3857 across products, above the label outlines: the
        selected patches thick, the others above the threshold thin (docs/app.md)."""
        xs: list = []
        ys: list = []
        width: list[float] = []
        found_ids: list[int] = []
        sel, above = self.review_outlines()
        if len(sel) or len(above):
            for lay in self.layers():
                for ids, kind in ((above, "above"), (sel, "selected")):
                    qx, qy, found = lay.quads(ids)
                    xs += qx
                    ys += qy
                    width += [REVIEW_WIDTH[kind]] * len(found)
                    found_ids += found.tolist()
        if xs or len(self._review_src.data["xs"]):
            self._review_src.data = {"xs": xs, "ys": ys, "width": width, "id": found_ids}

    def _on_basemap(self, event: param.parameterized.Event) -> None:
        """Hidden, the tile renderer leaves the figure: BokehJS fetches the tiles of a
        hidden (`visible=False`) tile layer all the same on every pan and zoom. Shown, it
        goes back under everything else."""
        tiles, fig = self._tiles, self._fig
        if tiles is None or fig is None:
            return
        rest = [r for r in fig.renderers if r is not tiles]
        fig.renderers = [tiles, *rest] if event.new else rest

    # ---- interaction ----------------------------------------------------------------
    def _on_ranges(self, event: RangesUpdate) -> None:
        if None in (event.x0, event.x1, event.y0, event.y1):
            return
        with self.state.work("map", quiet=True):
            self._draw_bases((min(event.x0, event.x1), min(event.y0, event.y1),
                              max(event.x0, event.x1), max(event.y0, event.y1)))
        # the overlay at the new view's resolution, once a burst of wheel zooms is over
        self._overlay_soon()

    def patch_at(self, x: float, y: float) -> tuple[int, str] | None:
        """(patch id, product id) of the session patch under the 3857 point; where
        products overlap, the one drawn on top (the last)."""
        for lay in reversed(self.layers()):
            pid = lay.patch_at(x, y)
            if pid is not None:
                return pid, lay.product_id
        return None

    def _on_double_tap(self, event: DoubleTap) -> None:
        """BokehJS turns any tap within 300 ms of the previous one into a double tap, with
        no tap: two quick clicks on two patches (shift-clicks labelling both) would lose
        the second. On another patch than the last tap's it is that click; on the same
        patch it is a double-click (closing a polygon), which does nothing more."""
        if event.x is None:
            return
        hit = self.patch_at(event.x, event.y)
        if hit is not None and hit != self._last_tap:
            self._on_tap(event)

    def _on_tap(self, event: Tap | DoubleTap) -> None:
        if event.x is None:
            return
        if self.state.session is None:
            self.state.say("start a session in Scope first", "warning")
            return
        hit = self.patch_at(event.x, event.y)
        self._last_tap = hit
        if hit is None:
            return
        pid, product_id = hit
        mods = getattr(event, "modifiers", None) or {}
        self.state.param.update(product_id=product_id, selected=pid)
        if self.state.reviewing and not mods.get("shift") and not mods.get("alt") \
                and not mods.get("ctrl"):
            ids = list(self.state.review_ids)  # as a thumbnail click in Review does
            self.state.review_ids = [i for i in ids if i != pid] if pid in ids else [*ids, pid]
            self.state.say(f"patch {pid} of {product_id} {'un' if pid in ids else ''}selected "
                           "for review")
        elif mods.get("shift"):
            self.state.label(pid, 1)
        elif mods.get("alt") or mods.get("ctrl"):
            self.state.label(pid, -1)
        else:
            self.state.say(f"patch {pid} of {product_id} selected (shift-click: yes, "
                           "alt-click: no)")

    def _centre(self, event: param.parameterized.Event) -> None:
        """Fly to a patch (a thumbnail was clicked), whichever product: ~8 patches
        across, pixels square."""
        pid = event.new
        if pid is None:
            return
        for lay in self.layers():
            qx, qy, found = lay.quads(np.asarray([int(pid)]))
            if len(found):
                x, y = np.asarray(qx[0]), np.asarray(qy[0])
                cx, cy = x.mean(), y.mean()
                half = 4 * max(x.max() - x.min(), y.max() - y.min())
                self.state.product_id = lay.product_id
                self.fit((cx - half, cy - half, cx + half, cy + half))
                self.state.selected = int(pid)
                return

    def _on_shape(self, event: SelectionGeometry) -> None:
        if not getattr(event, "final", True):
            return
        shape = shape_of(event.geometry or {})
        with self.state.work("map selection", quiet=True):
            self.set_shape(shape)

    def set_shape(self, shape: BaseGeometry | None) -> None:
        """A box, lasso or polygon (3857) was drawn: show it, and what it would do."""
        self._shape = shape
        if shape is None:
            self.clear_shape()
            return
        parts = list(getattr(shape, "geoms", [shape]))
        self._shape_src.data = {"xs": [list(p.exterior.xy[0]) for p in parts],
                                "ys": [list(p.exterior.xy[1]) for p in parts]}
        self._clear.visible = True
        if self.shape_action == "label":
            self._use_area.visible = False
            if self.state.session is None:
                self._pending = np.empty(0, np.int64)
                self._shape_info.object = "start a session to label patches with a shape"
                self._yes.visible = self._no.visible = False
                return
            self._pending = selected_patches(self.layers(), shape)
            n = len(self._pending)
            self._shape_info.object = (f'<span data-n="{n}">{n} session patches under the '
                                       "shape</span>")
            self._yes.label, self._no.label = f"Label {n} yes", f"Label {n} no"
            self._yes.visible = self._no.visible = n > 0
        else:
            self._yes.visible = self._no.visible = False
            x0, y0, x1, y1 = to_lonlat(shape).bounds
            self._shape_info.object = (f"area lon {x0:.4f}..{x1:.4f}, lat {y0:.4f}..{y1:.4f}")
            self._use_area.visible = True

    def selection(self) -> np.ndarray:
        """Patch ids under the shape drawn last (label mode)."""
        return self._pending

    def label_shape(self, value: int) -> int:
        """Label every patch under the shape: one transaction, then one round."""
        ids = self._pending
        if not len(ids):
            return 0
        self.clear_shape()
        return self.state.label_many(ids.tolist(), value)

    def use_area(self) -> None:
        """The drawn shape becomes the area of interest (lon/lat WKT) of the next
        session: the Scope tab shows it and ticks the products it touches."""
        from eominer.learning.aoi import as_aoi, stored_aoi

        if self._shape is None:
            return
        with self.state.work("area of interest"):
            aoi = stored_aoi(as_aoi(to_lonlat(self._shape)))
            self.clear_shape()
            self.state.aoi = aoi.wkt
            self.state.say("area of interest drawn on the map: choose the rest of the scope "
                           "in Scope, then Start session", "success")

    def clear_shape(self) -> None:
        self._shape = None
        self._pending = np.empty(0, np.int64)
        self._shape_src.data = {"xs": [], "ys": []}
        self._shape_info.object = ""
        for b in (self._yes, self._no, self._use_area, self._clear):
            b.visible = False

    def legend(self) -> pn.pane.HTML:
        lut = score_lut()
        stops = ", ".join(f"#{int(v) & 0xFF:02x}{(int(v) >> 8) & 0xFF:02x}"
                          f"{(int(v) >> 16) & 0xFF:02x}" for v in lut[::32])
        return pn.pane.HTML(
            f'<div style="font-size:12px">score 0 <span style="display:inline-block;'
            f'width:140px;height:10px;background:linear-gradient(to right, {stops})">'
            f'</span> 1 &nbsp; <span style="color:{LABEL_COLOURS[1]}">&#9633; yes</span> '
            f'<span style="color:{LABEL_COLOURS[-1]}">&#9633; no</span> '
            f'<span style="color:{REVIEW_COLOUR}">&#9633; review</span></div>')

    def __panel__(self) -> pn.Column:
        controls = pn.FlexBox(
            pn.widgets.Checkbox.from_param(self.param.false_colour),
            pn.widgets.FloatSlider.from_param(self.param.opacity, width=180),
            pn.widgets.Checkbox.from_param(self.param.show_labels,
                                           css_classes=["eom-show-labels"]),
            self._change_box, self._basemap_box, self.legend(), self._change_legend,
            self._version, self._base_marker, sizing_mode="stretch_width")
        shapes = pn.FlexBox(self._shape_radio, self._shape_info, self._yes, self._no,
                            self._use_area, self._clear, sizing_mode="stretch_width")
        return pn.Column(controls, shapes, self._message, self._plot,
                         sizing_mode="stretch_both")


def _frame_size(fig: figure) -> tuple[int, int]:
    """The figure's frame in screen pixels as the browser last reported it (0, 0 before
    it was drawn)."""
    from bokeh.core.property.descriptors import UnsetValueError

    try:
        return int(fig.inner_width or 0), int(fig.inner_height or 0)
    except UnsetValueError:
        return 0, 0


def _change_palette() -> list[str]:
    from bokeh.palettes import Reds256

    return list(reversed(Reds256))  # light: little change, dark red: likely change


def _change_legend() -> str:
    stops = ", ".join(_change_palette()[::32] + [_change_palette()[-1]])
    return (f'<div style="font-size:12px">change probability {CHANGE_RANGE[0]:g} '
            f'<span style="display:inline-block;width:140px;height:10px;'
            f'background:linear-gradient(to right, {stops})"></span> {CHANGE_RANGE[1]:g}</div>')
