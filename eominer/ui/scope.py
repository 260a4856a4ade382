"""Scope: which products, grid level, feature sets, target label, model and strategy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import panel as pn
import param
from panel.viewable import Viewer

from eominer.store.records import SPATIAL_CONTEXT_MAX, Product
from eominer.ui.state import AppState
from eominer.ui.tables import table_frame

if TYPE_CHECKING:
    from eominer.learning.session import Session

# the types of the product table's columns when no product is shown (ui/tables.py)
PRODUCT_DTYPES = {"acquired": "datetime64[ns]", "width": "int64", "height": "int64",
                  "patches": "int64"}


class ScopeView(Viewer):
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        from eominer.learning.models import AUTO_MODEL, MODEL_KINDS
        from eominer.learning.strategies import STRATEGIES

        self._sensor = pn.widgets.MultiChoice(label="Sensor", options=[], width=160)
        self._dates = pn.widgets.DatetimeRangePicker(label="Acquired between", width=300)
        self._bbox = pn.widgets.TextInput(
            label="Footprint intersects (lon_min, lat_min, lon_max, lat_max)",
            placeholder="-0.6, 44.8, -0.5, 44.9", width=330)
        self._aoi = pn.widgets.TextAreaInput(
            label="Area of interest (lon/lat WKT: draw it on the map, or upload a file)",
            placeholder="POLYGON ((-0.6 44.8, -0.5 44.8, -0.5 44.9, -0.6 44.8))",
            value=self.state.aoi, height=70, sizing_mode="stretch_width",
            css_classes=["eom-aoi"])
        self._aoi_file = pn.widgets.FileInput(accept=".geojson,.json,.gpkg,.kml,.zip",
                                              css_classes=["eom-aoi-file"], width=230)
        self._where = pn.widgets.TextInput(
            label="SQL filter on the patches (WHERE over scope_rows)",
            placeholder="cloud_fraction < 0.1 AND valid_fraction > 0.9",
            value=self.state.where, sizing_mode="stretch_width", css_classes=["eom-where"])
        self._aoi.param.watch(lambda e: setattr(self.state, "aoi", e.new.strip()), "value")
        self._where.param.watch(lambda e: setattr(self.state, "where", e.new), "value")
        self._aoi_file.param.watch(lambda _: self._on_aoi_file(), "value")
        self.state.param.watch(self._on_state_aoi, "aoi")
        self.state.param.watch(lambda e: setattr(self._where, "value", e.new), "where")
        self._table = pn.widgets.Tabulator(
            None, selectable="checkbox", disabled=True, show_index=False, height=260,
            sizing_mode="stretch_width", formatters={"thumbnail": {"type": "html"}},
            css_classes=["eom-products"])
        # an empty workspace says what to do where the products would be
        self._empty = pn.pane.Alert("", alert_type="info", visible=False,
                                    sizing_mode="stretch_width", css_classes=["eom-empty"])
        self._level = pn.widgets.Select(label="Grid level (px)", width=140)
        self._fs = pn.widgets.MultiChoice(label="Feature sets", sizing_mode="stretch_width",
                                          css_classes=["eom-feature-sets"])
        self._concept = pn.widgets.Select(label="Target label", width=260)
        self._new_label = pn.widgets.TextInput(label="...or a new label (snake_case)",
                                               placeholder="flooded_field", width=220)
        self._parent = pn.widgets.Select(label="under", width=200)
        # auto: RBF SVM up to 1M patches, logistic above (models.resolve_model)
        self._model = pn.widgets.Select(label="Model", options=[AUTO_MODEL, *MODEL_KINDS],
                                        width=150, value=self.state.model_kind)
        self._strategy = pn.widgets.Select(label="Strategy", options=list(STRATEGIES),
                                           width=150, value=self.state.strategy)
        # 1.0 keeps every patch; patches with an unknown cloud fraction are always kept
        self._max_cloud = pn.widgets.FloatSlider(
            label="Max cloud fraction", start=0.0, end=1.0, step=0.05, width=200,
            value=1.0 if self.state.max_cloud is None else self.state.max_cloud)
        # 0: off; 0.3 is the measured choice (docs/learning.md, "Spatial context")
        self._context = pn.widgets.FloatSlider(
            label="Spatial context", start=0.0, end=SPATIAL_CONTEXT_MAX, step=0.1, width=160,
            value=self.state.spatial_context, css_classes=["eom-context"])
        self.state.param.watch(lambda e: setattr(self._context, "value", e.new),
                               "spatial_context")  # a reopened session's
        # diverse only; 0 (default): a batch spread by its features alone (docs/learning.md)
        self._spread = pn.widgets.FloatSlider(
            label="Spread on the map", start=0.0, end=8.0, step=0.5, width=160,
            value=min(self.state.spatial_weight, 8.0), css_classes=["eom-spread"])
        self.state.param.watch(lambda e: setattr(self._spread, "value", min(e.new, 8.0)),
                               "spatial_weight")  # the CLI may have gone further
        # a feature column the ranking starts from (learning/prior.py); empty: none
        self._prior = pn.widgets.TextInput(
            label="Prior column (optional)", placeholder="change_prob_mean", width=180,
            value=self.state.prior, css_classes=["eom-prior"])
        self.state.param.watch(lambda e: setattr(self._prior, "value", e.new), "prior")
        self._start = pn.widgets.Button(label="Start session", color="primary",
                                        css_classes=["eom-start"], width=160)
        self._start.on_click(lambda _: self._on_start())
        for w in (self._sensor, self._dates, self._bbox):
            w.param.watch(lambda _: self._filter(), "value")
        self._table.param.watch(lambda _: self._on_select(), "selection")
        self._level.param.watch(lambda _: self._preselect_features(), "value")
        self.state.param.watch(lambda e: e.new is not None and self._show_session(e.new),
                               "session")
        self._products: list[Product] = []
        self._shown: list[Product] = []
        self._thumbs: dict[str, str] = {}
        from eominer.ui.archive import ArchiveSearchView
        from eominer.ui.jobs import JobsView
        from eominer.ui.removal import RemoveProductsView

        self.jobs = JobsView(self.selected_ids, self.reload, state=self.state)
        self.removal = RemoveProductsView(self.selected_ids, self.reload, state=self.state)
        self.archive = ArchiveSearchView(state=self.state)
        self.reload()

    # ---- data --------------------------------------------------------------------
    def reload(self) -> None:
        """Read the catalogue, feature sets and taxonomy from the store."""
        from eominer.learning.taxonomy import ensure_taxonomy
        from eominer.ui.thumbnails import product_thumbnail

        store = self.state.store
        with self.state.work("load catalogue", quiet=True):
            ensure_taxonomy(store)
            self._products = store.product_list()
            self._thumbs = {p.product_id: (f'<img src="{product_thumbnail(p)}" height="40">'
                                           if p.ard_path else "") for p in self._products}
            self._sensor.options = sorted({p.sensor for p in self._products})
            sets = store.feature_sets()
            self._fs.options = {f"{f.name} v{f.version} ({f.dims}-D) {f.feature_set_id}":
                                f.feature_set_id for f in sets}
            self._preselect_features()
            labels = store.taxonomy()
            self._concept.options = {f"{r['title']} ({r['label_name']})": r["label_name"]
                                     for r in labels if r["level"] > 1}
            names = list(self._concept.options.values())
            if names and self._concept.value not in names:
                self._concept.value = self.state.concept if self.state.concept in names \
                    else names[0]
            self._parent.options = {"(new root)": None, **{
                r["title"]: r["label_name"] for r in labels if r["level"] == 1}}
            self._filter()
        if hasattr(self, "archive"):  # a finished index job shows at once
            self.archive.reload()
        self._empty.object = "" if self._products else self._empty_text()
        self._empty.visible = not self._products
        if not self._products:
            self.state.say("no products yet: ingest some (eominer ingest PATH); they appear "
                           "here when the ingest ends", "warning")

    def _empty_text(self) -> str:
        from eominer.store.url import parse_url
        from eominer.workspace import default_db_url

        url = self.state.store.url
        # the default workspace needs no --db; another database is named (a MonetDB
        # URL's password is shown as ***: the user types their own)
        db = "" if url == str(parse_url(default_db_url())) else f" --db {url}"
        return ("#### This workspace has no products yet\n\n"
                "Ingest Sentinel-2 or Sentinel-1 products from a shell, for example\n\n"
                f"`eominer ingest{db} S2A_MSIL2A_....SAFE`\n\n"
                "(a .SAFE folder or zip, a folder of band files, a multi-band GeoTIFF or "
                "a STAC item), or the bundled sample scene with "
                f"`eominer demo --no-serve{db}`. They "
                "appear in this table when the ingest ends; then extract their features "
                "(`eominer extract`, or Batch jobs below) and start a session.")

    def check_new_products(self) -> bool:
        """While the workspace is empty: products another process has ingested since
        are read in (one COUNT, polled by the app). True when they were."""
        if self._products or not self.state.store.product_count():
            return False
        self.reload()
        n = len(self._products)
        self.state.say(f"{n} product{'s' if n > 1 else ''} ingested: tick them here, extract "
                       "their features and start a session")
        return True

    def _filter(self) -> None:
        from shapely import wkt
        from shapely.geometry import box

        rows = self._products
        if self._sensor.value:
            rows = [p for p in rows if p.sensor in self._sensor.value]
        if self._dates.value:
            lo, hi = self._dates.value
            rows = [p for p in rows if p.acquired is None or lo <= p.acquired <= hi]
        text = self._bbox.value.strip()
        if text:
            try:
                aoi = box(*[float(v) for v in text.split(",")])
                rows = [p for p in rows if wkt.loads(p.footprint_wkt).intersects(aoi)]
            except (ValueError, TypeError):
                self.state.say(f"footprint filter {text!r}: expected four numbers "
                               "lon_min, lat_min, lon_max, lat_max", "error")
        keep = set(self._selected_ids())  # a reload keeps the ticks of what stays shown
        self._shown = rows
        cols = ["thumbnail", "acquired", "sensor", "tile_id", "product_id", "width",
                "height", "patches"]
        self._table.value = table_frame(
            [[self._thumbs.get(p.product_id, ""), p.acquired, p.sensor, p.tile_id,
              p.product_id, p.width, p.height, p.n_patches] for p in rows], cols,
            PRODUCT_DTYPES)
        if keep:
            self._table.selection = [i for i, p in enumerate(rows) if p.product_id in keep]

    def _on_state_aoi(self, event: param.parameterized.Event) -> None:
        """An area (drawn on the map, typed, or uploaded): shown here, and the products
        it touches are ticked."""
        if self._aoi.value.strip() != event.new:
            self._aoi.value = event.new
        if not event.new:
            return
        from eominer.learning.aoi import as_aoi

        with self.state.work("area of interest", quiet=True):
            area = as_aoi(event.new).geometry
            from shapely import wkt

            self.select_products([p.product_id for p in self._shown
                                  if p.footprint_wkt and wkt.loads(p.footprint_wkt)
                                  .intersects(area)])

    def _on_aoi_file(self) -> None:
        """An uploaded GeoJSON/GeoPackage/KML: its polygons, in lon/lat, as the AOI."""
        import tempfile
        from pathlib import Path

        from eominer.learning.aoi import read_aoi, stored_aoi

        data, name = self._aoi_file.value, self._aoi_file.filename or "aoi.geojson"
        if not data:
            return
        with self.state.work("area of interest"), tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(name).name
            path.write_bytes(data)
            self.state.aoi = stored_aoi(read_aoi(path)).wkt

    def _on_select(self) -> None:
        # held: a click that comes while this (debounced) change waits makes Panel run it
        # outside Bokeh's document lock, where the map's first model change raised
        # "_pending_writes should be non-None"; a hold collects the changes and sends them
        with pn.io.hold():
            ids = [self._shown[i].product_id for i in self._table.selection]
            if self.state.session is None and ids != list(self.state.product_ids):
                self.state.product_ids = ids  # the map frames the ticked products
            levels = self.state.store.patch_levels(ids) if ids else []
            self._level.options = levels
            if levels and self._level.value not in levels:
                self._level.value = 32 if 32 in levels else levels[0]
            self._preselect_features()

    def _show_session(self, session: Session) -> None:
        """The open session's scope as it was chosen: products ticked, grid level, feature
        sets, label, model, strategy, cloud limit (a reopened session showed the choices
        of the last start here, or none). Products the filters above hide stay unticked."""
        with pn.io.hold():
            self.select_products(session.product_ids)  # their levels and covering sets
            if session.level in self._level.options:
                self._level.value = session.level
            known = set(self._fs.options.values())
            self._fs.value = [f for f in session.feature_set_ids if f in known]
            if session.concept in self._concept.options.values():
                self._concept.value = session.concept
            if session.record.model_kind in self._model.options:
                self._model.value = session.record.model_kind
            if session.record.strategy in self._strategy.options:
                self._strategy.value = session.record.strategy
            cloud = session.params.max_cloud
            self._max_cloud.value = 1.0 if cloud is None else float(cloud)

    def _selected_ids(self) -> list[str]:
        return [self._shown[i].product_id for i in self._table.selection
                if i < len(self._shown)]

    def _preselect_features(self) -> None:
        """Tick the feature sets with features for every selected product at the level
        (not merely the newest set: a change or fusion set covers only some products)."""
        ids, level = self._selected_ids(), self._level.value
        if not ids or level is None:
            self._fs.value = []
            return
        with self.state.work("feature sets", quiet=True):
            self._fs.value = self.state.store.covering_feature_sets(ids, int(level))

    def select_products(self, product_ids: list[str]) -> None:
        """Programmatic selection (JupyterLab: `app.scope.select_products([...])`)."""
        self._table.selection = [i for i, p in enumerate(self._shown)
                                 if p.product_id in product_ids]

    def _on_start(self) -> None:
        from eominer.learning.scope import covering_hint
        from eominer.learning.taxonomy import add_label

        s = self.state
        concept = self._concept.value
        new = self._new_label.value.strip()
        if new:
            with s.work("add label"):
                if s.store.taxonomy_label(new) is None:
                    add_label(s.store, new, self._parent.value, new.replace("_", " ").title(),
                              user=s.user)
                concept = new
            if concept != new:  # refused (the status line says why): nothing starts
                return
        s.param.update(
            product_ids=self._selected_ids(),
            level=int(self._level.value or 32), feature_set_ids=list(self._fs.value),
            concept=concept or "", model_kind=self._model.value,
            strategy=self._strategy.value,
            max_cloud=None if self._max_cloud.value >= 1.0 else float(self._max_cloud.value),
            spatial_context=float(self._context.value),
            spatial_weight=float(self._spread.value), prior=self._prior.value.strip(),
        )
        if s.product_ids and not s.feature_set_ids:
            s.say("no feature set chosen: "
                  + covering_hint(s.store, s.product_ids, s.level), "error")
            return
        s.start_session()

    def __panel__(self) -> pn.Column:
        return pn.Column(
            pn.pane.Markdown("### Products"),
            pn.Row(self._sensor, self._dates, self._bbox),
            self._empty,
            self._table,
            self.removal,
            pn.Row(self._aoi, self._aoi_file, sizing_mode="stretch_width"),
            self._where,
            pn.Row(self._level, self._max_cloud, self._fs),
            pn.Row(self._concept, self._new_label, self._parent),
            pn.Row(self._model, self._strategy, self._context, self._spread, self._prior,
                   self._start),
            self.archive,
            self.jobs,
            sizing_mode="stretch_width",
        )

    def selected_ids(self) -> list[str]:
        return [self._shown[i].product_id for i in self._table.selection
                if i < len(self._shown)]
