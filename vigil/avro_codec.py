"""Avro encoding of every Vigil message.

Embedded deployments use Avro single-object encoding (0xC3 0x01, the writer schema's CRC-64-AVRO fingerprint, the
body), resolving writer schemas from `schemas/` and its released snapshots. When a Schema Registry URL is configured,
messages use the Confluent wire format (0x00, 4-byte schema id, the body) and schemas are registered under
`<topic>-value`. Either way the reader schema is the current contract, so old messages decode into today's shape.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
from fastavro.validation import ValidationError, validate

from vigil.schemas import Contract, contracts, inline_references, parse, released_snapshots

SINGLE_OBJECT_MARKER = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


class SchemaViolation(ValueError):
    """A record does not match its schema; the message names the offending fields."""


class UndecodableMessage(ValueError):
    """Bytes that are not a decodable Vigil message (bad framing, unknown writer schema, truncated body)."""


class AvroCodec:
    def __init__(self, schema_registry_url: str | None = None, registry_config: dict | None = None):
        self._contracts = contracts()
        self._writers_by_fingerprint: dict[bytes, Contract] = {}
        all_current = {c.name: c.schema for c in self._contracts.values()}
        for contract in self._contracts.values():
            self._writers_by_fingerprint[contract.fingerprint] = contract
        for versions in released_snapshots().values():
            for _path, schema in versions:
                standalone = inline_references(schema, all_current)
                old = Contract(_path.stem, standalone, parse(standalone))
                self._writers_by_fingerprint.setdefault(old.fingerprint, old)
        self._registry = None
        self._registry_ids: dict[tuple[str, str], int] = {}
        self._registry_writers: dict[int, dict] = {}
        if schema_registry_url:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            self._registry = SchemaRegistryClient({"url": schema_registry_url, **(registry_config or {})})

    def contract(self, record_name: str) -> Contract:
        try:
            return self._contracts[record_name]
        except KeyError:
            raise SchemaViolation(f"unknown record type {record_name!r}; known: {sorted(n for n in self._contracts if '.' not in n)}") from None

    def encode(self, record_name: str, record: dict[str, Any], topic: str | None = None) -> bytes:
        """Validate `record` against the current `record_name` schema and encode it."""
        contract = self.contract(record_name)
        try:
            validate(record, contract.parsed, raise_errors=True)
        except ValidationError as exc:
            problems = "; ".join(str(e) for e in exc.errors) or str(exc)
            raise SchemaViolation(f"{record_name} record does not match its schema: {problems}") from None
        buffer = io.BytesIO()
        if self._registry is None:
            buffer.write(SINGLE_OBJECT_MARKER + contract.fingerprint)
        else:
            buffer.write(CONFLUENT_MAGIC + struct.pack(">I", self._schema_id(contract, topic)))
        fastavro.schemaless_writer(buffer, contract.parsed, record)
        return buffer.getvalue()

    def decode(self, data: bytes | None, expected: str | None = None) -> dict[str, Any]:
        """Decode a message into the current shape of its record; `expected` rejects other record types."""
        if not data or len(data) < 5:
            raise UndecodableMessage(f"message too short to be Avro ({len(data or b'')} bytes)")
        if data[:2] == SINGLE_OBJECT_MARKER and len(data) >= 10:
            writer = self._writers_by_fingerprint.get(bytes(data[2:10]))
            if writer is None:
                raise UndecodableMessage(f"unknown writer schema fingerprint {bytes(data[2:10]).hex()}")
            writer_name, writer_schema, body = _record_name(writer.schema), writer.parsed, data[10:]
        elif data[:1] == CONFLUENT_MAGIC and self._registry is not None:
            writer_schema = self._registry_writer(struct.unpack(">I", data[1:5])[0])
            writer_name, body = _record_name(writer_schema), data[5:]
        else:
            raise UndecodableMessage(f"not an Avro message of this deployment (first bytes {bytes(data[:4]).hex()})")
        if expected is not None and writer_name.rsplit(".", 1)[-1] != expected.rsplit(".", 1)[-1]:
            raise UndecodableMessage(f"expected a {expected} message, got {writer_name}")
        reader = _plain(self.contract(writer_name).parsed)
        try:
            return fastavro.schemaless_reader(io.BytesIO(body), _plain(writer_schema), reader)
        except Exception as exc:  # fastavro raises EOFError, SchemaResolutionError, UnicodeDecodeError, ...
            raise UndecodableMessage(f"corrupt {writer_name} body: {type(exc).__name__}: {exc}") from None

    def record_type(self, data: bytes) -> str:
        """Short record name ('FrameRef') of an encoded message, from its framing; raises UndecodableMessage."""
        if data and data[:2] == SINGLE_OBJECT_MARKER and len(data) >= 10:
            writer = self._writers_by_fingerprint.get(bytes(data[2:10]))
            if writer is not None:
                return _record_name(writer.schema).rsplit(".", 1)[-1]
        elif data and data[:1] == CONFLUENT_MAGIC and self._registry is not None and len(data) >= 5:
            return _record_name(self._registry_writer(struct.unpack(">I", data[1:5])[0])).rsplit(".", 1)[-1]
        raise UndecodableMessage("cannot tell the record type of this message")

    def _schema_id(self, contract: Contract, topic: str | None) -> int:
        from confluent_kafka.schema_registry import Schema

        subject = f"{topic}-value" if topic else contract.name
        key = (subject, contract.name)
        if key not in self._registry_ids:
            self._registry_ids[key] = self._registry.register_schema(subject, Schema(json.dumps(contract.schema), "AVRO"))
        return self._registry_ids[key]

    def _registry_writer(self, schema_id: int) -> dict:
        if schema_id not in self._registry_writers:
            try:
                schema = json.loads(self._registry.get_schema(schema_id).schema_str)
            except Exception as exc:
                raise UndecodableMessage(f"schema id {schema_id} not found in the registry: {exc}") from None
            # the registry holds other teams' schemas too: only a record of a Vigil contract has a reader here
            name = _record_name(schema) if isinstance(schema, dict) and schema.get("type") == "record" else None
            if name not in self._contracts:
                raise UndecodableMessage(f"schema id {schema_id} is {name or 'not a record'}, no Vigil record type")
            try:
                self._registry_writers[schema_id] = parse(schema)
            except Exception as exc:  # fastavro's SchemaParseException and friends
                raise UndecodableMessage(f"schema id {schema_id} does not parse: {exc}") from None
        return self._registry_writers[schema_id]


_PLAIN_CACHE: dict[int, dict] = {}


def _plain(parsed: dict) -> dict:
    """The schema without logical types, so timestamps decode as epoch-millisecond ints, as they were written."""
    key = id(parsed)
    if key not in _PLAIN_CACHE:

        def strip(node):
            if isinstance(node, dict):
                return {k: strip(v) for k, v in node.items() if k != "logicalType"}
            if isinstance(node, list):
                return [strip(v) for v in node]
            return node

        _PLAIN_CACHE[key] = parse(strip(parsed))
    return _PLAIN_CACHE[key]


def _record_name(schema: dict) -> str:
    name = schema["name"]
    return name if "." in name or not schema.get("namespace") else f"{schema['namespace']}.{name}"
