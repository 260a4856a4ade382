from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from compute.fusion import train
from eominer.errors import FeatureError, GridMismatchError, ModelNotTrainedError
from eominer.fusion.classify import classify
from eominer.fusion.labels import BEN19, Vocabulary

S2 = "S2A_MSIL2A_20170617T113321_36_85"
S1 = "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_36_85"


@pytest.mark.ray
def test_train_on_ray_then_classify_every_paired_patch(paired, ben, capsys):
    store, *_ = paired
    with pytest.raises(ModelNotTrainedError, match="eominer fusion train"):
        classify(store)
    from compute.runtime import ray_session

    capsys.readouterr()
    with ray_session(num_cpus=1):  # a Ray up in the process: the task goes to a worker
        row = train(store, ben, epochs=1)
    # its epoch, said on the worker, printed by this process (the terminal, the app)
    assert re.fullmatch(r"epoch 1/1: loss \d+\.\d{4}", capsys.readouterr().out.strip())
    (worker,) = {t["worker"] for t in store.tasks().to_pylist()
                 if t["kind"] == "fusion-train"}
    assert not worker.endswith(f":{os.getpid()}")
    assert row["kind"] == "fusion_net" and Path(row["path"]).exists()
    assert row["metrics"]["n_patches"] == 27 and len(row["trained_on"]) == 27
    assert row["params"]["gpu"] is False  # no GPU on this machine: a CPU task

    cloudy = int(store.patch_ids([S2], 120)[0])
    store.execute("UPDATE patches SET cloud_fraction = ? WHERE patch_id = ?", (1.0, cloudy))
    try:
        r = classify(store, threshold=0.5)
    finally:
        store.execute("UPDATE patches SET cloud_fraction = NULL WHERE patch_id = ?", (cloudy,))
    assert r["patches"] == 3 and r["labels"] == 12 and r["s1_only"] == 1
    rows = store.query(
        "SELECT patch_id, label_name, source, score, positive, model_version FROM annotations "
        "WHERE session_id = ? ORDER BY patch_id, label_name", (r["session_id"],))
    assert len(rows) == 3 * 12
    assert {x[2] for x in rows if x[0] == cloudy} == {"fusion:s1-only"}
    assert {x[2] for x in rows if x[0] != cloudy} == {"fusion"}
    assert all(x[5] == row["model_id"] and x[4] == (x[3] >= 0.5) for x in rows)
    assert "arable_land" in {x[1] for x in rows}

    with pytest.raises(FeatureError, match="label vocabulary mismatch"):
        classify(store, vocabulary=Vocabulary(BEN19))
    with pytest.raises(GridMismatchError, match="trained on 120x120 px patches, got 60x60"):
        classify(store, level=60)
    with pytest.raises(ModelNotTrainedError, match="no fusion network nope"):
        classify(store, model="nope")


@pytest.mark.ray
def test_training_on_too_few_patches_is_refused(paired, ben, tmp_path):
    """A folder holding one patch (a stray copy found under --data) trained a network and
    scored it 1.0 on that patch: now refused, naming the count, and no model is saved."""
    import shutil

    from eominer.errors import JobError

    store, *_ = paired
    for sensor, name in (("s2-tiny", S2), ("s1-tiny", S1)):
        shutil.copytree(ben / sensor / name, tmp_path / "few" / sensor / name)
    before = store.query("SELECT COUNT(*) FROM models")[0][0]
    with pytest.raises(JobError, match=r"holds 1 labelled patch\(es\): the fusion network "
                                       r"needs at least 10"):
        train(store, tmp_path / "few", epochs=1, num_cpus=1)
    assert store.query("SELECT COUNT(*) FROM models")[0][0] == before


def test_train_in_this_process_records_its_model(paired, ben, tmp_path, capsys):
    """`fusion train --no-ray`: the same training task in this process (no Ray), the
    same model row; with a --ray-address it is a usage error, before any database."""
    import os
    import socket

    from eominer.cli import main

    store, *_ = paired
    # the default run trains here too; a training that failed before (too few patches,
    # above) leaves its task to this one, which takes it over
    before = {r["task_id"]: r["status"] for r in store.tasks().to_pylist()}
    capsys.readouterr()
    row = train(store, ben, epochs=1, in_process=True)
    assert re.fullmatch(r"epoch 1/1: loss \d+\.\d{4}", capsys.readouterr().out.strip())
    assert row["kind"] == "fusion_net" and Path(row["path"]).exists()
    assert row["metrics"]["n_patches"] == 27 and row["params"]["gpu"] is False
    (task,) = [t for t in store.tasks().to_pylist() if t["kind"] == "fusion-train"
               and before.get(t["task_id"]) != "done" and t["status"] == "done"]
    assert task["worker"] == f"{socket.gethostname()}:{os.getpid()}"
    assert before.get(task["task_id"]) in (None, "failed")
    db = tmp_path / "never.duckdb"
    with pytest.raises(SystemExit) as stop:
        main(["fusion", "train", "--db", str(db), "--data", str(ben), "--no-ray",
              "--ray-address", "127.0.0.1:1"])
    assert stop.value.code == 2 and not db.exists()
    assert "--no-ray trains in this process: drop --ray-address" in capsys.readouterr().err
