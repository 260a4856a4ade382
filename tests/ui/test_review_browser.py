"""The map-and-review acceptance in Debian's Chromium against `eominer serve` on
127.0.0.1, on two OSCD city pairs (Paris and Saclay, both dates ingested): an area of
interest across both cities, dragged on the map with the box tool, and a SQL filter that
keeps the first dates make the scope;
label, learn, see both products' overlays on the one map, review above a threshold, mark 5
patches no in one action, answer a stratified verification sample from the OSCD reference
(a patch is a change when more than 5 % of its pixels changed) and read the precision /
recall the page shows against the round in the database and the estimator; then download
the positives as polygons and read them back."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from eominer.ui.mapview import MAX_ABOVE_OUTLINES

from .browser import (
    batch_ids,
    browser,
    local_only,
    model,
    n_labels,
    select_product,
    shot,
    status,
    tab,
    text,
    to_screen,
    wait_for,
)
from .conftest import USERS, served
from .fixtures import band_stats

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

CHANGE_SHARE = 0.05  # as tests/conftest.py and eominer.evaluation.oscd


CITIES = ("paris", "saclay_e")
# the box dragged on the map, across both cities (Paris: lon 2.31-2.36, lat 48.80-48.85;
# Saclay: 2.22-2.30, 48.67-48.74), as lon/lat bounds
AOI = (2.25, 48.70, 2.34, 48.83)
WHERE = "acquired < TIMESTAMP '2017-01-01' AND valid_fraction > 0.9"  # the first dates


@pytest.fixture(scope="module")
def cities(ui_base, tmp_path_factory, shared_data) -> tuple[Path, str, dict[str, str]]:
    """A copy of the UI database with both dates of Paris and Saclay ingested at 32 and
    64 px and their band statistics: (home, db url, {city: first date's product id})."""
    import os

    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    home = tmp_path_factory.mktemp("ui_cities")
    shutil.copy(ui_base[1], home / "ui.duckdb")
    db = f"duckdb:///{home / 'ui.duckdb'}"
    old = os.environ.get("EOMINER_HOME")
    os.environ["EOMINER_HOME"] = str(home)
    try:
        with open_store(db) as store:
            imgs = shared_data / "oscd" / "images"
            res = ingest_paths(store, [imgs / c / d for c in CITIES for d in ("imgs_1", "imgs_2")],
                               levels=(32, 64))
            band_stats(store, 32)
    finally:
        if old is None:
            os.environ.pop("EOMINER_HOME", None)
        else:
            os.environ["EOMINER_HOME"] = old
    return home, db, {c: res[2 * i].product_id for i, c in enumerate(CITIES)}


@pytest.fixture(scope="module")
def server(cities) -> str:
    home, db, _ = cities
    with served(home, db) as url:
        yield url


def oscd_truth(db: str, data: Path, firsts: dict[str, str]) -> dict[int, bool]:
    """Per 32 px patch of each city's first date: more than 5 % changed pixels."""
    from eominer.evaluation.oscd import read_labels
    from eominer.store import open_store

    out = {}
    with open_store(db, read_only=True) as store:
        for city, pid in firsts.items():
            changed = read_labels(data / "oscd", city)
            for r in store.patches(pid, 32).to_pylist():
                out[int(r["patch_id"])] = bool(
                    changed[r["y_off"]:r["y_off"] + r["size_px"],
                            r["x_off"]:r["x_off"] + r["size_px"]].mean() > CHANGE_SHARE)
    return out


def overlay_products(page) -> list[str]:
    """Products of the map's score overlay (a Bokeh model found by name)."""
    return page.evaluate("""() => {
      const m = Bokeh.documents[0].get_model_by_name('eom-overlay')
      if (!m) return []
      const d = m.data instanceof Map ? Object.fromEntries(m.data) : m.data
      return Array.from(d.product || [])
    }""")


def login(b, base_url: str, refused: list[str]):
    """`browser.new_page` with ana logged in, and patience: the first page of a server
    builds the app (imports included), which took over 30 s on a loaded 2-core machine."""
    ctx = b.new_context(viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(180_000)
    local_only(page, refused)
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", USERS["ana"])
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(f"{base_url}/**")
    page.goto(base_url + "/")
    page.wait_for_selector(".eom-tabs", timeout=180_000)
    return page


def db_state(db: str, sid: str) -> tuple[dict[int, tuple[int, str]], list]:
    from eominer.store import open_store

    with open_store(db, read_only=True) as store:
        labels = {int(r["patch_id"]): (int(r["label"]), r["purpose"])
                  for r in store.session_labels(sid).to_pylist()}
        return labels, store.session_rounds(sid)


def rounds_done(page) -> int:
    m = re.findall(r"round (\d+)", status(page))
    return int(m[-1]) if m else 0


def learn(page) -> int:
    before = rounds_done(page)
    page.locator(".eom-learn button").click()
    wait_for(lambda: rounds_done(page) > before, 90, "a new round")
    return rounds_done(page)


def answer(page, grid: str, pid: int, yes: bool) -> None:
    page.locator(f"{grid} .eom-card[data-id='{pid}'] {'.eom-yes' if yes else '.eom-no'}").click()


def review_cards(page) -> list[int]:
    return [int(v) for v in page.locator(".eom-review-grid .eom-card").evaluate_all(
        "cs => cs.map(c => c.dataset.id)")]


def map_review(page) -> dict[str, list[int]]:
    """The patch ids the map outlines for the review (its Bokeh source), by width."""
    from eominer.ui.mapview import REVIEW_WIDTH

    d = page.evaluate("""() => {
      const m = Bokeh.documents[0].get_model_by_name('eom-review')
      const d = m.data instanceof Map ? Object.fromEntries(m.data) : m.data
      return {id: Array.from(d.id), width: Array.from(d.width)}
    }""")
    return {k: [int(i) for i, w in zip(d["id"], d["width"]) if w == v]
            for k, v in REVIEW_WIDTH.items()}


def shown_threshold(page) -> float:
    return float(re.search(r"score ≥ ([\d.]+)", text(page, ".eom-review-count"))[1])


def shown_interval(line: str, what: str) -> tuple[str, str, str]:
    m = re.search(what + r" ([\d.]+) % \(95 % CI ([\d.]+)–([\d.]+) %\)", line)
    assert m, line
    return m.group(1), m.group(2), m.group(3)


def test_area_filter_review_bulk_no_quality_check_and_polygons(server, cities, shared_data,
                                                                 tmp_path):
    import pyogrio
    import shapely
    from pyproj import Geod, Transformer

    from eominer.learning.polygons import dissolve, session_positives
    from eominer.learning.session import Session
    from eominer.store import open_store
    from tests.learning.sessions import recompute

    _, db, firsts = cities
    truth = oscd_truth(db, shared_data, firsts)
    assert 5 < sum(truth.values()) < len(truth) / 4  # rare changes, as in the field
    refused: list[str] = []
    with browser() as b:
        page = login(b, server, refused)
        # the scope: the map framed on both cities' first dates; the area is dragged
        # there with the box tool, set as the area of interest (Scope shows it and ticks
        # the products it touches); then the SQL filter
        for pid in firsts.values():
            select_product(page, pid)
        tab(page, "Mine")
        wait_for(lambda: sorted(model(page, "eom-base")) == sorted(firsts.values()), 60,
                 "the map framed on both cities")

        page.locator(".eom-shape-action button", has_text="is the area").click()
        page.locator('.eom-map [title="Box: label patches or an area"]').first.click()
        to_3857 = Transformer.from_crs(4326, 3857, always_xy=True).transform
        x0, y0 = to_screen(page, *to_3857(AOI[0], AOI[3]))
        x1, y1 = to_screen(page, *to_3857(AOI[2], AOI[1]))
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
        page.mouse.move(x1, y1, steps=5)
        page.mouse.up()
        wait_for(lambda: "area lon" in text(page, ".eom-shape-info"), 30, "the drawn area")
        shot(page, "20_review_drawn_area")
        f = model(page, "eom-figure")  # 3 screen pixels of the frame, in degrees
        tol = 3 * (f["x1"] - f["x0"]) / f["w"] * 360 / 40075016.7
        page.locator(".eom-shape-area button").click()
        tab(page, "Scope")
        drawn = wait_for(lambda: page.locator(".eom-aoi textarea").first.input_value(), 30,
                         "the drawn area in Scope")
        area = shapely.from_wkt(drawn)
        assert np.allclose(area.bounds, AOI, atol=tol), (area.bounds, AOI, tol)
        assert area.equals(shapely.box(*area.bounds))  # a box stays a box in lon/lat
        where = page.locator(".eom-where input").first
        where.fill(WHERE)
        where.press("Enter")
        wait_for(lambda: page.locator(".eom-products .tabulator-row.tabulator-selected")
                 .count() == 4, 60, "the area ticking both cities' products")
        page.locator(".eom-start button").click()
        wait_for(lambda: page.locator(".eom-batch .eom-card").count() > 0, 120, "the batch")
        wait_for(lambda: "session" in status(page) or "Learn" in status(page), 30, "session")
        sid = re.search(r"session ([0-9a-f]{16})", status(page)).group(1)
        with open_store(db, read_only=True) as store:
            rec = store.session(sid)
            scope = Session.open(store, sid).patch_ids
            rows = store.query_arrow(
                "SELECT patch_id, product_id, min_lon, min_lat, max_lon, max_lat FROM "
                "scope_rows WHERE level = 32 AND " + WHERE).to_pylist()
        assert shapely.from_wkt(rec.params.aoi_wkt).equals(area) and rec.params.where == WHERE
        expected = sorted(r["patch_id"] for r in rows if shapely.box(
            r["min_lon"], r["min_lat"], r["max_lon"], r["max_lat"]).intersects(area))
        assert scope.tolist() == expected  # the area and the filter, as SQL and shapely say
        assert {r["product_id"] for r in rows if r["patch_id"] in set(expected)} \
            == set(firsts.values())
        # label a few from the reference: the changes of the batch and 3 others, until
        # there is a change among the labels (a diverse batch may hold none)
        yes = 0
        for _ in range(6):
            ids = batch_ids(page)
            pick = [i for i in ids if truth[i]] + [i for i in ids if not truth[i]][:3]
            for pid in pick:
                before = n_labels(page)
                answer(page, ".eom-batch", pid, truth[pid])
                wait_for(lambda b=before: n_labels(page) > b, 60, f"label of {pid}")
            yes += sum(truth[i] for i in pick)
            if yes:
                break
            learn(page)
        assert yes, "no change found in six batches"
        learned = learn(page)
        labels, rounds = db_state(db, sid)
        assert rounds[-1].round == learned and rounds[-1].fitted
        # both cities' first dates carry the ranking on the one map
        wait_for(lambda: set(overlay_products(page)) == set(firsts.values()), 60,
                 f"both products' overlays ({firsts}; shown: {overlay_products(page)})")
        shot(page, "10_two_cities_overlays")

        # review: lower the threshold with the slider's keys until 5 unlabelled patches
        # that are no change show on the first page
        tab(page, "Review")
        wait_for(lambda: "patches score" in text(page, ".eom-review-count"), 30, "the count")
        handle = page.locator(".eom-review-threshold .noUi-handle").first
        handle.focus()
        for _ in range(40):
            shown = shown_threshold(page)
            handle.press("ArrowLeft")
            wait_for(lambda s=shown: shown_threshold(page) < s, 30, "the slider to move")
            page.wait_for_timeout(300)  # the page of thumbnails follows the count
            cands = [i for i in review_cards(page) if i not in labels and not truth[i]]
            if len(cands) >= 5:
                break
        threshold = shown_threshold(page)
        assert threshold < 0.5
        count = int(re.search(r"(\d+) patches score", text(page, ".eom-review-count"))[1])
        assert count >= len(review_cards(page)) >= 5
        five = cands[:5]
        for pid in five:
            page.locator(f".eom-review-grid .eom-card[data-id='{pid}'] .eom-thumb").click()
            wait_for(lambda p=pid: page.locator(
                f".eom-review-grid .eom-card.eom-selected[data-id='{p}']").count() == 1, 30,
                f"patch {pid} selected")
        no = page.locator(".eom-review-no button")
        wait_for(lambda: "No for 5 selected" in no.inner_text(), 30, "5 selected")
        # the map outlines them (thick), and the other patches above the threshold (thin)
        wait_for(lambda: set(map_review(page)["selected"]) == set(five), 30,
                 "the selection outlined on the map")
        assert len(map_review(page)["above"]) == min(count, MAX_ABOVE_OUTLINES) - 5
        shot(page, "11_review_selected")
        no.click()
        wait_for(lambda: rounds_done(page) == learned + 1, 90, "the re-fit after the bulk no")
        labels, rounds = db_state(db, sid)
        assert {p: labels[p] for p in five} == {p: (-1, "train") for p in five}
        assert rounds[-1].round == learned + 1 and rounds[-1].fitted
        assert set(five) <= {p for p, v in rounds[-1].labels if v == -1}
        wait_for(lambda: page.locator(".eom-review-grid .eom-card.eom-selected").count() == 0,
                 30, "the selection cleared")

        # the quality check: 20 patches, answered from the reference
        tab(page, "Quality")
        size = page.locator(".eom-check-n input").first
        size.fill("20")
        size.press("Enter")
        page.locator(".eom-check button").click()
        grid = ".eom-check-grid"
        wait_for(lambda: page.locator(f"{grid} .eom-card").count() == 20, 60, "the sample")
        shot(page, "12_quality_sample")
        sample = [int(v) for v in page.locator(f"{grid} .eom-card").evaluate_all(
            "cs => cs.map(c => c.dataset.id)")]
        assert not set(sample) & set(labels)
        for k, pid in enumerate(sample):
            answer(page, grid, pid, truth[pid])
            wait_for(lambda p=pid: page.locator(f"{grid} .eom-card[data-id='{p}']").count()
                     == 0, 60, f"answer {k + 1}")
        wait_for(lambda: "20 answers" in text(page, ".eom-quality"), 60, "the estimate")
        shot(page, "13_quality_estimate")
        line = text(page, ".eom-quality")
        shown_p = shown_interval(line, "precision")
        shown_r = shown_interval(line, "recall")

        # the positives as polygons, from the Publish tab, read back
        tab(page, "Publish")
        with page.expect_download(timeout=120_000) as dl:
            page.locator(".eom-polygons-geojson button").click()
        zipped = tmp_path / "polygons.zip"
        dl.value.save_as(zipped)
    assert not refused, f"the app tried to leave 127.0.0.1: {refused}"
    with zipfile.ZipFile(zipped) as z:
        z.extractall(tmp_path / "polygons")
    (geojson,) = (tmp_path / "polygons").glob("*.geojson")
    meta, _, geoms, fields = pyogrio.raw.read(geojson)
    got = dict(zip(meta["fields"].tolist(), fields, strict=True))
    with open_store(db, read_only=True) as store:
        s = Session.open(store, sid)
        polys = dissolve(session_positives(s, 0.5), {p: store.product(p) for p in s.product_ids})
    assert meta["crs"] == "EPSG:4326" and len(geoms) == len(polys) > 0
    assert int(got["patch_count"].sum()) == sum(p.patch_count for p in polys)
    assert set(got["product_id"]) <= set(firsts.values())
    geodesic = [abs(Geod(ellps="WGS84").geometry_area_perimeter(shapely.from_wkb(g))[0]) / 1e4
                for g in geoms]
    assert np.allclose(geodesic, np.asarray(got["area_ha"], np.float64), rtol=1e-6)

    labels, rounds = db_state(db, sid)
    r = rounds[-1]
    assert r.round == learned + 1 and r.verified_n == 20
    assert r.verify_threshold == pytest.approx(threshold)
    assert {p: labels[p] for p in sample} == {p: (1 if truth[p] else -1, "verify")
                                              for p in sample}
    # the page shows the round's values (one decimal, in %)
    assert shown_p == tuple(f"{100 * v:.1f}" for v in (
        r.precision_estimate, r.precision_low, r.precision_high))
    assert shown_r == tuple(f"{100 * v:.1f}" for v in (
        r.recall_estimate, r.recall_low, r.recall_high))
    # and the estimator, from the labels in the database, gives the same numbers
    with open_store(db, read_only=True) as store:
        est = recompute(store, Session.open(store, sid))
    assert (est.precision, est.precision_low, est.precision_high, est.recall,
            est.recall_low, est.recall_high, est.verified) == (
        r.precision_estimate, r.precision_low, r.precision_high, r.recall_estimate,
        r.recall_low, r.recall_high, r.verified_n)
    assert np.isfinite([est.precision, est.recall]).all()
