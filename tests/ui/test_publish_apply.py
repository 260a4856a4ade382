"""Publish tab's "Apply to the archive" (ui/publish.py, ui/jobs.py) without a browser: the
button saves the session's model and runs the real `eominer apply` job in a process of
its own (local Ray); the annotations it writes equal the session's scores, the view
reports what was written, a second click while it runs is refused, and without a
session or a model the button says what to do."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from eominer.learning.session import Session
from tests.learning.sessions import _create, _trained, answered

from .conftest import job_process


@job_process
@pytest.mark.ray
@pytest.mark.timeout(400)
def test_apply_to_the_archive_from_the_publish_tab(learn_store, oscd_db):
    from eominer.ui.jobs import JobsView
    from eominer.ui.publish import PublishView
    from eominer.ui.state import AppState

    state = AppState(learn_store, user="ana")
    view = PublishView(state=state)
    view.apply()  # no session yet
    assert state.severity == "warning" and "start a session" in state.message

    state.session = _create(learn_store, oscd_db)  # no round yet: no model to apply
    view.apply()
    assert state.severity == "error" and "run a round with labels first" in state.message
    assert view._job is None

    s = _trained(learn_store, oscd_db)
    state.session = s
    view.threshold = 0.6
    view.apply()
    assert state.severity == "success", state.message
    assert "started in its own process" in state.message
    job = view._job
    model_id = job.key[1]
    assert model_id == s.model_version()
    assert job.state == "running"  # Ray alone takes seconds to start
    view.apply()  # the same model again while it runs: refused, with its progress
    assert state.severity == "error" and "is already running" in state.message

    deadline = time.time() + 300
    while job.state == "running" and time.time() < deadline:
        time.sleep(1)
    assert job.state == "done", job.output.read_text()

    scores = dict(zip(s.patch_ids.tolist(), s.current_scores().tolist()))
    rows = learn_store.query("SELECT patch_id, score, positive FROM annotations "
                             "WHERE model_version = ? AND source = 'apply'", (model_id,))
    got = {int(p): (float(v), bool(pos)) for p, v, pos in rows}
    assert set(got) == set(scores) and len(got) == 896
    model_scores = np.asarray([got[p][0] for p in scores])  # the session's answers over
    assert np.abs(answered(s, model_scores) - list(scores.values())).max() < 1e-5  # them
    n_pos = sum(pos for _, pos in got.values())
    assert n_pos == int((model_scores.astype(np.float32) >= 0.6).sum()) > 0
    assert all(pos == (v >= np.float32(0.6)) for v, pos in got.values())

    view.refresh()  # what the app's periodic poll does
    info = view._applied.object
    assert 'data-state="done"' in info
    assert f"<b>896</b> patches of 1 product(s) scored, <b>{n_pos}</b> positive" in info
    assert f"model_version = '{model_id}'" in info

    # a reloaded page (a new view of the same session) follows the same job
    again = PublishView(state=AppState(learn_store, user="ana", session=s))
    assert again._job is job and again._applied.object == info

    jobs = JobsView(lambda: [], lambda: None, state=state)  # Scope's list of the same jobs
    jobs._seen.clear()
    jobs.refresh()
    assert f"apply model {model_id}: done; its scores are rows of annotations" in (
        state.message)


def test_the_publish_tab_says_how_far_to_trust_the_result(learn_store, oscd_db):
    """Beside the button: the latest quality check and, short of the stop advice, the
    advice (as `eominer session publish` prints them)."""
    from eominer.learning.quality_check import interval_text
    from eominer.ui.publish import PublishView
    from eominer.ui.state import AppState

    state = AppState(learn_store, user="ana")
    view = PublishView(state=state)
    assert view._trust.object == ""
    s = _trained(learn_store, oscd_db)
    state.session = s
    view._render_trust()
    assert "no quality check yet" in view._trust.object
    assert s.quality()["advice"] in view._trust.object and not s.quality()["stop"]
    state.check_quality(20)
    truth = oscd_db["truth"][16]
    for p in list(state.check_ids):
        state.verify(p, 1 if truth[p] > 0.05 else -1)
    view._render_trust()
    r = s.rounds()[-1]
    assert r.verified_n and f"{r.verified_n} answers" in view._trust.object
    assert interval_text(r.precision_estimate, r.precision_low, r.precision_high) in (
        view._trust.object)


def test_publish_and_downloads_wait_for_a_round_and_follow_the_threshold(learn_store, oscd_db):
    """Before a round the tab greys out Publish, the downloads and Apply (a click could
    only say "run a round first"); after one they are live, and the GeoJSON download's
    `positive` is the view's threshold as publishing decides it."""
    import json

    from eominer.learning.publish import decide
    from eominer.ui.publish import PublishView
    from eominer.ui.state import AppState

    state = AppState(learn_store, user="ana")
    view = PublishView(state=state)
    controls = [view._publish, view._apply, *view._downloads, *view._polygon_downloads]
    assert len(controls) == 9 and all(w.disabled for w in controls)
    first = _create(learn_store, oscd_db)
    state.session = first
    assert all(w.disabled for w in controls)
    assert "no round yet" in view._trust.object
    for p in first.patch_ids[:2]:  # a round without a "yes" fits no model
        first.label(int(p), -1, "ana")
    first.run_round()
    assert [r.fitted for r in first.rounds()] == [False]
    state.session = None
    state.session = first
    assert "no round yet" not in view._trust.object and all(w.disabled for w in controls)
    s = _trained(learn_store, oscd_db)
    state.session = s
    assert not any(w.disabled for w in controls), [w for w in controls if w.disabled]
    view.threshold = 0.6
    geojson = view._downloads[0]
    assert geojson.label == "GeoJSON"
    fc = json.loads(asyncio.run(geojson.callback()).getvalue())
    got = {f["properties"]["patch_id"]: f["properties"]["positive"] for f in fc["features"]}
    _, positive, _ = decide(s, 0.6)
    assert got == dict(zip(s.patch_ids.tolist(), positive.tolist()))
    _, at_half, _ = decide(s, 0.5)
    assert positive.sum() < at_half.sum()  # 0.6 is not the old exports' fixed 0.5
    state.session = None
    assert all(w.disabled for w in controls)
    # published at 0.6, the session comes back tomorrow: the slider starts at 0.6
    state.session = s
    assert view.threshold == 0.5  # where the session stands: never published yet
    view.threshold = 0.6
    view._publish.clicks += 1
    assert state.severity == "success", state.message
    version = s.model_version()
    assert f"as model <code>{version}</code> (score >= 0.6, " in view._info.object
    again = PublishView(state=AppState(learn_store, user="ana"))
    assert again._info.object == "<i>no session yet</i>"
    again.state.session = reopened = Session.open(learn_store, s.session_id)
    assert again.threshold == 0.6 and view.threshold == 0.6
    # what was published shows in a new page too (it said "not published yet")
    info = again._info.object
    assert f"as model <code>{version}</code> (score >= 0.6, " in info
    assert "changed since" not in info
    ids, _ = reopened.labels()
    reopened.label(int(next(p for p in reopened.patch_ids if p not in set(ids.tolist()))), -1,
                   "ana")
    again.state.session = None
    again.state.session = reopened
    reopened.run_round()
    again.state.scores_version += 1  # as the Mine view's round does
    assert reopened.model_version() != version
    assert "<b>the ranking has changed since</b>" in again._info.object
    state.session = first  # another session: its own threshold
    assert view.threshold == 0.5


def test_a_download_is_written_while_the_server_answers_others(learn_store, oscd_db,
                                                               monkeypatch, tmp_path):
    """The GeoJSON and GeoPackage downloads read the session's columns on the server's
    thread and write the file in a worker thread: other coroutines of the server's loop
    (every other browser session) run meanwhile. The writer is slowed here so that the
    loop has time to show it; the GeoJSON is the export's own, byte for byte."""
    import pyogrio.raw

    from eominer.learning import export
    from eominer.ui.publish import PublishView
    from eominer.ui.state import AppState

    real = {".geojson": export.write_geojson, ".gpkg": export.write_gpkg}
    threads: list[str] = []

    def slowed(write):
        def slow(columns, path):
            threads.append(threading.current_thread().name)
            time.sleep(0.5)
            return write(columns, path)
        return slow

    state = AppState(learn_store, user="ana")
    view = PublishView(state=state)
    state.session = s = _trained(learn_store, oscd_db)
    refs = {".geojson": export.export_geojson(s, tmp_path / "ref.geojson"),
            ".gpkg": export.export_gpkg(s, tmp_path / "ref.gpkg")}
    monkeypatch.setattr(export, "write_geojson", slowed(real[".geojson"]))
    monkeypatch.setattr(export, "write_gpkg", slowed(real[".gpkg"]))

    async def download(button) -> tuple[bytes, int]:
        ticks, done = 0, False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.01)

        tick = asyncio.create_task(ticker())
        data = (await button.callback()).getvalue()
        done = True
        await tick
        return data, ticks

    for button, suffix in zip(view._downloads[:2], real):
        data, ticks = asyncio.run(download(button))
        assert ticks >= 10, ticks  # the loop ran while the file was written
        assert state.severity == "success", state.message
        got = tmp_path / f"got{suffix}"
        got.write_bytes(data)
        ref = refs[suffix]
        if suffix == ".geojson":
            assert data == ref.read_bytes()
        else:
            a, b = (pyogrio.raw.read(p, columns=["patch_id", "positive"])[3] for p in (got, ref))
            assert len(a[0]) == 896 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(threads) == 2 and threading.main_thread().name not in threads
