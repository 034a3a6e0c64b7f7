"""The SQL port's allowlist, judged on ClickHouse's own parse tree.

The engine parses the query (``EXPLAIN AST``, which executes nothing); this module reads that tree and admits
only what is listed: read statements (SELECT and its set operations, EXPLAIN of one, DESCRIBE, EXISTS,
SHOW TABLES/DATABASES), tables on the analyst allowlist, a few harmless ``system`` tables, a small set of
table functions (``numbers`` bounded), and functions whose category is computation (arithmetic, strings,
dates, aggregates ...) per ``system.functions``. Everything else is refused with a reason: file and network
functions however they are quoted, qualified names into other databases, ``merge``/``view``/``cluster``,
``SETTINGS`` and ``INTO OUTFILE``, dictionaries, introspection, AI functions.

Pure: the tree's text and a ``Policy`` in, a verdict out. Quoting cannot hide a name: the parser has already
removed it. A name that smuggles a line break into the printed tree breaks the printed child counts, which
are verified, and is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import kpi_sql

# analyst-visible tables and views (default database). Not here: channels (webhook and Slack URLs are
# credentials), room_state (internal snapshots), schema_migrations.
ANALYST_TABLES = frozenset({
    "events", "dead_letters", "rooms", "room_stage_history", "stakeholder_scores", "deal_scores", "alerts",
    "deal_scores_latest", "stakeholder_scores_latest", "alert_actions", "deliveries", "sellers", "erasures",
    "activities", "deal_field_history", "quotas", *kpi_sql.ANALYST_VIEWS,
})
# harmless catalogue tables that clients (clickhouse-connect, Grafana) read
SYSTEM_TABLES = frozenset({"one", "functions", "table_functions", "formats", "data_type_families", "time_zones",
                           "aggregate_function_combinators", "settings", "contributors", "build_options"})
TABLE_FUNCTIONS = frozenset({"numbers", "zeros", "generate_series", "generateSeries", "values"})
SAFE_CATEGORIES = frozenset({
    "Aggregate Functions", "Type Conversion", "Dates and Times", "Arrays", "String", "Geo", "Hash",
    "String Search", "JSON", "Mathematical", "URL", "Arithmetic", "Geo Polygon", "Map", "IP Address", "Comparison",
    "Tuple", "Distance", "Random Number", "Bitmap", "Bit", "Encoding", "UUID", "String Splitting",
    "String Replacement", "Null", "Rounding", "Time Window", "Conditional", "Logical", "Financial",
})
# computation-only functions the catalogue files under "Other"
SAFE_OTHER = frozenset({
    "bar", "formatReadableSize", "formatReadableQuantity", "formatReadableDecimalSize", "formatReadableTimeDelta",
    "toTypeName", "toColumnTypeName", "materialize", "ignore", "identity", "isConstant", "runningDifference",
    "runningDifferenceStartingWithFirstValue", "neighbor", "transform", "throwIf", "finalizeAggregation",
    "initializeAggregation", "runningAccumulate", "visibleWidth", "currentDatabase", "timezone", "version",
    "rowNumberInAllBlocks", "rowNumberInBlock", "blockSize", "parseTimeDelta", "defaultValueOfTypeName",
    "caseWithExpression", "lambda", "_CAST", "isNotDistinctFrom", "grouping", "widthBucket", "serverTimezone",
    "toStartOfFiveMinutes", "parseReadableSize", "parseReadableSizeOrNull", "parseReadableSizeOrZero",
})
DATABASE_NAMES = frozenset({"default", "system", "information_schema", "INFORMATION_SCHEMA",
                            "_temporary_and_external_tables"})
IN_FUNCTIONS = frozenset({"in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn", "globalNullIn",
                          "globalNotNullIn"})
# node kinds of the read statements; anything else is refused by name
NODES = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "ExpressionList", "Function",
    "Identifier", "Literal", "Asterisk", "QualifiedAsterisk", "ColumnsListMatcher", "ColumnsRegexpMatcher",
    "QualifiedColumnsListMatcher", "QualifiedColumnsRegexpMatcher", "ColumnsTransformerList",
    "ColumnsApplyTransformer", "ColumnsExceptTransformer", "ColumnsReplaceTransformer",
    "ColumnsReplaceTransformer::Replacement", "TablesInSelectQuery", "TablesInSelectQueryElement",
    "TableExpression", "TableIdentifier", "TableJoin", "ArrayJoin", "Subquery", "WithElement", "OrderByElement",
    "WindowDefinition", "WindowListElement", "LimitByElement", "SampleRatio", "Explain", "DescribeQuery",
    "ExistsTableQuery", "ExistsViewQuery", "ShowTables", "InterpolateElement",
})
_LINE = re.compile(r"^(?P<indent> *)(?P<kind>[A-Za-z_:]+)(?P<rest>.*?)(?: \(children (?P<n>\d+)\))?$")
_ALIAS = re.compile(r" \(alias [^()]*\)$")


class Refused(Exception):
    """The query is not allowed on the SQL port. ``code`` is ClickHouse's error code for the answer."""

    def __init__(self, message: str, code: int = 164):
        super().__init__(message)
        self.code = code


@dataclass
class Node:
    kind: str
    text: str  # what follows the kind on its line, alias removed
    children: list[Node] = field(default_factory=list)


@dataclass(frozen=True)
class Policy:
    """What the engine knows (from ``system.functions`` and ``system.tables``) that the rules need."""
    functions: frozenset[str]  # allowed function names, exact
    functions_ci: frozenset[str]  # allowed case-insensitive names, lower-cased
    aggregates: frozenset[str]  # aggregate function names (for combinator suffixes)
    combinators: tuple[str, ...]  # aggregate combinator suffixes, longest first
    default_tables: frozenset[str]  # every table and view in the default database
    max_numbers: int = 10_000_000_000

    def function_allowed(self, name: str) -> bool:
        if name in self.functions or name.lower() in self.functions_ci:
            return True
        base = name
        for _ in range(4):  # aggregate combinators: sumIf, uniqExactMerge, quantilesStateIf ...
            suffix = next((s for s in self.combinators if base.endswith(s) and len(base) > len(s)), None)
            if suffix is None:
                return False
            base = base[: -len(suffix)]
            if base in self.aggregates:
                return True
        return False


def policy_from_catalog(functions: list[tuple], combinators: list[str], default_tables: list[str],
                        max_numbers: int = 10_000_000_000) -> Policy:
    """``functions``: rows of (name, is_aggregate, case_insensitive, alias_to, categories) from system.functions."""
    by_name = {r[0]: r for r in functions}

    def safe(name: str, depth: int = 0) -> bool:
        r = by_name.get(name)
        if r is None or depth > 3:
            return False
        if r[3]:
            return safe(r[3], depth + 1)
        return r[4] in SAFE_CATEGORIES or name in SAFE_OTHER

    allowed = {r[0] for r in functions if safe(r[0])} | {n for n in SAFE_OTHER if n not in by_name}
    allowed_ci = {r[0].lower() for r in functions if r[2] and r[0] in allowed}
    aggregates = {r[0] for r in functions if r[1] and r[0] in allowed}
    return Policy(frozenset(allowed), frozenset(allowed_ci), frozenset(aggregates),
                  tuple(sorted(combinators, key=len, reverse=True)), frozenset(default_tables), max_numbers)


def parse_tree(text: str) -> Node:
    """The printed AST as a tree; refuses text whose indentation or child counts do not add up."""
    unverifiable = Refused("the query holds names the SQL port cannot verify (line breaks or control characters)")
    root = Node("", "")
    stack: list[tuple[int, Node]] = [(-1, root)]
    expected: list[tuple[Node, int]] = []
    for ln in (ln for ln in text.split("\n") if ln.strip()):
        m = _LINE.match(ln)
        if m is None:
            raise unverifiable
        depth = len(m.group("indent"))
        node = Node(m.group("kind"), _ALIAS.sub("", m.group("rest")).strip())
        while stack[-1][0] >= depth:
            stack.pop()
        if stack[-1][0] != depth - 1:
            raise unverifiable
        stack[-1][1].children.append(node)
        stack.append((depth, node))
        expected.append((node, int(m.group("n") or 0)))
    if not root.children:
        raise Refused("the query could not be parsed", 62)
    if len(root.children) != 1:
        raise Refused("only one statement per request")
    if any(len(n.children) != count for n, count in expected):
        raise unverifiable
    return root.children[0]


def _table_name(text: str) -> tuple[str, str]:
    parts = text.split(".")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise Refused(f"table name {text!r} is not allowed on the SQL port")


def _check_table(text: str, policy: Policy) -> None:
    db, name = _table_name(text)
    if db == "system":
        if name in SYSTEM_TABLES:
            return
        raise Refused(f"system.{name} is not served on the SQL port (allowed system tables: "
                      f"{', '.join(sorted(SYSTEM_TABLES))})", 497)
    if db not in ("", "default"):
        raise Refused(f"database {db} is not served on the SQL port; use the tables of the default database", 497)
    if name in ANALYST_TABLES:
        return
    if db == "" and name not in policy.default_tables:
        return  # a name defined by WITH in the query (no such table exists)
    if name == "channels":
        raise Refused("the table channels holds delivery credentials and is not served on the SQL port", 497)
    raise Refused(f"table {name} is not served on the SQL port (analyst tables: {', '.join(sorted(ANALYST_TABLES))})",
                  497)


def _literal_int(n: Node) -> int | None:
    m = re.fullmatch(r"(?:U?Int64_)?(-?\d+)", n.text) if n.kind == "Literal" else None
    if m is None and n.kind == "Literal":
        m = re.fullmatch(r"Float64_(-?[\d.e+]+)", n.text)
        return int(float(m.group(1))) if m else None
    return int(m.group(1)) if m else None


def _check_table_function(n: Node, policy: Policy) -> None:
    name = n.text
    if name not in TABLE_FUNCTIONS:
        raise Refused(f"table function {name}() is not allowed on the SQL port (allowed: "
                      f"{', '.join(sorted(TABLE_FUNCTIONS))})", 497)
    if name in ("numbers", "zeros"):
        args = n.children[0].children if n.children else []
        values = [_literal_int(a) for a in args]
        count = values[-1 if len(values) < 3 else 1] if values else None
        if not args or count is None or any(v is None for v in values):
            raise Refused(f"{name}() takes integer literals on the SQL port", 497)
        if count > policy.max_numbers:
            raise Refused(f"{name}() is capped at {policy.max_numbers} rows on the SQL port", 497)


def _walk(n: Node, policy: Policy, parent: Node | None) -> None:
    kind = n.kind
    if kind == "Set":
        raise Refused("SETTINGS are fixed on the SQL port (limits and readonly apply to every query)")
    if kind not in NODES:
        raise Refused(f"{kind} is not allowed on the SQL port: only SELECT, EXPLAIN, DESCRIBE, EXISTS and "
                      "SHOW TABLES are served")
    if kind == "SelectWithUnionQuery":
        # children: the selects, then optionally the FORMAT identifier; a Literal is INTO OUTFILE or COMPRESSION
        for extra in n.children[1:]:
            if extra.kind == "Literal":
                raise Refused("INTO OUTFILE is refused on the SQL port: results come back over HTTP")
            if extra.kind != "Identifier":
                _walk(extra, policy, n)
    if kind == "TableIdentifier":
        _check_table(n.text, policy)
    elif kind in ("ExistsTableQuery", "ExistsViewQuery"):
        for c in n.children:
            if c.kind == "Identifier":
                _check_table(c.text, policy)
        return
    elif kind == "ShowTables":  # names only
        return
    elif kind == "Identifier":
        first = n.text.split(".")[0].strip("`\"")
        if "." in n.text and first in DATABASE_NAMES:
            raise Refused(f"{n.text}: names qualified with a database are refused in expressions", 497)
    elif kind == "Function":
        name = n.text
        if parent is not None and parent.kind == "TableExpression":
            _check_table_function(n, policy)
        elif not policy.function_allowed(name):
            raise Refused(f"function {name}() is not allowed on the SQL port (it reads files, the network, "
                          "settings or server internals, or is unknown)", 497)
        if name in IN_FUNCTIONS and n.children:
            args = n.children[0].children
            if len(args) == 2 and args[1].kind in ("Identifier", "TableIdentifier"):
                raise Refused(f"IN {args[1].text}: a table or name on the right of IN is refused; "
                              "write IN (SELECT ...)", 497)
    children = n.children[:1] if kind == "SelectWithUnionQuery" else n.children
    for c in children:
        _walk(c, policy, n)


def check_tree(tree: Node, policy: Policy) -> str | None:
    """Raise Refused unless the statement is an allowed read. Returns the FORMAT named in the query, if any."""
    root = tree
    if root.kind == "Explain":
        if not root.children:
            raise Refused("EXPLAIN needs a query")
        for c in root.children:
            if c.kind not in ("SelectWithUnionQuery", "Set"):
                raise Refused("EXPLAIN is served for SELECT queries only")
    elif root.kind not in ("SelectWithUnionQuery", "DescribeQuery", "ExistsTableQuery", "ExistsViewQuery",
                           "ShowTables"):
        raise Refused(f"{root.kind} is not allowed on the SQL port: it is read-only (SELECT, EXPLAIN, DESCRIBE, "
                      "EXISTS, SHOW TABLES)")
    _walk(root, policy, None)
    if root.kind == "SelectWithUnionQuery":
        for extra in root.children[1:]:
            if extra.kind == "Identifier":
                return extra.text
    return None


def precheck(sql: str, max_bytes: int) -> str:
    """Text checks before the engine parses anything: size, one statement. The engine runs every statement of
    a multi-statement text, EXPLAIN's included, so a ';' anywhere but at the end is refused outright."""
    if len(sql.encode()) > max_bytes:
        raise Refused(f"query longer than {max_bytes} bytes", 1001)
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise Refused("empty query", 62)
    if ";" in text:
        raise Refused("only one statement per request (';' is refused inside a query; use char(59) in strings)")
    if "\x00" in text:
        raise Refused("NUL bytes are refused in queries", 62)
    return text
