"""Which API queries may run: reads of the project's own tables, nothing else.

The decision is made on the engine's own parse of the query, never on the SQL
text.  ``check_read_only`` asks the engine twice:

1. ``SELECT formatQuery('<sql>')`` parses the text as exactly one statement
   (several statements, as in ``SET readonly=0; DROP TABLE ...``, are a
   syntax error there) and prints it back in canonical form.  That canonical
   text is what is checked and what then runs, so what was checked is what runs.
2. ``EXPLAIN AST <canonical>`` prints the engine's syntax tree, one node per
   line, indented by depth.  ``check_tree`` walks it.

Allowed: ``SELECT`` (with ``WITH``, ``UNION``, ``INTERSECT``/``EXCEPT``,
``JOIN``, subqueries, ``FORMAT``), ``DESCRIBE TABLE``, ``SHOW TABLES`` and
``EXISTS TABLE`` — on tables of the project's database (unqualified names
resolve there too), plus the table functions in ``SAFE_TABLE_FUNCTIONS``.
Refused: every other statement (writes, DDL, ``SET``, ``SYSTEM``, ``KILL``,
``EXPLAIN``, ...), ``SETTINGS`` clauses (the limits are the API's), ``INTO
OUTFILE``, every other table function (``file``, ``url``, ``remote``, ``s3``,
``mysql``, ...), functions in ``DENIED_FUNCTIONS`` (``file()`` reads files even
in readonly mode), and tables of any other database (``system.*`` included).

The connection the query runs on is ``readonly=1`` with the limits locked, so
the engine refuses writes and setting changes a second time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from stratum_proxy.errors import QueryRefused

# Table functions that only generate values: they reach nothing outside.
SAFE_TABLE_FUNCTIONS = frozenset(
    {
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "generateSeries",
        "generate_series",
        "primes",
        "values",
    }
)

# Ordinary functions that reach outside the query's tables.  ``file`` reads a
# file from the server's disk (readonly=1 does not stop it); dictionaries and
# Join tables are other storage; viewExplain/viewIfPermitted run queries.
DENIED_FUNCTIONS = frozenset(
    {
        "file",
        "catboostEvaluate",
        "joinGet",
        "joinGetOrNull",
        "viewExplain",
        "viewIfPermitted",
        "getClientHTTPHeader",
        "getServerSetting",
        "showCertificate",
    }
)
_DENIED_PREFIXES = ("dictGet", "dictHas", "dictIsIn", "filesystem")

# ``x IN name`` reads a table; ``name`` is an Identifier there, not a TableIdentifier.
_IN_FUNCTIONS = frozenset(
    {
        "in",
        "notIn",
        "globalIn",
        "globalNotIn",
        "nullIn",
        "notNullIn",
        "globalNullIn",
        "globalNotNullIn",
    }
)

_READ_ROOTS = frozenset({"SelectWithUnionQuery", "DescribeQuery"})


@dataclass(slots=True)
class Node:
    """One line of ``EXPLAIN AST``: the node's kind, the rest of its line, its children."""

    kind: str
    rest: str
    children: list[Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The node's argument without ``(alias ...)`` / ``(children N)``."""
        return self.rest.split(" (", 1)[0].strip()


def parse_ast(text: str) -> Node:
    """Build the tree from ``EXPLAIN AST`` output (TabSeparated: one node per line)."""
    root: Node | None = None
    stack: list[tuple[int, Node]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip(" "))
        kind, _, rest = line.strip().partition(" ")
        node = Node(kind, rest)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            stack[-1][1].children.append(node)
        elif root is None:
            root = node
        else:
            raise QueryRefused("the query is more than one statement")
        stack.append((depth, node))
    if root is None:
        raise QueryRefused("the engine returned no syntax tree for the query")
    return root


def check_tree(root: Node, database: str) -> None:
    """Raise QueryRefused unless the tree is a read of ``database``'s tables."""
    if root.kind == "ShowTables":
        for child in root.children:
            if child.kind != "Identifier" or child.name != database:
                raise QueryRefused(f"SHOW TABLES is allowed for the {database} database only")
        return
    if root.kind == "ExistsTableQuery":
        parts = root.name.split()
        if len(parts) == 2 and parts[0] != database:
            raise QueryRefused(f"only tables of the {database} database can be read")
        return
    if root.kind not in _READ_ROOTS:
        raise QueryRefused(
            f"only SELECT, DESCRIBE, SHOW TABLES and EXISTS are allowed (this is {root.kind})"
        )
    if root.kind == "SelectWithUnionQuery":
        # Children of the outermost query: the SELECTs, then an optional FORMAT
        # name.  INTO OUTFILE shows up here as a Literal (the file name).
        for child in root.children[1:]:
            if child.kind == "Literal":
                raise QueryRefused("INTO OUTFILE is not allowed: results come back over HTTP")
            if child.kind != "Identifier" and child.kind != "Set":
                raise QueryRefused(f"unexpected clause {child.kind} in the query")
    _walk(root, database)


def _walk(node: Node, database: str) -> None:
    kind = node.kind
    if kind == "Set":
        raise QueryRefused("SETTINGS clauses are not allowed: the API's query limits are fixed")
    if kind == "TableExpression":
        for child in node.children:
            _check_table_source(child, database)
    elif kind == "Function":
        _check_function(node, database)
    for child in node.children:
        _walk(child, database)


def _check_table_source(node: Node, database: str) -> None:
    if node.kind == "TableIdentifier":
        _check_table_name(node.name, database)
    elif node.kind == "Function" and node.name not in SAFE_TABLE_FUNCTIONS:
        raise QueryRefused(
            f"table function {node.name}() is not allowed: queries read only the "
            f"{database} tables (allowed generators: {', '.join(sorted(SAFE_TABLE_FUNCTIONS))})"
        )


def _check_table_name(name: str, database: str) -> None:
    # EXPLAIN AST prints db.table unquoted.  An unqualified name resolves in the
    # connection's database (the project's) or is a WITH name.  A dotted name is
    # judged by its first part; a quoted name containing a dot is refused or
    # names a table that does not exist, never another database's table.
    if "." in name and name.split(".", 1)[0] != database:
        raise QueryRefused(
            f"table {name} is not allowed: queries read only the {database} database's tables"
        )


def _check_function(node: Node, database: str) -> None:
    name = node.name
    if name in DENIED_FUNCTIONS or name.startswith(_DENIED_PREFIXES):
        raise QueryRefused(f"function {name}() is not allowed: it reaches outside the query")
    if name in _IN_FUNCTIONS:
        args = node.children[0].children if node.children else []
        if len(args) == 2 and args[1].kind == "Identifier":
            _check_table_name(args[1].name, database)


def check_read_only(sql: str, run_text: Callable[[str], str], database: str) -> str:
    """The canonical text of ``sql`` if it may run; QueryRefused otherwise.

    ``run_text(internal_sql)`` runs one of our own statements on the query
    connection and returns its output as text (``formatQuery``'s in RawBLOB,
    ``EXPLAIN AST``'s in TabSeparated); engine errors propagate from it.
    """
    from stratum_proxy.store.schema import sql_string

    if not sql.strip():
        raise QueryRefused("the query is empty")
    canonical = run_text(f"SELECT formatQuery({sql_string(sql)}) FORMAT RawBLOB").strip()
    if not canonical:
        raise QueryRefused("the query is empty")
    check_tree(parse_ast(run_text(f"EXPLAIN AST {canonical}")), database)
    return canonical
