"""eominer.ui.state without a browser."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import LEARN_ENGINE, engine_db, engine_url


def test_top_rows_match_a_full_sort():
    from eominer.ui.state import top_rows

    rng = np.random.default_rng(3)
    scores = rng.random(100_000).astype(np.float32)
    assert top_rows(scores, 40).tolist() == np.argsort(-scores, kind="stable")[:40].tolist()
    assert top_rows(scores[:5], 40).tolist() == np.argsort(-scores[:5])[:5].tolist()
    assert top_rows(np.empty(0, np.float32), 40).size == 0


def test_a_session_reopens_as_it_was(learn_store, oscd_db):
    from eominer.ui.state import AppState
    from tests.learning.sessions import _trained

    s = _trained(learn_store, oscd_db, rounds=1)
    labelled = set(s.labels()[0].tolist())
    state = AppState(learn_store, user="ana")
    state.open_session(s.session_id)
    assert state.session is not None and state.session.session_id == s.session_id
    assert (state.product_ids, state.level, state.feature_set_ids) == (
        [oscd_db["product"]], 16, [oscd_db["fs"]])
    np.testing.assert_array_equal(state.scores, s.current_scores())  # the last ranking
    pending = [int(i) for i in s.pending_queries() if int(i) not in labelled]
    assert state.batch == pending and pending  # the next questions
    assert set(state.labelled()[0].tolist()) == labelled
    assert f"reopened: {len(labelled)} labels, {len(s.rounds())} rounds" in state.message
    assert state.review_threshold == 0.5
    s.publish(0.65)  # review and quality check start where the session was published
    state.review_threshold = 0.2
    state.open_session(s.session_id)
    assert state.review_threshold == 0.65


def test_links_to_unknown_or_private_sessions_say_why(learn_store, oscd_db):
    from eominer.learning.session import Session
    from eominer.ui.state import AppState

    private = Session.create(learn_store, "ben's", "ben", "new_construction",
                             [oscd_db["product"]], 16, [oscd_db["fs"]])
    state = AppState(learn_store, user="ana")
    state.open_session("0123456789abcdef")
    assert state.session is None and state.severity == "error"
    assert "no session '0123456789abcdef'" in state.message
    state.open_session(private.session_id)
    assert state.session is None and "belongs to ben and is not shared" in state.message


def test_re_extracted_features_are_never_mixed_silently(learn_store, oscd_db):
    from eominer.ui.state import AppState
    from tests.learning.sessions import _trained

    s = _trained(learn_store, oscd_db, rounds=1)
    n_rounds = len(s.rounds())
    fs = learn_store.feature_set(oscd_db["fs"])
    ids, X, _ = learn_store.read_features([fs.feature_set_id], [oscd_db["product"]], 16)
    learn_store.write_features(fs, ids, X * 1.5 + 0.1)  # a new extract of the same set
    state = AppState(learn_store, user="ana")
    state.open_session(s.session_id)
    assert state.session is None and state.stale_session == s.session_id
    assert "features of session" in state.message and state.severity == "error"
    state.open_session(s.session_id, accept_feature_change=True)  # re-rank the same labels
    assert state.session.session_id == s.session_id and state.stale_session == ""
    assert len(state.session.rounds()) == n_rounds + 1 and state.scores is not None
    assert set(state.session.labels()[0].tolist()) == set(s.labels()[0].tolist())


@pytest.mark.skipif(LEARN_ENGINE != "duckdb", reason="DuckDB's lease on its file: released "
                    "while the app is idle (monetdbe holds its folder open)")
def test_a_database_moved_while_the_app_runs_is_a_message_not_a_crash(learn_store, oscd_db,
                                                                       tmp_path):
    import time
    from pathlib import Path

    from eominer.store.engines import DuckDBEngine
    from eominer.ui.state import AppState
    from eominer.ui.status import StatusLine
    from tests.learning.sessions import _trained

    s = _trained(learn_store, oscd_db, rounds=1)
    state = AppState(learn_store, user="ana")
    time.sleep(DuckDBEngine.linger * 4 + 0.2)  # the app is idle: the file is released
    path = Path(learn_store.url.removeprefix("duckdb:///"))
    path.rename(tmp_path / "elsewhere.duckdb")
    for _ in range(2):  # every action says it; none raises
        state.open_session(s.session_id)
        assert state.session is None and state.severity == "error"
        assert "was deleted or moved while eominer was using it" in state.message
    StatusLine(state=state).refresh_jobs()  # the periodic poll keeps quiet
    assert not path.exists()


def test_before_the_first_yes_a_prior_session_shows_the_priors_ranking(learn_store, oscd_db):
    """Start, rounds with only "no", reopen, then the first fit: the map's scores are the
    prior column's ranking until a round is fitted, and say so."""
    from eominer.ui.review import ReviewView
    from eominer.ui.state import AppState, _top, top_rows
    from tests.learning.sessions import answered
    from tests.learning.test_prior import COLUMN, by_hand
    from tests.learning.test_saved import raw_features

    state = AppState(learn_store, user="ana", product_ids=[oscd_db["product"]], level=16,
                     feature_set_ids=[oscd_db["fs"]], concept="new_construction",
                     model_kind="logistic", prior=COLUMN)
    review = ReviewView(state=state)
    state.start_session()
    s = state.session
    assert s is not None, state.message
    raw = raw_features(learn_store, s)[:, s.data.names.index(f"{oscd_db['fs']}__{COLUMN}")]
    np.testing.assert_allclose(state.scores, by_hand(np.full(len(raw), 0.5), raw, 4.0),
                               atol=2e-6)
    assert state.prior_only and f"the map ranks them by {COLUMN} until the first yes" \
        in state.message
    # Top results: the column's 40 highest, in its order (the very top ties at 1.0 in
    # float32: the column orders them, not the row)
    assert (state.scores == 1.0).sum() > 1
    assert state.top == s.patch_ids[np.argsort(-raw, kind="stable")[:40]].tolist()
    assert f"by {COLUMN} alone (no fitted round yet)" in review._count.object
    # "no" to the first batch: the prior's ranking at the weight of those labels
    first = list(state.batch)
    for p in first:
        state.label(p, -1)
    state.learn()
    assert state.last_round.scores is None and state.prior_only
    np.testing.assert_allclose(state.scores, answered(s, by_hand(
        np.full(len(raw), 0.5), raw, 4.0 * 20 / (20 + len(first))), s.labels()), atol=2e-6)
    state.publish(0.5)  # nothing fitted to publish: said, nothing written
    assert state.severity == "error" and "no fitted round yet" in state.message
    other = AppState(learn_store, user="ana")  # another tab reopens it: the same view
    other.open_session(s.session_id)
    np.testing.assert_array_equal(other.scores, state.scores)
    assert other.prior_only
    # a "yes": the model's ranking (mixed with the prior), no longer the prior alone
    yes = int(s.patch_ids[top_rows(state.scores, 1)[0]])
    state.label(yes, 1)
    state.learn()
    assert state.last_round.scores is not None and not state.prior_only
    np.testing.assert_array_equal(state.scores, state.last_round.scores)
    assert "alone" not in review._count.object
    # the ranking shows the answers (the "yes" at 1, the "no" at 0); Top results lists
    # the best of the patches not answered yet
    answered_ids = s.labels()[0]
    rows = s.data.rows(answered_ids)
    assert state.scores[s.data.rows([yes])[0]] == 1.0 and set(state.scores[rows]) == {0.0, 1.0}
    top = _top(s, state.scores)
    assert len(top) == 40 and not set(top) & set(answered_ids.tolist())
    rest = np.setdiff1d(np.arange(s.data.n), rows)
    best = rest[np.argsort(-state.scores[rest], kind="stable")[:40]]
    assert set(top) == set(s.patch_ids[best].tolist())
    # that "yes" undone: no positive again, but a model was fitted; its ranking stays
    fitted = state.scores
    state.undo()
    state.learn()
    assert state.last_round.scores is None and not state.prior_only
    assert state.scores is fitted


def test_a_negative_prior_weight_puts_the_lowest_values_first_in_top_results(learn_store,
                                                                              oscd_db):
    from eominer.ui.state import _top
    from tests.learning.sessions import _create
    from tests.learning.test_prior import COLUMN
    from tests.learning.test_saved import raw_features

    s = _create(learn_store, oscd_db, params={"prior": COLUMN, "prior_weight": -30.0})
    raw = raw_features(learn_store, s)[:, s.data.names.index(f"{oscd_db['fs']}__{COLUMN}")]
    scores = s.prior_ranking()
    assert (scores == 1.0).sum() > 40  # -30 z saturates well over Top results' 40
    assert _top(s, scores) == s.patch_ids[np.argsort(raw, kind="stable")[:40]].tolist()


def stop_at_b(product: str) -> int:
    """A task function: a Ctrl-C (or SIGTERM under the CLI) while it runs product B."""
    if product == "B":
        raise KeyboardInterrupt
    return 1


def test_the_status_line_tells_jobs_at_work_from_jobs_stopped(workspace):
    """A job with a task running or pending is at work, also between two tasks (its last
    commit made, the next start not marked: it read as stopped before); one whose run
    stopped (a re-run resumes it) left its tasks `stopped`: said apart for a day after it
    stopped, then no more (before, its tasks were "waiting" for ever)."""
    import datetime as dt

    from compute.runner import JobReport, JobSpec, Task, new_job_id, run_job
    from compute.runtime import worker_name
    from eominer.store import open_store
    from eominer.store.base import utcnow
    from eominer.ui.status import jobs_line

    def tasks(job: str, n: int) -> list[dict]:
        return [{"task_id": f"{job}/{i}", "product_id": "p", "feature_set_id": None,
                 "block": i, "n_items": 1} for i in range(n)]

    def stopped_run(name: str) -> str:
        spec = JobSpec("extract", [Task(f"{name}/{p}", stop_at_b, (p,), product_id=p,
                                        n_items=1) for p in "ABC"], lambda _s, _d: None)
        report = JobReport(new_job_id("extract"), "extract")
        with pytest.raises(KeyboardInterrupt):
            run_job(store, spec, num_workers=0, report=report)
        return report.job_id

    with open_store(engine_url(engine_db(workspace, "test"))) as store:
        for job, n in (("live", 4), ("between", 2)):
            store.schedule_tasks(job, "extract", tasks(job, n))
        with store.transaction():
            store.start_tasks([("live/0", 1), ("live/1", 1), ("between/0", 1)])
            store.finish_tasks([("live/0", "w"), ("between/0", "w")])
        stopped, old = stopped_run("stopped"), stopped_run("old")
        with store.transaction():
            store.execute("UPDATE jobs SET started = ?, finished = ? WHERE job_id = ?",
                          (utcnow() - dt.timedelta(days=3),) * 2 + (old,))
        rows = store.tasks().to_pylist()
        jobs = store.unended_jobs()
    assert sorted((r["task_id"], r["status"], r["worker"]) for r in rows
                  if r["job_id"] == stopped) == [
        ("stopped/A", "done", worker_name()), ("stopped/B", "stopped", None),
        ("stopped/C", "stopped", None)]
    assert [(j["job_id"], j["running"], j["pending"], j["stopped"], j["done"], j["tasks"])
            for j in jobs] == sorted([("between", 0, 1, 0, 1, 2), ("live", 1, 2, 0, 1, 4),
                                      (old, 0, 0, 2, 1, 3), (stopped, 0, 0, 2, 1, 3)])
    now = utcnow()
    assert jobs_line(jobs, now) == (
        "Ray jobs: 1 tasks running, 3 waiting (2/6 done); 1 job(s) stopped with 2 task(s) "
        "left: Resume it under Scope's Batch jobs, or eominer jobs resume JOB_ID")
    # a day later the stopped job is no longer shown; those at work are
    assert jobs_line(jobs, now + dt.timedelta(days=1, minutes=1)) == \
        "Ray jobs: 1 tasks running, 3 waiting (2/6 done)"
    assert jobs_line([j for j in jobs if j["job_id"] == old], now) == ""
    # the process of a job at work is gone (kill -9: `driver_gone`, tests/compute/
    # test_extract.py): killed, not at work
    killed = [dict(j, gone=j["job_id"] == "live") for j in jobs]
    assert jobs_line(killed, now) == (
        "Ray jobs: 0 tasks running, 1 waiting (1/2 done); 1 job(s) stopped with 2 task(s) "
        "left; 1 job(s) killed (the process is gone) with 3 task(s) left: Resume it under "
        "Scope's Batch jobs, or eominer jobs resume JOB_ID")
