"""The app's batch jobs without a browser: the encoder job refuses, before any process
starts, a product that lacks the bands chosen in 'Encoder sees'; the extract job uses the
ssl encoder chosen in the app (the jobs themselves run in tests/ui/test_workspace.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import engine_db, engine_url


@pytest.fixture
def four_band_store(four_band_pair, tmp_path: Path, monkeypatch):
    """A four-band COG (B02, B03, B04, B08 of a real OSCD date) beside the full date."""
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path))
    with open_store(engine_url(engine_db(tmp_path, "db"))) as store:
        ingest_paths(store, list(four_band_pair), levels=(32,))
        yield store


def test_the_encoder_job_names_the_product_without_the_chosen_bands(four_band_store):
    from eominer.ui.jobs import ENCODER_BANDS, JobsView
    from eominer.ui.state import AppState

    ids = {len(p.bands): p.product_id for p in four_band_store.product_list()}
    assert sorted(ids) == [4, 13]
    state = AppState(four_band_store, user="ana")
    view = JobsView(state=state, selected=lambda: sorted(ids.values()),
                    on_finished=lambda: None)
    assert view._encoder_bands.value == "4 bands (10 m)"  # what every product has
    assert ENCODER_BANDS["10 bands (10 and 20 m)"][4:] == ("B05", "B06", "B07", "B8A",
                                                           "B11", "B12")
    view._encoder_bands.value = "10 bands (10 and 20 m)"
    view._run_encoder()
    assert state.severity == "error"
    assert (f"product {ids[4]} lacks band(s) B05, B06, B07, B8A, B11, B12: choose "
            "'4 bands (10 m)' in 'Encoder sees'") in state.message
    assert not [j for j in view.launcher.active() if j.key[0] == "encoder"]  # nothing ran


def record_starts(launcher) -> list:
    """The server's launcher with its process start recorded instead of run: the command
    the app builds is what is asserted here (`eominer extract --param ssl.model_id` runs
    for real in tests/compute/test_extract.py)."""
    from types import SimpleNamespace

    calls: list = []
    launcher.start = lambda *a, **k: calls.append((a, k)) or SimpleNamespace(label="x")
    return calls


def test_the_extract_job_uses_the_ssl_encoder_chosen_in_the_app(four_band_store):
    """Two encoders trained for real (one epoch each, seeds 0 and 1) are listed newest
    first after 'the newest'; choosing the older one puts `--param
    ssl.model_id=ssl-v1` in the extract command, and only when `ssl` is extracted."""
    pytest.importorskip("tensorflow", reason="training an encoder needs TensorFlow (not in "
                        "the monetdbe side environment)")
    from eominer.features.encoder import set_single_thread
    from eominer.features.ssl import train_ssl
    from eominer.ui.jobs import NEWEST, JobsView
    from eominer.ui.state import AppState

    set_single_thread()
    state = AppState(four_band_store, user="ana")
    ids = sorted(p.product_id for p in four_band_store.product_list())
    view = JobsView(state=state, selected=lambda: ids, on_finished=lambda: None)
    assert list(view._ssl_model.options) == [NEWEST]  # none trained yet
    rows = [train_ssl(four_band_store, epochs=1, dim=8, max_patches=32, seed=s)
            for s in (0, 1)]
    assert [r["model_id"] for r in rows] == ["ssl-v1", "ssl-v2"]
    view._reload_models()  # what a finished job does
    labels = list(view._ssl_model.options)
    assert labels[0] == NEWEST and [view._ssl_model.options[k] for k in labels[1:]] == \
        ["ssl-v2", "ssl-v1"]
    assert labels[2].startswith("ssl-v1: 4 bands, 1 epochs, seed 0, 20")
    calls = record_starts(view.launcher)
    view._ssl_model.value = "ssl-v1"
    view._features.value = ["spectral", "ssl"]
    view._run_extract()
    (args, _), = calls
    assert args[2][-2:] == ["--param", "ssl.model_id=ssl-v1"] and "ssl.model_id=ssl-v1" in args[0]
    assert args[1] == f"extract spectral, ssl (ssl.model_id=ssl-v1) on {len(ids)} product(s)"
    view._features.value = ["spectral"]  # no ssl: no encoder to choose
    view._run_extract()
    assert "--param" not in calls[1][0][2]
    view._ssl_model.value = ""  # the newest: extract's own default
    view._features.value = ["ssl"]
    view._run_extract()
    assert "--param" not in calls[2][0][2]
    view._ssl_model.value = "ssl-v1"
    view._reload_models()  # another job finished: the choice stays
    assert view._ssl_model.value == "ssl-v1"


def test_a_running_job_says_its_last_epoch_before_its_first_commit(tmp_path: Path):
    """An encoder training is one task: no progress line until it ends. The job list
    says the job's own last line (an epoch and its loss) instead of "starting",
    passing over library logs; a task committed then counts as before."""
    import subprocess
    import sys
    import time

    from eominer.ui.jobs import AppJob

    output, log = tmp_path / "job.log", tmp_path / "job.progress.jsonl"
    script = ("import time\n"
              "print('training ssl in this process (30 epochs, 1152 patches of 1 product(s))')\n"
              "print('epoch 1/30: VICReg loss 21.9150')\n"
              "print('epoch 2/30: VICReg loss 18.2076')\n"
              "print('2026-12-07 01:20:00.0 I tensorflow/core/util/port.cc:153] oneDNN on')\n"
              "time.sleep(60)\n")
    with open(output, "w", encoding="utf-8") as out:
        proc = subprocess.Popen([sys.executable, "-u", "-c", script], stdout=out,
                                stderr=subprocess.STDOUT)
    job = AppJob(("encoder", "P"), "train the ssl encoder on 1 product(s)", "ana", proc, log,
                 output)
    try:
        deadline = time.monotonic() + 30
        while "oneDNN" not in output.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job.describe().startswith("train the ssl encoder on 1 product(s): running, "
                                         "epoch 2/30: VICReg loss 18.2076 (0 min, started "
                                         "by ana)")
        log.write_text('{"task_id": "t", "done": 1, "of": 1, "patches": 0, "worker": "w"}\n')
        assert "running, 1/1 tasks (" in job.describe()
    finally:
        proc.kill()
        proc.wait(30)
    output.write_text("")
    assert job.said() is None


def test_change_of_more_than_two_selected_dates_pairs_each_with_its_next(oscd, tmp_path,
                                                                        monkeypatch):
    """Paris and Bercy, two crops of one tile on the same two days: four selected
    products make two pairs, each place with its own next date, in one job (what
    `eominer change --consecutive` pairs); two make their pair in date order."""
    from eominer.ingest import ingest_paths
    from eominer.store import open_store
    from eominer.ui.jobs import JobsView
    from eominer.ui.state import AppState

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path))
    with open_store(engine_url(engine_db(tmp_path, "db"))) as store:
        ids = {c: [r.product_id for r in ingest_paths(
            store, [oscd / "images" / c / "imgs_1", oscd / "images" / c / "imgs_2"],
            levels=(64,))] for c in ("paris", "bercy")}
        state = AppState(store, user="ana")
        chosen: list[str] = []
        view = JobsView(state=state, selected=lambda: chosen, on_finished=lambda: None)
        calls = record_starts(view.launcher)
        chosen[:] = [*ids["paris"], *ids["bercy"]]
        view._run_change()
        (args, _), = calls
        listed = Path(args[2][-1]).read_text().splitlines()
        assert args[2][:2] == ["change", "--pairs"]
        assert sorted(listed) == sorted(f"{a} {b}" for a, b in ids.values())
        assert args[1] == f"change {listed[0].replace(' ', ' -> ')} and 1 more pair(s)"
        chosen[:] = ids["paris"][::-1]  # newest first: still in date order
        view._run_change()
        assert Path(calls[1][0][2][-1]).read_text() == " ".join(ids["paris"]) + "\n"
        assert "--features" not in calls[1][0][2]
        view._both_dates.value = True  # and both dates' features of the sets chosen
        view._features.value = ["spectral", "gabor"]
        view._run_change()
        assert calls[2][0][2][-2:] == ["--features", "gabor,spectral"]
        assert calls[2][0][1].endswith(", with both dates' gabor, spectral")
        view._features.value = []
        view._run_change()
        assert state.severity == "error" and "choose the feature sets whose both dates'" in \
            state.message and len(calls) == 3
        chosen[:] = ids["paris"][:1]
        view._run_change()
        assert state.severity == "error" and "select 2 products of the same place" in \
            state.message and len(calls) == 3
