"""`eominer eval change` through click, on real OSCD data."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from eominer.cli import cli


def test_eval_change_one_city(oscd, tmp_path) -> None:
    out = tmp_path / "eval.json"
    r = CliRunner().invoke(cli, ["eval", "change", "--data", str(oscd), "--cities", "bercy",
                                 "--methods", "cva,irmad", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "bercy" in r.output and "overall" in r.output
    res = json.loads(out.read_text())
    assert res["environment"]["packages"]["numpy"] == np.__version__  # what it ran with
    rows = {(x["city"], x["method"]): x for x in res["rows"]}
    assert set(rows) == {("bercy", "cva"), ("bercy", "irmad"), ("overall", "cva"),
                         ("overall", "irmad")}
    for x in res["rows"]:
        for k in ("precision", "recall", "f1", "kappa", "auprc", "f1_bound"):
            assert 0.0 <= x[k] <= 1.0 or (k == "kappa" and -1.0 <= x[k] <= 1.0)
        assert x["f1"] <= x["f1_bound"]  # no rule beats the best threshold
    # one city: 'overall' is that city
    for k in ("f1", "f1_bound"):
        assert np.isclose(rows[("bercy", "cva")][k], rows[("overall", "cva")][k])
    # bercy has 1,046 changed pixels: CVA finds some of them, better than chance
    assert rows[("bercy", "cva")]["recall"] > 0.1
    assert rows[("bercy", "cva")]["auprc"] > 1046 / (395 * 360)
    assert res["chosen_elsewhere"] is None  # one city: nothing to choose on


def test_eval_change_says_what_the_best_threshold_would_give(oscd, tmp_path) -> None:
    out = tmp_path / "eval.json"
    r = CliRunner().invoke(cli, ["eval", "change", "--data", str(oscd), "--cities", "bercy",
                                 "--methods", "selftrain", "--json", str(out)])
    assert r.exit_code == 0, r.output
    o = json.loads(out.read_text())["overall"]["selftrain"]
    assert o["f1"] < o["f1_bound"] <= 1.0  # bercy: Otsu is below bercy's best threshold
    assert (f"selftrain: F1 {o['f1']:.3f} overall; with each city's threshold chosen on its "
            f"labels at most {o['f1_bound']:.3f}") in r.output


def test_eval_change_scores_each_city_with_the_choice_of_the_other(oscd, tmp_path) -> None:
    out = tmp_path / "eval.json"
    r = CliRunner().invoke(cli, ["eval", "change", "--data", str(oscd), "--cities",
                                 "bercy,saclay_e", "--methods", "cva,irmad", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    f1 = {(x["city"], x["method"]): x["f1"] for x in res["rows"]}
    held = res["chosen_elsewhere"]
    # two cities: each is scored with the method that won in the other one
    for city, other in (("bercy", "saclay_e"), ("saclay_e", "bercy")):
        assert held["methods"][city] == max(("cva", "irmad"), key=lambda m: f1[other, m])
    assert held["tp"] + held["fn"] == res["overall"]["cva"]["tp"] + res["overall"]["cva"]["fn"]
    assert np.isclose(held["f1"], 2 * held["tp"] / (2 * held["tp"] + held["fp"] + held["fn"]))
    picks = ", ".join(f"{c} {m}" for c, m in held["methods"].items())
    assert f"each city with the method of the best F1 on the other cities: {picks}" in r.output
    assert f"overall F1 {held['f1']:.3f}" in r.output


def test_eval_change_unknown_city(oscd) -> None:
    r = CliRunner().invoke(cli, ["eval", "change", "--data", str(oscd), "--cities", "atlantis",
                                 "--methods", "cva"])
    assert r.exit_code != 0
    assert "no labels for atlantis" in str(r.exception)
