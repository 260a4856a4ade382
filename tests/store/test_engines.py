"""eominer.store.engines: the SQL dialect adapters."""

from __future__ import annotations

import numpy as np


def test_qmark_to_pyformat_keeps_quoted_text_and_escapes_percent() -> None:
    from eominer.store.engines import qmark_to_pyformat

    sql = """SELECT 'a?%' AS "b?", x % 2 FROM t WHERE y = ? AND z LIKE 'p%'"""
    assert qmark_to_pyformat(sql) == (
        """SELECT 'a?%%' AS "b?", x %% 2 FROM t WHERE y = %s AND z LIKE 'p%%'""")
    assert qmark_to_pyformat(sql) % ("v",) == sql.replace("= ?", "= v")


def test_a_float_parameter_against_a_real_column(store) -> None:
    """Feature columns, cloud and valid fractions and scores are REAL. monetdbe read a
    float bound where the statement types the marker REAL as the double's bytes (`CAST(?
    AS REAL)` of 0.15 gave 4.2e-08, and every comparison went one way); every engine
    must compare as DuckDB does."""
    store.execute("CREATE TABLE t_real (x REAL)")
    store.execute("INSERT INTO t_real VALUES (0.1), (0.2), (0.3)")
    store.execute("INSERT INTO t_real VALUES (?)", (0.4,))
    assert [round(v, 6) for (v,) in store.query("SELECT x FROM t_real ORDER BY x")] == [
        0.1, 0.2, 0.3, 0.4]
    assert store.query("SELECT COUNT(*) FROM t_real WHERE x > ?", (0.15,)) == [(3,)]
    assert store.query("SELECT COUNT(*) FROM t_real WHERE x > CAST(? AS REAL)",
                       (0.2,)) == [(2,)]  # as REAL: 0.2 stored is not above 0.2 given
    assert store.query("SELECT COUNT(*) FROM t_real WHERE x > ?", (0.2,)) == [(3,)]
    assert abs(store.query("SELECT CAST(? AS REAL)", (0.15,))[0][0] - 0.15) < 1e-7
    assert store.query("SELECT COUNT(*) FROM t_real WHERE x > ? AND x < ?",
                       (np.float32(0.15), 0.35)) == [(2,)]


def test_a_sum_over_integers_in_the_sql_console(store) -> None:
    """MonetDB gives a SUM over integers as a HUGEINT, which monetdbe's Python driver
    cannot return (it failed with "SQL error: 5"): the console says to CAST it, and the
    CAST works on every engine."""
    from eominer.errors import UserSQLError

    store.execute("CREATE TABLE t_int (x INTEGER)")
    store.execute("INSERT INTO t_int VALUES (1), (2), (3)")
    cast = store.read_only_arrow("SELECT CAST(SUM(x) AS BIGINT) AS s FROM t_int")
    assert cast["s"].to_pylist() == [6]
    try:
        got = store.read_only_arrow("SELECT SUM(x) AS s FROM t_int")
    except UserSQLError as exc:
        assert store.engine.name == "monetdbe", exc
        assert "HUGEINT" in str(exc) and "CAST(SUM(x) AS BIGINT)" in str(exc)
    else:
        assert int(got["s"][0].as_py()) == 6
