"""`eominer sql` as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from eominer.cli.output import render
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
    # lines end in "\n" for shell pipelines (the process's text mode would hide a "\r")
    assert render(pa.table({"a": [1, 2]}), "csv") == "a\n1\n2"
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


@pytest.mark.parametrize("option, value", [("--limit", "0"), ("--timeout", "0"),
                                           ("--timeout", "-1")])
def test_a_limit_or_timeout_below_its_range_is_a_usage_error(tmp_path: Path, capsys,
                                                             option: str, value: str):
    """`--limit 0` printed no row and "first 0 rows shown"; `--timeout 0` raced the query."""
    from eominer.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["sql", "--db", str(tmp_path / "x.duckdb"), option, value, "SELECT 1"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"Invalid value for '{option}'" in err and value in err


def test_ctrl_c_during_a_query_is_an_interruption_not_an_sql_error(tmp_path: Path, capsys):
    """DuckDB reports a Ctrl-C inside a query as its error "Query interrupted" (or, when
    its executing thread does not look, after the query's timeout): the command says
    interrupted and exits 130, as for a Ctrl-C anywhere else."""
    from eominer.cli import main

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(SystemExit) as stop:
            main(["sql", "--db", str(tmp_path / "x.duckdb"), "--timeout", "5",
                  "SELECT sum(a * b) FROM range(100000000000) t(a), range(1) u(b)"])
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert stop.value.code == 130, err
    assert "interrupted" in err and "SQL error" not in err
    assert "resume" not in err  # a query has nothing to resume


def test_sql_writes_every_row_to_a_parquet_csv_or_json_file(home: Path, tmp_path: Path):
    """`--to FILE`: typed columns in Parquet, every row (not the 10,000 printed), the
    same rows in CSV and JSON; a bad name or folder is refused before the query, and a
    failing query leaves the file that was there."""
    import csv

    import pyarrow.parquet as pq

    q = ("select p.patch_id, p.level, p.valid_fraction, q.acquired from patches p "
         "join products q using (product_id) order by p.patch_id")
    printed = json.loads(run(["sql", q, "--format", "json"], home).stdout)
    out = tmp_path / "rows.parquet"
    r = run(["sql", q, "--to", str(out)], home)
    assert r.returncode == 0 and f"wrote 2,106 rows x 4 columns to {out}" in r.stdout
    t = pq.read_table(out)
    assert t.schema.field("level").type == pa.int32()
    assert pa.types.is_timestamp(t.schema.field("acquired").type)
    assert t["patch_id"].to_pylist() == [p["patch_id"] for p in printed]
    assert t["valid_fraction"].to_pylist() == [p["valid_fraction"] for p in printed]
    for suffix in (".csv", ".json"):
        r = run(["sql", q, "--to", str(tmp_path / f"rows{suffix}")], home)
        assert r.returncode == 0, r.stderr
    with open(tmp_path / "rows.csv", newline="") as f:
        assert [int(row["patch_id"]) for row in csv.DictReader(f)] == t["patch_id"].to_pylist()
    assert json.loads((tmp_path / "rows.json").read_text()) == printed

    many = "select i from range(25000) t(i)"  # more than a printed query's 10,000
    r = run(["sql", many, "--to", str(out)], home)
    assert r.returncode == 0 and pq.read_table(out).num_rows == 25000
    r = run(["sql", many, "--to", str(out), "--limit", "7"], home)
    assert pq.read_table(out).num_rows == 7 and "first 7 rows written" in r.stderr

    before = out.read_bytes()
    r = run(["sql", "select * from nosuchtable", "--to", str(out)], home)
    assert r.returncode == 1 and "SQL error" in r.stderr and out.read_bytes() == before
    r = run(["sql", q, "--to", str(tmp_path / "rows.xlsx")], home)
    assert r.returncode == 2 and "name a .parquet, .csv or .json file" in r.stderr
    r = run(["sql", q, "--to", str(tmp_path / "missing" / "rows.csv")], home)
    assert r.returncode == 2 and "give a folder that exists" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if "rows" in p.name) == [
        "rows.csv", "rows.json", "rows.parquet"]  # no part file left
