"""The `eominer` command as a user runs it: a real process, real exit codes."""

from __future__ import annotations

from pathlib import Path

from tests.cli.process import run


def test_every_command_has_help(home: Path):
    r = run(["--help"], home)
    assert r.returncode == 0
    section = r.stdout.split("Commands:")[1].splitlines()
    names = [ln.split()[0] for ln in section if ln.startswith("  ") and ln[2] != " "]
    for name in ("ingest", "products", "sql", "extract", "serve", "change", "fusion",
                 "encoder", "eval", "demo"):
        assert name in names
    for name in names:
        sub = run([name, "--help"], home)
        assert sub.returncode == 0 and "Usage" in sub.stdout, name
