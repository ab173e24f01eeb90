"""The guard's reading of the engine's syntax tree (the engine-backed cases are in
tests/integration/test_api_query_guard.py)."""

from __future__ import annotations

import pytest

from stratum_proxy.errors import QueryRefused
from stratum_proxy.store.sql_guard import check_read_only, check_tree, parse_ast

# EXPLAIN AST of: SELECT count() FROM mining.shares AS s JOIN system.tables t USING (x)
JOINED = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Function count (children 1)
     ExpressionList
   TablesInSelectQuery (children 2)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      TableIdentifier mining.shares (alias s)
    TablesInSelectQueryElement (children 2)
     TableExpression (children 1)
      TableIdentifier system.tables (alias t)
     TableJoin (children 1)
      ExpressionList (children 1)
       Identifier x
"""


def test_the_tree_is_rebuilt_from_indentation() -> None:
    root = parse_ast(JOINED)
    assert root.kind == "SelectWithUnionQuery"
    tables = root.children[0].children[0].children[1]
    assert tables.kind == "TablesInSelectQuery" and len(tables.children) == 2
    ident = tables.children[0].children[0].children[0]
    assert (ident.kind, ident.name) == ("TableIdentifier", "mining.shares")


def test_a_table_of_another_database_anywhere_is_refused() -> None:
    with pytest.raises(QueryRefused, match=r"system\.tables"):
        check_tree(parse_ast(JOINED), "mining")
    allowed = JOINED.replace("system.tables", "mining.mv_hash_rate_stats")
    check_tree(parse_ast(allowed), "mining")
    # The database name comes from the settings: a server store may use another.
    with pytest.raises(QueryRefused):
        check_tree(parse_ast(allowed), "test_mining")


def test_two_roots_are_two_statements() -> None:
    with pytest.raises(QueryRefused, match="more than one statement"):
        parse_ast("Set\nSelectWithUnionQuery (children 1)\n ExpressionList\n")


def test_empty_output_is_refused() -> None:
    with pytest.raises(QueryRefused):
        parse_ast("\n")


def test_check_read_only_runs_what_was_checked() -> None:
    """The canonical text the engine printed is checked and returned, never the input."""
    asked: list[str] = []

    def engine(sql: str) -> str:
        asked.append(sql)
        if sql.startswith("SELECT formatQuery("):
            return "SELECT count()\nFROM mining.shares\n"
        return JOINED.replace("system.tables", "mining.shares")

    canonical = check_read_only("select  count() from mining.shares", engine, "mining")
    assert canonical == "SELECT count()\nFROM mining.shares"
    assert asked[0] == "SELECT formatQuery('select  count() from mining.shares') FORMAT RawBLOB"
    assert asked[1] == "EXPLAIN AST SELECT count()\nFROM mining.shares"


def test_quotes_in_the_query_cannot_escape_the_literal() -> None:
    asked: list[str] = []

    def engine(sql: str) -> str:
        asked.append(sql)
        raise QueryRefused("stop")

    with pytest.raises(QueryRefused):
        check_read_only("SELECT '\\'); DROP TABLE x; --", engine, "mining")
    assert asked == ["SELECT formatQuery('SELECT \\'\\\\\\'); DROP TABLE x; --') FORMAT RawBLOB"]
