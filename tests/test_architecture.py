"""The layers of docs/architecture.md, checked on the source: every import of every module
of `eominer/` and `compute/` (at the top, inside functions and under TYPE_CHECKING alike)
goes to its own layer or one below it, and Ray is imported in `compute/` only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# module prefix -> rank, as in docs/architecture.md's table (the longest prefix wins)
RANKS: dict[str, int] = {
    "eominer": 0, "eominer.errors": 0, "eominer.sensors": 0, "eominer.domain": 0,
    "eominer.grid": 0, "eominer.workspace": 0, "eominer.metrics": 0,
    "eominer.antimeridian": 0, "eominer.tfimport": 0,
    "eominer.io": 1,
    "eominer.store": 2,
    "eominer.features": 3, "eominer.ingest": 3,
    "eominer.learning": 4, "eominer.change": 4, "eominer.fusion": 4,
    "compute": 5, "eominer.evaluation": 5, "eominer.removal": 5,
    "eominer.ui": 6,
    "eominer.cli": 7, "eominer.__main__": 7,
}
LAYER_NAMES = {0: "core", 1: "io", 2: "store", 3: "features", 4: "learning/change/fusion",
               5: "compute/evaluation", 6: "ui", 7: "cli"}


def rank(module: str) -> int | None:
    """The layer of an eominer or compute module; None for anything else."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if (r := RANKS.get(".".join(parts[:n]))) is not None:
            return r
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file; `from eominer import x` is
    `eominer.x`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module in ("eominer", "compute"):
                out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
    return out


SOURCES = sorted([*(ROOT / "eominer").rglob("*.py"), *(ROOT / "compute").rglob("*.py")])


def test_every_module_has_a_layer() -> None:
    assert len(SOURCES) > 150
    assert [module_name(p) for p in SOURCES if rank(module_name(p)) is None] == []


@pytest.mark.parametrize("layer", sorted(LAYER_NAMES))
def test_no_module_imports_from_a_layer_above_its_own(layer: int) -> None:
    upward = [
        f"{p.relative_to(ROOT)}:{line} imports {mod} ({LAYER_NAMES[r]})"
        for p in SOURCES if rank(module_name(p)) == layer
        for line, mod in imported(p) if (r := rank(mod)) is not None and r > layer]
    assert upward == [], f"{LAYER_NAMES[layer]} must not import from above it"


def test_ray_is_imported_in_compute_only() -> None:
    assert [f"{p.relative_to(ROOT)}:{line}" for p in SOURCES
            if not module_name(p).startswith("compute")
            for line, mod in imported(p) if mod.split(".")[0] == "ray"] == []


def test_the_checker_sees_imports_inside_functions_and_type_checking(tmp_path) -> None:
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                   "    from eominer.io.read import x\n"
                   "def f():\n    from eominer import ui\n    import ray.util\n")
    assert imported(src) == [(1, "typing"), (3, "eominer.io.read"), (5, "eominer.ui"),
                             (6, "ray.util")]
    assert [rank(m) for m in ("eominer.io.read", "eominer.ui", "eominer.storeish",
                              "eominer.store.base", "compute.runner", "numpy")] \
        == [1, 6, 0, 2, 5, None]


RAW_SQL = {"execute", "query", "query_arrow", "query_batches", "insert_arrow",
           "upsert_arrow"}  # StoreBase's own; the user's SQL goes through user_query


def test_sql_is_written_in_the_store_only() -> None:
    """docs/architecture.md: one store module owns the SQL. Elsewhere a store is asked by
    its methods (a user's own query: `user_query`, `read_only_arrow`)."""
    calls = [f"{p.relative_to(ROOT)}:{node.lineno} .{node.func.attr}()"
             for p in SOURCES if not module_name(p).startswith("eominer.store")
             for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr in RAW_SQL]
    assert calls == []


# docs/architecture.md: the commands that start jobs, and what asks the runner about a
# job (`compute.runner.died_in_process`, `job_state`; no Ray)
IMPORT_COMPUTE = {"apply", "change", "encoder", "eval_cascade", "eval_learning", "extract",
                  "fusion", "index", "ingest", "jobs", "timeseries"}


def test_only_the_job_commands_and_views_import_compute() -> None:
    got = {module_name(p) for p in SOURCES if module_name(p).startswith("eominer.")
           for _, mod in imported(p) if mod.split(".")[0] == "compute"}
    assert got == {*(f"eominer.cli.{m}" for m in IMPORT_COMPUTE), "eominer.ui.jobs",
                   "eominer.ui.status"}


def test_compute_opens_no_database() -> None:
    """docs/cluster.md: the driver is the only one that reads and writes the database; a
    task gets what it reads from it through the runner's `load`. A worker that opened the
    store failed on monetdbe (one process's) and needs the head's DuckDB file on every
    node; the commands open the store and hand it to the job."""
    calls = [f"{p.relative_to(ROOT)}:{node.lineno}"
             for p in SOURCES if module_name(p).startswith("compute")
             for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.Call) and getattr(node.func, "id",
                                                       getattr(node.func, "attr", None))
             == "open_store"]
    assert calls == []
