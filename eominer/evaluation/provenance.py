"""Where an evaluation ran: eominer's version and commit, Python, the machine, and the
versions of the libraries that move its figures (TensorFlow and Keras train the
encoders, scikit-learn fits every ranking). Two installs a week apart can resolve other
versions, and the learned rows follow them (docs/learning.md), so every written result
carries its environment."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# import names: the distribution behind one differs by install (tensorflow-cpu here)
MODULES: tuple[str, ...] = ("numpy", "scipy", "sklearn", "tensorflow", "keras", "duckdb",
                            "pyarrow", "rasterio", "ray")


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def package_versions() -> dict[str, str]:
    """{distribution: version} of the installed distributions behind MODULES."""
    from importlib.metadata import packages_distributions

    found = packages_distributions()
    out = {}
    for module in MODULES:
        for dist in found.get(module, [])[:1]:
            if (v := _version(dist)) is not None:
                out[dist] = v
    return out


def source_commit() -> str | None:
    """The short commit of the checkout eominer runs from, `+dirty` with uncommitted
    changes; None when it is not a git checkout (an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def environment() -> dict[str, Any]:
    """{"date", "eominer", "commit", "python", "machine", "cpus", "packages"}."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "eominer": _version("eominer"),
        "commit": source_commit(),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "packages": package_versions(),
    }


def footer(env: dict[str, Any]) -> str:
    """One markdown line under a result table."""
    commit = f" (commit {env['commit']})" if env.get("commit") else ""
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    return (f"_Run {env['date']} with eominer {env['eominer']}{commit}, Python "
            f"{env['python']}, {env['machine']}, {env['cpus']} CPUs; {packages}._")
