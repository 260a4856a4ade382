"""`eominer eval fusion` and the evaluator behind it, on the BigEarthNet sample."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from eominer.cli import cli
from eominer.errors import FeatureError
from eominer.evaluation import bigearthnet
from eominer.evaluation.fusion import default_methods, evaluate


def test_eval_fusion_prints_the_table_and_caveats(ben):
    args = ["eval", "fusion", "--data", str(ben), "--repeats", "1"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    for row in ("S2 alone", "S1 alone", "feature fusion", "decision fusion (product)",
                "decision fusion (stack)", "prior (no image)", "caveats:",
                "27 paired patches, 12 labels present"):
        assert row in out.output
    res = CliRunner().invoke(cli, [*args, "--format", "json"])
    rows = {r["method"]: r for r in json.loads(res.output)}
    # fall-back: with the optics clouded, the fusions score exactly like S1 alone
    for m in ("feature fusion, S2 clouded", "decision fusion (product), S2 clouded"):
        assert rows[m]["micro_f1"] == rows["S1 alone"]["micro_f1"]
    # ...while the optical model fed cloud collapses
    assert float(rows["S2 alone, S2 clouded"]["micro_f1"].split()[0]) < float(
        rows["S2 alone"]["micro_f1"].split()[0]) - 0.1
    assert rows["S2 alone"]["folds"] == 3
    # where it ran, in each row and under the table (docs/learning.md, "names its
    # environment")
    env = rows["S2 alone"]["environment"]
    assert {"date", "eominer", "commit", "python", "machine", "cpus", "packages"} <= set(env)
    assert "scikit-learn" in env["packages"]
    last = out.output.splitlines()[-1]
    assert last.startswith("_Run ") and f"with eominer {env['eominer']}" in last


def test_eval_fusion_bad_folder(tmp_path):
    out = CliRunner().invoke(cli, ["eval", "fusion", "--data", str(tmp_path)])
    assert out.exit_code != 0
    assert "no paired S1/S2 BigEarthNet patches" in str(out.exception)


def test_evaluate_scores_every_fold_and_refuses_too_few_patches(ben):
    data = bigearthnet.load(ben)
    methods = [m for m in default_methods(include_cloudy=False) if m.name in (
        "S2 alone", "S1 alone", "feature fusion")]
    report = evaluate(data, k=3, repeats=1, methods=methods)
    assert set(report.scores) == {"S2 alone", "S1 alone", "feature fusion"}
    assert all(len(v) == 3 for v in report.scores.values())
    assert report.n_patches == 27 and report.unpaired == 3
    few = bigearthnet.Dataset(data.patches[:5], ())
    with pytest.raises(FeatureError, match="5 paired patches are too few for 3-fold"):
        evaluate(few, k=3)
