"""How the kill-and-resume tests start a CLI job in a subprocess (shared by test_extract and
test_apply)."""

from __future__ import annotations


def cli_code(commit_every_s: float) -> str:
    """`python -c` code running the eominer CLI with the runner committing every
    `commit_every_s` (instead of once a second), in that process only: a small job then
    spreads over many commits, so a kill at its first progress line lands mid-job,
    however fast the machine."""
    return (f"import compute.runner as r; r.COMMIT_EVERY_S = {commit_every_s!r}; "
            "from eominer.cli import main; main()")
