"""Every written result names where it ran: the checkout's commit and the versions of
the libraries its figures follow."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from eominer.evaluation.provenance import environment, footer

ROOT = Path(__file__).resolve().parents[2]


def test_the_environment_names_the_commit_and_the_installed_versions():
    import keras

    env = environment()
    assert env["packages"]["numpy"] == np.__version__
    assert env["packages"]["keras"] == keras.__version__
    assert any(k.startswith("tensorflow") for k in env["packages"])
    if not (ROOT / ".git").exists():  # an unpacked source tree: no commit to name
        assert env["commit"] is None
        return
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert env["commit"].removesuffix("+dirty") == head
    line = footer(env)
    assert f"(commit {env['commit']})" in line and f"numpy {np.__version__}" in line
