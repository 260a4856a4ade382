"""`eominer sql` as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.process import run


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
