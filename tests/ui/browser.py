"""Playwright helpers: Debian's Chromium (never a downloaded build), headless, and a
route that refuses every request not addressed to 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


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
    page = ctx.new_page()
    local_only(page, refused)
    if user:
        page.goto(f"{base_url}/login")
        page.fill("input[name=username]", user[0])
        page.fill("input[name=password]", user[1])
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(f"{base_url}/**")
    page.goto(base_url + "/")
    page.wait_for_selector(".eom-tabs", timeout=30_000)
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
