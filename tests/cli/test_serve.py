"""`eominer serve` refuses bad options before it starts a server."""

from __future__ import annotations

import json
import re

import pytest


@pytest.mark.parametrize(("args", "message"), [
    (["--basic-auth", "users.json", "--oauth-provider", "generic"], "exclude each other"),
    (["--oauth-provider", "generic", "--oauth-extra-params", "{TOKEN_URL: x}"],
     r"--oauth-extra-params.*not JSON"),
])
def test_serve_refuses_bad_auth_options(args, message, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from eominer.cli.serve import serve

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path))
    (tmp_path / "users.json").write_text(json.dumps({"ana": "pw"}))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(serve, ["--db", f"duckdb:///{tmp_path / 'x.duckdb'}",
                                        "--no-show", *args])
    assert result.exit_code == 2, result.output
    assert re.search(message, result.output), result.output
