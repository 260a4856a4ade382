"""Who is labelling: the authenticated user name (basic auth or OAuth/OIDC), else the
operating-system user (a local single-user app or a JupyterLab cell)."""

from __future__ import annotations

import json
from pathlib import Path

from eominer.errors import ConfigError
from eominer.workspace import os_user


def current_user(default: str | None = None) -> str:
    import panel as pn

    user = pn.state.user
    if user:
        return str(user)
    if default:
        return default
    return os_user()


def check_basic_auth_file(path: str | Path) -> Path:
    """A basic-auth file is a JSON object {"user": "password", ...} (Panel's format)."""
    p = Path(path)
    try:
        users = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"basic-auth file {p} not found: create a JSON object "
                          '{"user": "password"}') from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"basic-auth file {p} is not JSON ({exc}): expected "
                          '{"user": "password", ...}') from exc
    if not isinstance(users, dict) or not users or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in users.items()):
        raise ConfigError(f"basic-auth file {p}: expected a JSON object of user names to "
                          'passwords, e.g. {"ana": "secret"}')
    return p
