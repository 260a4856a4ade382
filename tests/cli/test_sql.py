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
