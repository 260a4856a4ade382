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
