"""Avro records for tests, written by fastavro (not by the code under test), and a registry
stand-in for the decoder's pure logic (integration tests use the real registry)."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import fastavro

from workload.data.schema_registry import RegistryUnavailable, SchemaNotFound


def wire(schema_id: int, schema: Mapping[str, Any], record: Mapping[str, Any]) -> bytes:
    """`record` in the Confluent wire format: 0, the id (big-endian), fastavro's body."""
    out = io.BytesIO()
    out.write(b"\0" + struct.pack(">I", schema_id))
    fastavro.schemaless_writer(out, fastavro.parse_schema(dict(schema)), dict(record))
    return out.getvalue()


def read_back(value: bytes, schema: Mapping[str, Any]) -> Any:
    """fastavro's reading of a wire-format value's body (the oracle)."""
    return fastavro.schemaless_reader(io.BytesIO(value[5:]), fastavro.parse_schema(dict(schema)),
                                      None)


class StaticRegistry:
    """Schemas by id and a subject's versions, in memory; `down` makes every call fail as an
    unreachable registry does."""

    def __init__(self, schemas: Mapping[int, Mapping[str, Any]],
                 versions: Iterable[int] | None = None) -> None:
        self.schemas = {key: json.dumps(value) for key, value in schemas.items()}
        self.versions = list(versions if versions is not None else sorted(self.schemas))
        self.down = False
        self.asked: list[int] = []

    def schema(self, schema_id: int) -> str:
        self.asked.append(schema_id)
        if self.down:
            raise RegistryUnavailable("no answer")
        if schema_id not in self.schemas:
            raise SchemaNotFound(f"schema {schema_id}")
        return self.schemas[schema_id]

    def version(self, subject: str, version: int | None = None) -> tuple[int, int, str]:
        number = len(self.versions) if version is None else version
        schema_id = self.versions[number - 1]
        return schema_id, number, self.schemas[schema_id]
