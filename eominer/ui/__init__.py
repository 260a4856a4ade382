"""The Panel app (`eominer serve`). `from eominer.ui import App` in JupyterLab.

Nothing heavy is imported here: Panel loads when `App` is first used."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("App", "create_app"):
        from eominer.errors import require

        require("panel", "ui", "the eominer app")
        from eominer.ui import app

        return getattr(app, name)
    raise AttributeError(f"module 'eominer.ui' has no attribute {name!r}")


__all__ = ["App", "create_app"]
