"""Publish / export: the session's result becomes a semantic label on the patches
(queryable in SQL), and downloads as GeoJSON, GeoPackage, or a COG score map."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import panel as pn
import param
from panel.viewable import Viewer

from eominer.ui.state import AppState

# format -> (file suffix, export function of eominer.learning.export)
FORMATS = {"GeoJSON": (".geojson", "export_geojson"),
           "GeoPackage": (".gpkg", "export_gpkg"),
           "COG score map": (".tif", "export_cogs")}


class PublishView(Viewer):
    state = param.ClassSelector(class_=AppState)
    threshold = param.Number(default=0.5, bounds=(0.0, 1.0), step=0.05,
                             label="Positive above score")

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._publish = pn.widgets.Button(name="Publish as semantic label",
                                          button_type="success", css_classes=["eom-publish"])
        self._publish.on_click(lambda _: self.state.publish(self.threshold))
        self._info = pn.pane.HTML("", css_classes=["eom-publish-info"])
        self._downloads = [
            pn.widgets.FileDownload(callback=self._exporter(fmt), filename=f"result{suffix}",
                                    label=fmt, width=150,
                                    css_classes=[f"eom-download-{suffix.strip('.')}"])
            for fmt, (suffix, _) in FORMATS.items()]
        self.state.param.watch(lambda _: self._render(), ["published", "session"])
        self._render()

    def _render(self) -> None:
        s = self.state
        if s.session is None:
            self._info.object = "<i>no session yet</i>"
        elif s.published:
            self._info.object = (f"published <b>{s.session.concept}</b> as model "
                                 f"<code>{s.published}</code>: try SQL "
                                 f"<code>SELECT * FROM annotations WHERE label_name = "
                                 f"'{s.session.concept}'</code>")
        else:
            self._info.object = "not published yet"
        name = s.session.concept if s.session is not None else "result"
        for d, (suffix, _) in zip(self._downloads, FORMATS.values()):
            d.filename = f"{name}{suffix}"

    def _exporter(self, fmt: str):
        suffix, func = FORMATS[fmt]

        def export() -> io.BytesIO | None:
            s = self.state
            if s.session is None:
                s.say("start a session and publish first", "warning")
                return None
            with s.work(f"export {fmt}"):
                from eominer.learning import export as exports

                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / f"{s.session.concept}{suffix}"
                    if func == "export_cogs":  # one map per product: the one on the map
                        cogs = exports.export_cogs(s.session, tmp)
                        path = cogs.get(s.product_id) or next(iter(cogs.values()))
                    else:
                        getattr(exports, func)(s.session, path)
                    return io.BytesIO(path.read_bytes())
            return None

        return export

    def __panel__(self):
        return pn.Column(
            pn.Row(pn.widgets.FloatSlider.from_param(self.param.threshold, width=220),
                   self._publish),
            self._info, pn.pane.Markdown("Download the published result:"),
            pn.Row(*self._downloads), sizing_mode="stretch_width")
