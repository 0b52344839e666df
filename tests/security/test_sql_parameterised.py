"""SQL is parameterised: values travel as ClickHouse query parameters ({name:Type}), never spliced into the text.
This test finds every call that sends SQL (`.query`, `.command`, ...) in the code that ships (app, services, jobs,
vigil) whose text is not a literal or a module constant, and fails unless the site is on the reviewed list below,
with why what it interpolates is not a caller's value. A new dynamic SQL site is thereby a reviewed decision."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "services", "jobs", "vigil")
SQL_CALLS = {"query", "command", "query_df", "query_np", "query_arrow", "raw_query", "query_rows", "query_row_block_stream"}

# (file, enclosing function) -> why its dynamic SQL text carries no caller's value
REVIEWED = {
    ("vigil/outputs/clickhouse.py", "_check"): "DESCRIBE TABLE of a table name from the TABLES constant (never from input)",
    ("app/cli.py", "cmd_sql"): "the analyst's own statement, run read-only (readonly=1) unless --write; values via --param",
    ("app/cookbook.py", "run"): "a query of the COOKBOOK constant; camera and period as parameters",
    ("app/demo.py", "run_demo"): "queries of the SUMMARY_QUERIES and ANALYST_QUERIES constants; the window as parameters",
    ("services/reid/train.py", "load_track_crops"): "WHERE of fixed fragments whose values are {name:Type} parameters",
    ("app/stack/chdb_server.py", "execute"): "the embedded store's HTTP facade runs the statement its client sent, as "
                                             "ClickHouse does; database and setting names are checked against "
                                             "[A-Za-z_][A-Za-z0-9_]*, setting values are quoted literals",
    ("services/reid/api.py", "get_track"): "column list and FROM clause are module constants",
    ("services/reid/api.py", "ranked"): "column list and FROM clause are constants; WHERE joins fixed fragments "
                                        "whose values are {name:Type} parameters",
    ("services/reid/api.py", "trajectory"): "column list and FROM clause are module constants",
    ("services/reid/api.py", "transit"): "WHERE joins fixed fragments whose values are {name:Type} parameters",
    ("services/console/incidents.py", "filters"): "a fixed scope fragment, the cameras as a parameter",
    ("vigil/incidents.py", "queue"): "column names from a fixed tuple, values as parameters; LIMIT is int()",
    ("vigil/store/migrate.py", "apply_migrations"): "the repository's migration files; ttl_days is int()",
    ("vigil/erasure.py", "_count"): "table names and WHERE fragments from the fixed TABLES, values as parameters",
    ("vigil/erasure.py", "_delete"): "table names and WHERE fragments from the fixed TABLES, values as parameters",
}


def sql_sites() -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for function in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
                for call in _own_nodes(function):
                    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                            and call.func.attr in SQL_CALLS and call.args):
                        continue
                    text = call.args[0]
                    literal = isinstance(text, ast.Constant) and isinstance(text.value, str)
                    constant = isinstance(text, ast.Name) and text.id.isupper()
                    if not (literal or constant):
                        key = (str(path.relative_to(ROOT)), function.name)
                        found[key] = found.get(key, 0) + 1
    return found


def _own_nodes(function):
    """The nodes of `function` outside the functions nested in it (those are visited on their own)."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def test_every_dynamic_sql_text_is_reviewed():
    sites = sql_sites()
    unreviewed = sorted(set(sites) - set(REVIEWED))
    assert not unreviewed, ("SQL text built at run time; pass values as {name:Type} parameters, or review the site "
                            f"and list it in REVIEWED with the reason: {unreviewed}")
    stale = sorted(key for key in set(REVIEWED) - set(sites) if (ROOT / key[0]).exists())
    assert not stale, f"reviewed sites that no longer build SQL: {stale}"


def test_no_sql_is_formatted_with_percent_or_format():
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) \
                        and isinstance(node.left.value, str) and node.left.value.lstrip().upper().startswith(
                            ("SELECT", "INSERT", "ALTER", "CREATE", "DROP", "DELETE")):
                    raise AssertionError(f"{path}:{node.lineno}: SQL built with %")
