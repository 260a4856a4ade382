"""eominer.store.engines: the SQL dialect adapters."""

from __future__ import annotations


def test_qmark_to_pyformat_keeps_quoted_text_and_escapes_percent() -> None:
    from eominer.store.engines import qmark_to_pyformat

    sql = """SELECT 'a?%' AS "b?", x % 2 FROM t WHERE y = ? AND z LIKE 'p%'"""
    assert qmark_to_pyformat(sql) == (
        """SELECT 'a?%%' AS "b?", x %% 2 FROM t WHERE y = %s AND z LIKE 'p%%'""")
    assert qmark_to_pyformat(sql) % ("v",) == sql.replace("= ?", "= v")
