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


@pytest.mark.timeout(120)
def test_serve_on_a_port_in_use_says_so_without_a_traceback(tmp_path, monkeypatch):
    """A second `eominer serve` on the same port (the usual cause): exit 1 with what to do,
    instead of tornado's OSError traceback."""
    import socket

    from click.testing import CliRunner

    from eominer.cli.serve import serve

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(serve, ["--db", f"duckdb:///{tmp_path / 'x.duckdb'}",
                                            "--no-show", "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; another " \
           "program uses this port (another eominer serve?): choose another with --port N" \
           in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(("address", "login", "warned"), [
    ("127.0.0.1", False, False), ("::1", False, False), ("localhost", False, False),
    ("0.0.0.0", False, True), ("192.168.1.20", False, True), ("eo.example.org", False, True),
    ("0.0.0.0", True, False),
])
def test_serve_warns_when_the_app_listens_beyond_this_machine_without_a_log_in(
        address, login, warned):
    from eominer.cli.serve import exposure_warning

    said = exposure_warning(address, login)
    assert (said is not None) == warned
    if warned:
        assert said.startswith(f"warning: the app listens on {address} without a log-in")
        assert "--basic-auth FILE or --oauth-provider NAME" in said
