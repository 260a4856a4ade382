"""The `eominer` command as a user runs it: a real process, real exit codes; and in this
process through its real entry point (imports once)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run(args: list[str], home: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    """`env`: variables to set; $EOMINER_DB and $EOMINER_RAY_ADDRESS are unset unless
    given (a developer's shell may set them)."""
    base = dict(os.environ, EOMINER_HOME=str(home), COLUMNS="200")
    base.pop("EOMINER_DB", None)
    base.pop("EOMINER_RAY_ADDRESS", None)
    env = {**base, **(env or {})}
    return subprocess.run([sys.executable, "-m", "eominer", *args], capture_output=True,
                          text=True, env=env, timeout=300)


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def in_process(capsys):
    """`eominer ARGS` through its real entry point, in this process (imports once)."""
    from eominer.cli import main

    def call(args: list[str], home: Path) -> Result:
        capsys.readouterr()
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Result(code, out.out, out.err)
    return call
