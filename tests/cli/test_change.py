"""`eominer change` through click, on real OSCD data."""

from __future__ import annotations

from click.testing import CliRunner

from eominer.cli import cli


def test_change_command_on_paths(oscd, workspace, tmp_path) -> None:
    base = oscd / "images" / "paris"
    out = tmp_path / "paris.tif"
    r = CliRunner().invoke(cli, ["change", str(base / "imgs_1"), str(base / "imgs_2"),
                                 "--method", "cva", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "cva  changed" in r.output and str(out) in r.output
    assert out.exists() and (tmp_path / "paris_binary.tif").exists()


def test_change_command_needs_two_dates(workspace) -> None:
    r = CliRunner().invoke(cli, ["change", "only_one"])
    assert r.exit_code != 0
    assert "give BEFORE and AFTER, or --pairs FILE" in r.output
