"""The Avro contracts in `schemas/`: loading, reference inlining and the released snapshots they must stay compatible with."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
RELEASED_DIR = SCHEMA_DIR / "released"
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


@dataclass(frozen=True)
class Contract:
    """One record schema: its full name, the self-contained (references inlined) JSON and the parsed form."""

    name: str
    schema: dict
    parsed: dict

    @property
    def fingerprint(self) -> bytes:
        """CRC-64-AVRO fingerprint of the Parsing Canonical Form, as 8 little-endian bytes (single-object encoding)."""
        return int(fingerprint(to_parsing_canonical_form(self.parsed), "CRC-64-AVRO"), 16).to_bytes(8, "little")


def _full_name(schema: dict) -> str:
    name = schema["name"]
    return name if "." in name else f"{schema.get('namespace', '')}.{name}".lstrip(".")


def inline_references(schema: dict, definitions: dict[str, dict]) -> dict:
    """Return `schema` with every reference to another file's named type replaced by its definition (once)."""
    defined: set[str] = set()

    def walk(node, namespace: str):
        if isinstance(node, str):
            full = node if "." in node or node in _PRIMITIVES else f"{namespace}.{node}"
            if node in _PRIMITIVES or full in defined:
                return node
            if full in definitions:
                return walk(copy.deepcopy(definitions[full]), namespace)
            return node
        if isinstance(node, list):
            return [walk(branch, namespace) for branch in node]
        if isinstance(node, dict):
            node = dict(node)
            if node.get("type") in ("record", "enum", "fixed", "error"):
                full = _full_name({"name": node["name"], "namespace": node.get("namespace", namespace)})
                defined.add(full)
                namespace = full.rsplit(".", 1)[0]
            if node.get("type") in ("record", "error"):
                node["fields"] = [{**field, "type": walk(field["type"], namespace)} for field in node["fields"]]
            elif node.get("type") == "array":
                node["items"] = walk(node["items"], namespace)
            elif node.get("type") == "map":
                node["values"] = walk(node["values"], namespace)
            elif isinstance(node.get("type"), (dict, list, str)) and node.get("type") not in _PRIMITIVES | {"enum", "fixed"}:
                node["type"] = walk(node["type"], namespace)
            return node
        return node

    return walk(schema, schema.get("namespace", ""))


def parse(schema: dict) -> dict:
    return fastavro.parse_schema(schema, _write_hint=False, _force=True)


@lru_cache(maxsize=None)
def contracts(schema_dir: Path = SCHEMA_DIR) -> dict[str, Contract]:
    """Every `*.avsc` in `schema_dir`, keyed by short record name ('FrameRef') and by full name ('vigil.v1.FrameRef')."""
    raw = {}
    for path in sorted(schema_dir.glob("*.avsc")):
        schema = json.loads(path.read_text())
        raw[_full_name(schema)] = schema
    result: dict[str, Contract] = {}
    for full, schema in raw.items():
        standalone = inline_references(schema, raw)
        contract = Contract(full, standalone, parse(standalone))
        result[full] = contract
        result[full.rsplit(".", 1)[-1]] = contract
    return result


def released_snapshots(schema_dir: Path = SCHEMA_DIR) -> dict[str, list[tuple[Path, dict]]]:
    """Released versions of each record, oldest first: `schemas/released/<Name>.v<N>.avsc`."""
    snapshots: dict[str, list[tuple[Path, dict]]] = {}
    for path in sorted((schema_dir / "released").glob("*.avsc"), key=lambda p: (p.name.split(".v")[0], int(p.stem.rsplit(".v", 1)[1]))):
        snapshots.setdefault(path.name.split(".v")[0], []).append((path, json.loads(path.read_text())))
    return snapshots
