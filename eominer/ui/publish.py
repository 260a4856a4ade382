"""Publish / export: the session's result becomes a semantic label on the patches
(queryable in SQL), and downloads as GeoJSON, GeoPackage, or a COG score map; or the
positive patches dissolved into polygons (area, patch count, mean score) as GeoJSON,
GeoPackage, GeoParquet or FlatGeobuf, zipped with the STAC Item that describes them.
"Apply to the archive" saves the session's model and scores every product with its
features as an `eominer apply` job (ui/jobs.py), followed here."""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import panel as pn
import param
from panel.viewable import Viewer

from eominer.errors import SessionError
from eominer.ui.jobs import AppJob, launcher
from eominer.ui.state import AppState, Soon

if TYPE_CHECKING:
    from eominer.learning.session import Session

# format -> (file suffix, export function of eominer.learning.export)
FORMATS = {"GeoJSON": (".geojson", "export_geojson"),
           "GeoPackage": (".gpkg", "export_gpkg"),
           "COG score map": (".tif", "export_cogs")}
# polygon downloads: label -> eominer.learning.polygon_export format
POLYGON_FORMATS = {"GeoJSON": "geojson", "GeoPackage": "gpkg", "GeoParquet": "parquet",
                   "FlatGeobuf": "fgb"}


class PublishView(Viewer):
    state = param.ClassSelector(class_=AppState)
    threshold = param.Number(default=0.5, bounds=(0.0, 1.0), step=0.05,
                             label="Positive above score")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._publish = pn.widgets.Button(label="Publish as semantic label",
                                          color="success", css_classes=["eom-publish"])
        self._publish.on_click(lambda _: self.state.publish(self.threshold))
        self._info = pn.pane.HTML("", css_classes=["eom-publish-info"])
        # how far to trust what the button writes: the latest quality check and the stop
        # advice, as `eominer session publish` prints them
        self._trust = pn.pane.HTML("", css_classes=["eom-publish-quality"],
                                   sizing_mode="stretch_width")
        self._downloads = [
            pn.widgets.FileDownload(callback=self._exporter(fmt), filename=f"result{suffix}",
                                    label=fmt, width=150,
                                    css_classes=[f"eom-download-{suffix.strip('.')}"])
            for fmt, (suffix, _) in FORMATS.items()]
        self._polygon_downloads = [
            pn.widgets.FileDownload(callback=self._polygons(key), filename=f"polygons-{key}.zip",
                                    label=fmt, width=150, css_classes=[f"eom-polygons-{key}"])
            for fmt, key in POLYGON_FORMATS.items()]
        self._apply = pn.widgets.Button(label="Apply to the archive", css_classes=["eom-apply"],
                                        width=200)
        self._apply.on_click(lambda _: self.apply())
        self._applied = pn.pane.HTML("", css_classes=["eom-apply-info"],
                                     sizing_mode="stretch_width")
        self._job: AppJob | None = None
        self._shown: tuple[str, str] = ("", "")  # (job id, state) on screen
        self._last_published: tuple[Any, Any] = (None, None)  # (session, publish) -> row
        self.state.param.watch(lambda _: self._render(), ["published", "session", "scores_version"])
        # after the map's overlay has gone out: it reads the rounds from the store
        self.state.param.watch(Soon(self._render_trust),
                               ["session", "scores_version", "quality_version"])
        self._render_trust()
        self.state.param.watch(lambda _: self._find_job(), "session")
        self.state.param.watch(lambda _: self._session_threshold(), "session")
        self._session_threshold()
        self._render()
        self._find_job()

    def _session_threshold(self) -> None:
        """The slider starts where the session was last published (0.5 at first)."""
        if self.state.session is not None:
            self.threshold = float(self.state.session.params.publish_threshold)

    def _find_job(self) -> None:
        """The server's apply job of this session's current model, if one was started
        (a reloaded page or another tab follows it too)."""
        s, self._job = self.state, None
        self._applied.object, self._shown = "", ("", "")
        if s.session is None:
            return
        try:
            key = ("apply", s.session.model_version())
        except SessionError:  # no model yet
            return
        self._job = launcher(s.store.url).jobs.get(key)
        self.refresh()

    def apply(self) -> None:
        """Save the session's model and start `eominer apply` on every product with the
        session's features, at the view's threshold."""
        s = self.state
        if self._no_session():
            return
        with s.work("apply the model"):
            model_id = s.session.save_model()
            self._job = launcher(s.store.url).apply(model_id, self.threshold, s.user)
            s.say(f"{self._job.label} started in its own process: every product with the "
                  "session's features; progress below", "success")
        self.refresh()

    def refresh(self) -> None:
        """The apply job's progress; when done, what it wrote (the app's periodic poll)."""
        import html

        job = self._job
        if job is None or self._shown == (job.job_id, "done"):
            return  # a finished job's summary is read once, not at every 3 s poll
        text = html.escape(job.describe())
        if job.state == "done":
            model_id = job.key[1]
            n, n_pos, n_prod = self.state.store.model_annotation_counts(model_id, "apply")
            text += (f": <b>{n:,}</b> patches of {n_prod} product(s) scored, "
                     f"<b>{n_pos:,}</b> positive; SQL <code>SELECT * FROM "
                     f"annotations WHERE model_version = '{model_id}' AND source = "
                     "'apply'</code>")
        self._applied.object = f'<span data-state="{job.state}">{text}</span>'
        self._shown = (job.job_id, job.state)

    def _render(self) -> None:
        s = self.state
        self._info.object = self._published_text()
        # named for the session, as `eominer session export` names its files: downloads
        # of two sessions of one label do not meet as "name (1)" in the same folder
        name = "result" if s.session is None else f"{s.session.concept}-{s.session.session_id}"
        for d, (suffix, _) in zip(self._downloads, FORMATS.values()):
            d.filename = f"{name}{suffix}"
        for d, key in zip(self._polygon_downloads, POLYGON_FORMATS.values()):
            d.filename = f"{name}-polygons-{key}.zip"

    def _published_text(self) -> str:
        """What the session has published (in this app or before, from the CLI), and
        whether the ranking has moved on since."""
        from eominer.errors import SessionError

        sess = self.state.session
        if sess is None:
            return "<i>no session yet</i>"
        # read once per session and publish: a round (which re-renders this) needs none
        key = (sess.session_id, self.state.published)
        if self._last_published[0] != key:
            self._last_published = (key, self.state.store.last_published(sess.session_id,
                                                                          sess.concept))
        last = self._last_published[1]
        if last is None:
            return "not published yet"
        version, when = last
        text = (f"published <b>{sess.concept}</b> as model <code>{version}</code> "
                f"(score >= {sess.params.publish_threshold:g}, {str(when)[:16]} UTC): "
                f"try SQL <code>SELECT * FROM annotations WHERE label_name = "
                f"'{sess.concept}'</code>")
        try:
            current = sess.model_version()
        except SessionError:  # no fitted round any more (labels undone)
            return text
        if current != version:
            text += ("<br><b>the ranking has changed since</b> (a newer round): publish "
                     "again to write it")
        return text

    def _render_trust(self) -> None:
        import html

        from eominer.ui.rounds import quality_line

        s = self.state
        self._enable(False)  # until a round has made a model
        if s.session is None:
            self._trust.object = ""
            return
        with s.work("quality", quiet=True):
            rounds = s.session.rounds()
            if not rounds:
                self._trust.object = "<i>no round yet: label some patches and Learn</i>"
                return
            # a round on answers of one kind only fits no model
            self._enable(any(r.fitted for r in rounds))
            q = s.session.quality()
            self._trust.object = (
                quality_line(rounds) + ("" if q.get("stop") or not q.get("advice")
                                        else f"<br><i>{html.escape(q['advice'])}</i>"))

    def _enable(self, on: bool) -> None:
        """Publish, downloads and Apply need a model: greyed out until a round has fitted
        one (a click said "run a round with labels first")."""
        for w in (self._publish, self._apply, *self._downloads, *self._polygon_downloads):
            w.disabled = not on

    def _download(self, what: str,
                  write: Callable[[Session, Path], bytes]) -> io.BytesIO | None:
        """A download callback's frame: no session -> say so; else `write(session,
        folder)` -> the bytes to send, in a temporary folder, errors on the status line."""
        s = self.state
        if self._no_session():
            return None
        with s.work(what), tempfile.TemporaryDirectory() as tmp:
            return io.BytesIO(write(s.session, Path(tmp)))
        return None

    def _no_session(self) -> bool:
        if self.state.session is None:
            self.state.say("start a session and learn first", "warning")
        return self.state.session is None

    def _exporter(self, fmt: str) -> Callable[[], Any]:
        suffix, func = FORMATS[fmt]
        if func == "export_cogs":  # one map per product, the one on the map: 0.1 s a tile

            def write(session: Session, tmp: Path) -> bytes:
                from eominer.learning.export import export_cogs

                cogs = export_cogs(session, tmp)
                return (cogs.get(self.state.product_id) or next(iter(cogs.values()))).read_bytes()

            return lambda: self._download(f"export {fmt}", write)

        async def download() -> io.BytesIO | None:
            """The patches' columns are read here (monetdbe answers only on this thread),
            the file is written in a worker thread: a tile's 117,649 patches take seconds,
            and the server answers the other browser sessions meanwhile."""
            from eominer.learning import export as exports

            s = self.state
            if self._no_session():
                return None
            writer = exports.write_geojson if func == "export_geojson" else exports.write_gpkg
            with s.working(f"export {fmt}"), tempfile.TemporaryDirectory() as tmp:
                columns = exports.patch_columns(s.session, 0.0, self.threshold)
                path = Path(tmp) / f"{s.session.concept}{suffix}"
                await asyncio.to_thread(writer, columns, path)
                return io.BytesIO(path.read_bytes())
            return None  # an error: on the status line

        return download

    def _polygons(self, key: str) -> Callable[[], io.BytesIO | None]:
        """The download callback of one polygon format: the positives of the current
        ranking at the view's threshold, dissolved, and the STAC Item, in one zip."""

        def write(session: Session, tmp: Path) -> bytes:
            from eominer.learning.polygon_export import export_polygons

            paths = export_polygons(session, tmp, [key], threshold=self.threshold)
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for p in paths:
                    z.write(p, p.name)
            item = json.loads(next(p for p in paths if p.name.endswith(".stac.json"))
                              .read_text())["properties"]
            self.state.say(f"{item['eominer:polygons']} polygons of {item['eominer:patches']} "
                           f"patches scoring >= {self.threshold:.2f}, "
                           f"{item['eominer:area_ha']:,.1f} ha", "success")
            return buf.getvalue()

        return lambda: self._download(f"export polygons ({key})", write)

    def __panel__(self) -> pn.Column:
        return pn.Column(
            pn.Row(pn.widgets.FloatSlider.from_param(self.param.threshold, width=220),
                   self._publish),
            self._trust, self._info,
            pn.pane.Markdown("Every patch with its score, and `positive` at the threshold "
                             "above (as publishing writes it):"),
            pn.Row(*self._downloads),
            pn.pane.Markdown("Positive patches (score above the threshold) as polygons, with "
                             "their STAC Item:"),
            pn.Row(*self._polygon_downloads),
            pn.pane.Markdown("Score every product that has the session's features with its "
                             "model (a Ray job; the threshold above makes `positive`):"),
            pn.Row(self._apply, self._applied), sizing_mode="stretch_width")
