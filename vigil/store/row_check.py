"""Checks a row against the ClickHouse column types of its table before it is buffered.

A record can be valid Avro and still not fit its table (a negative number for a UInt column, a short coordinate
list that shifts every later column). clickhouse-connect refuses such a row only when the whole batch is inserted,
and the sink would take that for an outage and retry it forever. Checked one row at a time, the refused record is
dead-lettered with the reason and the rest of the batch is stored.

Only what ClickHouse would refuse is checked: the row's width, integers against their type's range, numbers, text,
dates against DateTime64's range, and the shape of arrays, maps and tuples. A type not listed here is left to the
server.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

Check = Callable[[object], str | None]  # None when the value fits, else why not

_INT = re.compile(r"^(U?)Int(8|16|32|64|128|256)$")
_DATETIME_MIN = datetime.datetime(1900, 1, 1, tzinfo=datetime.timezone.utc)
_DATETIME_MAX = datetime.datetime(2299, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)


def _split_args(inner: str) -> list[str]:
    """`A, B(c, d), E` → ['A', 'B(c, d)', 'E'] (top-level commas only)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i].strip())
            start = i + 1
    parts.append(inner[start:].strip())
    return [p for p in parts if p]


def _args(type_name: str, wrapper: str) -> str | None:
    if type_name.startswith(wrapper + "(") and type_name.endswith(")"):
        return type_name[len(wrapper) + 1:-1]
    return None


def check_for(type_name: str) -> Check:
    """The check for one ClickHouse type name as DESCRIBE TABLE spells it."""
    type_name = type_name.strip()
    if (inner := _args(type_name, "LowCardinality")) is not None:
        return check_for(inner)
    if (inner := _args(type_name, "Nullable")) is not None:
        check = check_for(inner)
        return lambda v: None if v is None else check(v)
    if match := _INT.match(type_name):
        unsigned, bits = match.group(1) == "U", int(match.group(2))
        low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)

        def integer(v):
            if not isinstance(v, int):
                return f"{v!r} is not an integer ({type_name})"
            return None if low <= v <= high else f"{v} is out of {type_name}'s range {low}..{high}"
        return integer
    if type_name in ("Float32", "Float64"):
        return lambda v: None if isinstance(v, (int, float)) else f"{v!r} is not a number ({type_name})"
    if type_name == "Bool":
        return lambda v: None if isinstance(v, bool) or v in (0, 1) else f"{v!r} is not a Bool"
    if type_name == "String" or type_name.startswith("FixedString("):
        return lambda v: None if isinstance(v, (str, bytes)) else f"{v!r} is not text ({type_name})"
    if type_name.startswith("DateTime") or type_name.startswith("Date"):
        def when(v):
            if isinstance(v, datetime.datetime):
                moment = v if v.tzinfo else v.replace(tzinfo=datetime.timezone.utc)
                return None if _DATETIME_MIN <= moment <= _DATETIME_MAX else f"{v} is outside {type_name}'s range"
            if isinstance(v, (int, float, datetime.date)) and not isinstance(v, bool):
                return None
            return f"{v!r} is not a time ({type_name})"
        return when
    if (inner := _args(type_name, "Array")) is not None:
        element = check_for(inner)

        def array(v):
            if not isinstance(v, (list, tuple)):
                return f"{type(v).__name__} is not an array ({type_name})"
            for i, item in enumerate(v):
                if (why := element(item)) is not None:
                    return f"element {i}: {why}"
            return None
        return array
    if (inner := _args(type_name, "Map")) is not None:
        key_type, value_type = _split_args(inner)
        key, value = check_for(key_type), check_for(value_type)

        def mapping(v):
            if not isinstance(v, dict):
                return f"{type(v).__name__} is not a map ({type_name})"
            for k, item in v.items():
                if (why := key(k) or value(item)) is not None:
                    return f"entry {k!r}: {why}"
            return None
        return mapping
    if (inner := _args(type_name, "Tuple")) is not None:
        elements = [check_for(re.sub(r"^[a-z_]\w*\s+(?=[A-Z])", "", t)) for t in _split_args(inner)]  # names off

        def tuple_(v):
            if not isinstance(v, (list, tuple)) or len(v) != len(elements):
                return f"{v!r} is not a {len(elements)}-tuple ({type_name})"
            for i, (check, item) in enumerate(zip(elements, v)):
                if (why := check(item)) is not None:
                    return f"element {i}: {why}"
            return None
        return tuple_
    return lambda v: None  # left to the server


class RowCheck:
    """A table's columns (in insert order) and their checks; `why(row)` is None for a row the table takes."""

    def __init__(self, table: str, columns: list[str], types: dict[str, str]):
        missing = [c for c in columns if c not in types]
        if missing:
            raise ValueError(f"table {table} has no columns {missing}; the store's migrations are behind the code")
        self.table, self.columns = table, columns
        self.checks = [check_for(types[c]) for c in columns]

    def why(self, row: list) -> str | None:
        if len(row) != len(self.columns):
            return f"the row has {len(row)} values for {len(self.columns)} columns of {self.table}"
        for column, check, value in zip(self.columns, self.checks, row):
            if (why := check(value)) is not None:
                return f"{self.table}.{column}: {why}"
        return None
