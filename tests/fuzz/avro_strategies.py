"""Hypothesis strategies for Vigil's Avro records, derived from the contracts in `schemas/` (so a new field or record
type is generated without touching the tests), and one plain example record per type for tests that need a valid
message rather than many."""

from __future__ import annotations

from hypothesis import strategies as st

from vigil.schemas import contracts

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
PRIMITIVES = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(*INT32),
    "long": st.integers(*INT64),
    # Avro `float` is 32-bit: width=32 draws values that survive the round trip exactly; NaN never equals itself
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "bytes": st.binary(max_size=16),
    "string": st.text(max_size=12),
}


def _strategy(node, named: dict[str, st.SearchStrategy], namespace: str) -> st.SearchStrategy:
    if isinstance(node, str):
        if node in PRIMITIVES:
            return PRIMITIVES[node]
        full = node if "." in node else f"{namespace}.{node}"
        return named[full]  # a named type defined earlier in the same schema (references are inlined once)
    if isinstance(node, list):
        return st.one_of([_strategy(branch, named, namespace) for branch in node])
    kind = node["type"]
    if kind in ("record", "enum", "fixed"):
        full = node["name"] if "." in node["name"] else f"{node.get('namespace', namespace)}.{node['name']}"
        namespace = full.rsplit(".", 1)[0]
        if kind == "record":
            named[full] = st.fixed_dictionaries({field["name"]: _strategy(field["type"], named, namespace)
                                                 for field in node["fields"]})
            return named[full]
        named[full] = (st.sampled_from(node["symbols"]) if kind == "enum"
                       else st.binary(min_size=node["size"], max_size=node["size"]))
        return named[full]
    if kind == "array":
        return st.lists(_strategy(node["items"], named, namespace), max_size=4)
    if kind == "map":
        return st.dictionaries(st.text(max_size=6), _strategy(node["values"], named, namespace), max_size=3)
    if kind in PRIMITIVES:  # {"type": "long", "logicalType": "timestamp-millis"}: Vigil passes epoch milliseconds
        return PRIMITIVES[kind]
    raise ValueError(f"no strategy for Avro type {node!r}")


def records(record_type: str) -> st.SearchStrategy[dict]:
    """Valid records of `record_type` ('FrameRef'), drawn over its whole schema."""
    schema = contracts()[record_type].schema
    return _strategy(schema, {}, schema.get("namespace", ""))


def example(record_type: str, text: str, ts_ms: int) -> dict:
    """One plain valid record: every string `text`, every timestamp `ts_ms`, other numbers 1, unions null (or their
    first branch), arrays and maps empty, enums their first symbol."""

    def build(node, named: dict):
        if isinstance(node, list):
            return None if "null" in node else build(node[0], named)
        if isinstance(node, str):
            return named[node] if node in named else {
                "null": None, "boolean": False, "int": 1, "long": 1, "float": 1.0, "double": 1.0, "bytes": b"x",
                "string": text}[node]
        kind = node["type"]
        if node.get("logicalType") == "timestamp-millis":
            return ts_ms
        if kind == "record":
            value = {field["name"]: build(field["type"], named) for field in node["fields"]}
            named[node["name"]] = named[f"{node.get('namespace', 'vigil.v1')}.{node['name']}"] = value
            return value
        if kind == "enum":
            return node["symbols"][0]
        if kind == "array":
            return []
        if kind == "map":
            return {}
        return build(kind, named)

    return build(contracts()[record_type].schema, {})
