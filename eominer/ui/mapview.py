"""Map: the product image (true or false colour) at screen resolution, the score of
every patch as a colour overlay, outlines of labelled patches, the change layer.

Clicking a patch selects it; shift-click labels it yes, alt-click (or ctrl-click) no.
"""

from __future__ import annotations

import numpy as np
import panel as pn
import param
from panel.viewable import Viewer

from eominer.store.records import Product
from eominer.ui.layers import (
    LEVEL_RANGE,
    PatchGrid,
    change_layer_path,
    colour_bands,
    patch_grid,
    product_bounds,
    read_view,
    score_lut,
    to_rgb,
)
from eominer.ui.state import AppState
from eominer.ui.thumbnails import product_stretch

LABEL_COLOURS = {1: "#00c853", -1: "#ff1744"}
CHANGE_RANGE = (0.0, 1.0)  # change probability

# hover on the score layer: the patch under the mouse (ids run row-major over a
# product's grid, `_hover_geometry`) and its score from the overlay's byte (`levels`)
_PATCH_JS = """
const c = Math.floor((value - left) / dx), r = Math.floor((top - special_vars.y) / dy)
if (!(cols > 0) || c < 0 || r < 0 || c >= cols || r >= rows) return '-'
return base >= 0 ? String(base + r * cols + c) : `row ${r}, column ${c}`
"""
_SCORE_JS = "return value > 0 ? ((value - 1) / 254).toFixed(2) : 'none'"

# runs in the browser when the figure's frame size changes; fits once per figure
_FIT_JS = """
const w = cb_obj.inner_width, h = cb_obj.inner_height
if (cb_obj._eom_fitted || !(w > 50 && h > 50)) return
cb_obj._eom_fitted = true
const [l, b, r, t] = bounds
const s = Math.max((r - l) / w, (t - b) / h)
const cx = (l + r) / 2, cy = (b + t) / 2
xr.setv({start: cx - s * w / 2, end: cx + s * w / 2})
yr.setv({start: cy - s * h / 2, end: cy + s * h / 2})
"""


class MapView(Viewer):
    state = param.ClassSelector(class_=AppState)
    false_colour = param.Boolean(default=False, label="False colour (NIR, red, green)")
    opacity = param.Number(default=0.6, bounds=(0.0, 1.0), step=0.05, label="Overlay opacity")
    show_labels = param.Boolean(default=True, label="Labelled patches")
    show_change = param.Boolean(default=False, label="Change layer")
    overlay_version = param.Integer(default=0, doc="bumped after the overlay is re-drawn")

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._grid: PatchGrid | None = None
        self._grid_key: tuple | None = None
        self._overlay_source = None  # Bokeh data source of the score layer, once drawn
        self._outline_source = None  # ... and of the labelled-patch outlines
        self._outline_dmap = None
        self._overlay_dmap = None
        self._fig = None
        self._hover_patch = None  # CustomJSHover of the score layer's hover tool
        self._change_box = pn.widgets.Checkbox.from_param(self.param.show_change,
                                                          css_classes=["eom-show-change"])
        self._change_legend = pn.pane.HTML(_change_legend(), visible=False,
                                           css_classes=["eom-change-legend"])
        self.param.watch(lambda _: self._change_controls(), "show_change")
        self._product_select = pn.widgets.Select(name="Product on the map", width=420)
        self._product_select.param.watch(self._on_product, "value")
        self._version = pn.pane.HTML("", css_classes=["eom-overlay-version"], width=0,
                                     height=0, margin=0)
        self._message = pn.pane.HTML("", css_classes=["eom-map-message"])
        self._plot = pn.pane.HoloViews(None, sizing_mode="stretch_both", min_height=520,
                                       css_classes=["eom-map"])
        self.state.param.watch(lambda _: self._products_changed(), ["product_ids", "session"])
        self.state.param.watch(lambda e: self._sync_product(e.new), "product_id")
        self.state.param.watch(self._centre, "focus")
        self.state.param.watch(self._push_scores, "scores_version")
        self.state.param.watch(self._push_outlines, ["labels_version", "selected"])
        self._products_changed()
        self._change_controls(self._has_change())
        self._plot.object = self._build()

    # ---- what is shown -------------------------------------------------------------
    def _products_changed(self) -> None:
        ids = list(self.state.product_ids)
        if not ids:
            ids = [p.product_id for p in self.state.store.product_list()]
        self._product_select.options = ids
        if ids and self.state.product_id not in ids:
            self.state.product_id = ids[0]
        self._grid_key = None

    def _sync_product(self, pid: str) -> None:
        if self._product_select.value != pid:
            self._product_select.value = pid
        self._change_controls(self._has_change())
        # a new plot: the axes take the new product's extent (it may be another CRS)
        self._plot.object = self._build()

    def _on_product(self, event) -> None:
        if event.new and event.new != self.state.product_id:
            self.state.product_id = event.new

    def _product(self) -> Product | None:
        pid = self.state.product_id
        return self.state.store.product(pid) if pid else None

    def _has_change(self) -> bool:
        product = self._product()
        try:
            return product is not None and change_layer_path(self.state.store, product) is not None
        except Exception as exc:  # an older database without pairs: no change layer
            self.state.say(f"change layer: {exc}", "warning")
            return False

    def _change_controls(self, has: bool | None = None) -> None:
        """The change layer's box is ticked (and can be) only for a product that has
        one; its legend shows while it is drawn."""
        if has is not None:
            self._change_box.disabled = not has
            self._change_box.label = "Change layer" + ("" if has else " (none for this product)")
            self.show_change = has
        self._change_legend.visible = self.show_change and not self._change_box.disabled

    def grid(self) -> PatchGrid | None:
        """The patch grid of the product on the map, mapped to the session's scores."""
        s = self.state
        sess = s.session
        key = (s.product_id, sess.session_id if sess else None, sess.level if sess else s.level)
        if key != self._grid_key:
            product = self._product()
            if product is None:
                return None
            level = sess.level if sess else s.level
            self._grid = patch_grid(s.store, product, level,
                                    sess.patch_ids if sess is not None else None)
            self._grid_key = key
        return self._grid

    # ---- layers -------------------------------------------------------------------
    def _base(self, x_range=None, y_range=None, false_colour=False, product_id=""):
        import holoviews as hv

        product = self._product()
        if product is None:
            return hv.RGB(np.zeros((1, 1, 4), np.uint8), bounds=(0, 0, 1, 1), kdims=["x", "y"])
        try:
            bands = colour_bands(product, false_colour)
            data, bounds = read_view(product, bands, x_range, y_range)
            rgba = to_rgb(data, product_stretch(product, false_colour))
            self._message.object = ""
        except Exception as exc:  # a vanished ARD file: say so, keep the app running
            self._message.object = f'<b style="color:#b3261e">map: {exc}</b>'
            self.state.say(f"map: {exc}", "error")
            return hv.RGB(np.zeros((1, 1, 4), np.uint8), bounds=product_bounds(product),
                          kdims=["x", "y"])
        return hv.RGB(rgba, bounds=bounds, kdims=["x", "y"], vdims=list("RGBA"))

    def _overlay(self, product_id="", opacity=0.6):
        """The score layer as the DynamicMap draws it (new product, opacity); new scores
        of the same product go straight to its Bokeh source instead (`_push_scores`)."""
        import holoviews as hv
        from bokeh.palettes import Viridis256

        g = self._safe_grid()
        if g is None:
            product = self._product()
            data = np.zeros((1, 1), np.uint8)
            bounds = product_bounds(product) if product else (0, 0, 1, 1)
        else:
            data, bounds = g.levels(self.state.scores), g.bounds
        img = hv.Image(data, bounds=bounds, kdims=["x", "y"], vdims=["score"],
                       group="Scores").opts(
            cmap=list(Viridis256), clim=LEVEL_RANGE, clipping_colors={"min": "transparent"},
            alpha=opacity, hooks=[self._scores_hook], tools=[])
        self.overlay_version += 1
        return img

    def _scores_hook(self, plot, element) -> None:
        self._overlay_source = plot.handles.get("source")
        self._hover(plot)

    def _hover(self, plot) -> None:
        """Hovering the map shows the patch id and its score (the image's own hover
        showed a packed RGBA integer): one tool per figure, its geometry kept current."""
        from bokeh.models import CustomJSHover, HoverTool

        geometry = _hover_geometry(self._safe_grid())
        fig, renderer = plot.state, plot.handles.get("glyph_renderer")
        if self._hover_patch is not None and self._hover_patch in _formatters(fig):
            self._hover_patch.args = geometry
            return
        if renderer is None:
            return
        self._hover_patch = CustomJSHover(args=geometry, code=_PATCH_JS)
        fig.add_tools(HoverTool(
            renderers=[renderer], tooltips=[("patch", "$x{patch}"), ("score", "@image{score}")],
            formatters={"$x": self._hover_patch, "@image": CustomJSHover(code=_SCORE_JS)},
            description="Patch and score"))

    def _push_scores(self, *_) -> None:
        """New scores: one uint8 per patch (a few ms for 1M patches) replaces the overlay
        glyph's data in place; the browser colours it. Going through HoloViews would
        rebuild the element and recompute ranges on every label click."""
        src = self._overlay_source
        g = self._safe_grid()
        if src is None or g is None:  # not drawn yet: the DynamicMap's first render has it
            return
        img = g.levels(self.state.scores)
        left, bottom, right, top = g.bounds
        # Bokeh images run bottom-up: the grid's first row (north) is the image's last
        src.data = {"image": [np.ascontiguousarray(img[::-1])], "x": [left], "y": [bottom],
                    "dw": [right - left], "dh": [top - bottom]}
        if self._hover_patch is not None:  # a new session may be at another level
            self._hover_patch.args = _hover_geometry(g)
        self.overlay_version += 1

    def _outlines(self, product_id="", show_labels=True):
        import holoviews as hv

        return hv.Rectangles(self._outline_rects(show_labels), vdims=["colour"]).opts(
            fill_alpha=0, line_color="colour", line_width=2, hooks=[self._outline_hook])

    def _outline_rects(self, show_labels: bool = True) -> list[tuple]:
        """(left, bottom, right, top, colour) of this user's labelled patches and of
        the selected one, on the product shown."""
        product = self._product()
        x, y = product_bounds(product)[:2] if product else (0.0, 0.0)
        # two invisible seeds in distinct colours: HoloViews then takes the column as
        # colours (an empty or one-colour layer gets a colour mapper or a constant, and
        # rectangles pushed later would show grey)
        rects: list[tuple] = [(x, y, x, y, "#00000000"), (x, y, x, y, "#ffffff00")]
        g = self._safe_grid()
        if g is None or not show_labels:
            return rects
        ids, labels = self.state.labelled()
        rects += self._rects(g, ids, [LABEL_COLOURS[int(v)] for v in labels])
        if self.state.selected is not None:
            rects += self._rects(g, np.asarray([self.state.selected]), ["#ffd600"])
        return rects

    def _push_outlines(self, *_) -> None:
        """A label or a selection: replace the outlines' data in place (a HoloViews
        refresh would recompute the ranges of every layer, the 1M-patch overlay too)."""
        src = self._outline_source
        if src is None or not {"left", "right", "bottom", "top"} <= set(src.data):
            if self._outline_dmap is not None:
                self._outline_dmap.event()
            return
        src.data = _rect_data(self._outline_rects(self.show_labels), src.data)

    def _outline_hook(self, plot, element) -> None:
        self._outline_source = plot.handles.get("source")

    def _rects(self, g: PatchGrid, ids: np.ndarray, colours: list[str]) -> list[tuple]:
        if not len(ids):
            return []
        cells = np.flatnonzero(np.isin(g.patch_ids, ids))
        where = {int(g.patch_ids[c]): c for c in cells}
        left, bottom, right, top = g.bounds
        dx, dy = (right - left) / g.cols, (top - bottom) / g.rows
        out = []
        for pid, colour in zip(ids.tolist(), colours):
            c = where.get(int(pid))
            if c is None:
                continue
            r, k = divmod(c, g.cols)
            out.append((left + k * dx, top - (r + 1) * dy, left + (k + 1) * dx, top - r * dy,
                        colour))
        return out

    def _change(self, product_id="", show_change=True, opacity=0.6):
        import holoviews as hv

        from eominer.ui.layers import change_layer

        product = self._product()
        # placeholders span the product: a (0, 0, 1, 1) one would stretch the axes
        empty = hv.Image(np.zeros((1, 1), np.float32),
                         bounds=product_bounds(product) if product else (0, 0, 1, 1),
                         kdims=["x", "y"], vdims=["change"]).opts(alpha=0)
        if product is None or not show_change:
            return empty
        layer = change_layer(self.state.store, product)
        if layer is None:
            return empty
        data, bounds = layer
        return hv.Image(data, bounds=bounds, kdims=["x", "y"], vdims=["change"]).opts(
            cmap=_change_palette(), clim=CHANGE_RANGE, alpha=opacity,
            clipping_colors={"NaN": (0, 0, 0, 0)})

    def _safe_grid(self) -> PatchGrid | None:
        try:
            return self.grid()
        except Exception as exc:
            self.state.say(f"patch grid: {exc}", "error")
            return None

    def _build(self):
        import holoviews as hv

        hv.extension("bokeh", logo=False)
        s = self.state
        prod = hv.streams.Params(s, ["product_id"])
        base = hv.DynamicMap(self._base, streams=[
            hv.streams.RangeXY(), hv.streams.Params(self, ["false_colour"]), prod])
        overlay = hv.DynamicMap(self._overlay, streams=[
            prod, hv.streams.Params(self, ["opacity"])])
        self._overlay_dmap = overlay
        change = hv.DynamicMap(self._change, streams=[
            prod, hv.streams.Params(self, ["opacity", "show_change"])])
        outlines = hv.DynamicMap(self._outlines, streams=[
            prod, hv.streams.Params(self, ["show_labels"])])
        self._outline_dmap = outlines
        return (base * change * overlay * outlines).opts(
            hv.opts.RGB(data_aspect=1, responsive=True, tools=["tap"],
                        active_tools=["wheel_zoom"], hooks=[self._hook], xaxis=None,
                        yaxis=None, default_tools=["pan", "wheel_zoom", "box_zoom", "reset"]),
            hv.opts.Overlay(data_aspect=1, responsive=True),
        ).opts(framewise=False)

    # ---- interaction ----------------------------------------------------------------
    def _hook(self, plot, element) -> None:
        from bokeh.events import Tap

        fig = plot.state
        if getattr(fig, "_eom_tap", False):
            return
        fig._eom_tap = True  # one handler per figure, whatever the number of layers
        fig.on_event(Tap, self._on_tap)
        self._fit_on_first_size(fig)
        self._fig = fig

    def _fit_on_first_size(self, fig) -> None:
        """Show the whole product the first time the map has a size. A responsive
        HoloViews plot keeps the data aspect by cutting the longer side off; here the
        ranges grow instead (square pixels, the product centred)."""
        from bokeh.models import CustomJS

        product = self._product()
        if product is None:
            return
        cb = CustomJS(args={"xr": fig.x_range, "yr": fig.y_range,
                            "bounds": list(product_bounds(product))}, code=_FIT_JS)
        fig.js_on_change("inner_width", cb)
        fig.js_on_change("inner_height", cb)

    def _on_tap(self, event) -> None:
        g = self._safe_grid()
        if g is None or event.x is None:
            return
        pid = g.cell_of(event.x, event.y)
        if pid is None:
            return
        mods = getattr(event, "modifiers", None) or {}
        self.state.selected = pid
        if mods.get("shift"):
            self.state.label(pid, 1)
        elif mods.get("alt") or mods.get("ctrl"):
            self.state.label(pid, -1)
        else:
            self.state.say(f"patch {pid} selected (shift-click: yes, alt-click: no)")

    def _centre(self, event) -> None:
        """Centre the map on a patch (clicked in the grid) at ~8 patches across."""
        pid = event.new
        if pid is None or self._fig is None:
            return
        g = self._safe_grid()
        if g is None:
            return
        cells = np.flatnonzero(g.patch_ids == int(pid))
        if not len(cells):
            return
        r, k = divmod(int(cells[0]), g.cols)
        left, bottom, right, top = g.bounds
        dx, dy = (right - left) / g.cols, (top - bottom) / g.rows
        cx, cy = left + (k + 0.5) * dx, top - (r + 0.5) * dy
        half_w = 4 * dx
        w, h = self._fig.inner_width or 0, self._fig.inner_height or 0
        half_h = half_w * h / w if w > 0 and h > 0 else 4 * dy  # keep pixels square
        self._fig.x_range.update(start=cx - half_w, end=cx + half_w)
        self._fig.y_range.update(start=cy - half_h, end=cy + half_h)
        self.state.selected = int(pid)

    def legend(self) -> pn.pane.HTML:
        lut = score_lut()
        stops = ", ".join(f"#{int(v) & 0xFF:02x}{(int(v) >> 8) & 0xFF:02x}"
                          f"{(int(v) >> 16) & 0xFF:02x}" for v in lut[::32])
        return pn.pane.HTML(
            f'<div style="font-size:12px">score 0 <span style="display:inline-block;'
            f'width:140px;height:10px;background:linear-gradient(to right, {stops})">'
            f'</span> 1 &nbsp; <span style="color:{LABEL_COLOURS[1]}">&#9633; yes</span> '
            f'<span style="color:{LABEL_COLOURS[-1]}">&#9633; no</span></div>')

    def __panel__(self):
        controls = pn.FlexBox(
            self._product_select,
            pn.widgets.Checkbox.from_param(self.param.false_colour),
            pn.widgets.FloatSlider.from_param(self.param.opacity, width=180),
            pn.widgets.Checkbox.from_param(self.param.show_labels,
                                           css_classes=["eom-show-labels"]),
            self._change_box, self.legend(), self._change_legend, self._version,
            sizing_mode="stretch_width")
        self.param.watch(lambda e: setattr(self._version, "object",
                                           f'<span data-v="{e.new}"></span>'), "overlay_version")
        return pn.Column(controls, self._message, self._plot, sizing_mode="stretch_both")


def _change_palette() -> list[str]:
    from bokeh.palettes import Reds256

    return list(reversed(Reds256))  # light: little change, dark red: likely change


def _change_legend() -> str:
    stops = ", ".join(_change_palette()[::32] + [_change_palette()[-1]])
    return (f'<div style="font-size:12px">change probability {CHANGE_RANGE[0]:g} '
            f'<span style="display:inline-block;width:140px;height:10px;'
            f'background:linear-gradient(to right, {stops})"></span> {CHANGE_RANGE[1]:g}</div>')


def _hover_geometry(g: PatchGrid | None) -> dict[str, float]:
    """What the hover's JS needs to name the patch under the mouse: the grid's frame,
    and its first id when ids run row-major over the grid (-1: they do not)."""
    if g is None:
        return {"left": 0.0, "top": 0.0, "dx": 1.0, "dy": 1.0, "cols": 0, "rows": 0, "base": -1}
    left, bottom, right, top = g.bounds
    ids = g.patch_ids
    base = int(ids[0]) if ids.size and ids[0] >= 0 and np.array_equal(
        ids, ids[0] + np.arange(ids.size)) else -1
    return {"left": left, "top": top, "dx": (right - left) / g.cols,
            "dy": (top - bottom) / g.rows, "cols": g.cols, "rows": g.rows, "base": base}


def _formatters(fig) -> list:
    from bokeh.models import HoverTool

    return [f for t in fig.tools if isinstance(t, HoverTool)
            for f in (t.formatters or {}).values()]


def _rect_data(rects: list[tuple], columns) -> dict[str, list]:
    """Quad columns of (left, bottom, right, top, colour) rectangles; any other column
    of the source (the colour, whatever HoloViews named it) gets the colour strings."""
    data: dict[str, list] = {k: [r[i] for r in rects]
                             for i, k in enumerate(("left", "bottom", "right", "top"))}
    for k in columns:
        data.setdefault(k, [str(r[4]) for r in rects])
    return data
