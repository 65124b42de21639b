"""Avro schemas as the Avro decoder needs them: parsed once, resolved against the job's schema.

A record is written with its writer's schema and read with the job's (the
reader's): the subject's version the phase pinned when it started. Avro's
schema resolution says how one becomes the other (the Avro specification,
"Schema Resolution"): fields match by name, or by one of the reader field's
aliases; a reader field the writer lacks takes the reader's default, and
without one the two schemas do not resolve; writer fields the reader does
not name are skipped. The decoder needs this only for the fields the job
reads (`data.columns`), so it is worked out for those: `wanted` finds each
column in the reader's schema (a dotted name is a path through nested
records), `record_plan` matches one writer record against it.

Named types (records, enums, fixed) may be referred to by name after their
definition, also from inside themselves (a recursive schema); the parsed
schema is a graph of nodes that share those objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NUMBERS = frozenset({"int", "long", "float", "double", "boolean"})
"""Primitive types a numeric column reads: integers and floats, and booleans as 0 or 1."""


class SchemaError(ValueError):
    """A schema that is not Avro, or that cannot give the job the fields it names."""


@dataclass(eq=False)
class Primitive:
    """`null`, `boolean`, `int`, `long`, `float`, `double`, `bytes` or `string`."""

    kind: str


@dataclass(eq=False)
class Fixed:
    """`size` bytes."""

    name: str
    size: int


@dataclass(eq=False)
class Enum:
    """One of `symbols`, written as its index."""

    name: str
    symbols: tuple[str, ...]


@dataclass(eq=False)
class Array:
    """Blocks of `items`."""

    items: Node


@dataclass(eq=False)
class Map:
    """Blocks of string keys and `values`."""

    values: Node


@dataclass(eq=False)
class Union:
    """One of `branches`, written as the branch's index, then its value."""

    branches: tuple[Node, ...]


@dataclass(eq=False)
class Field:
    """A record's field."""

    name: str
    type: Node
    aliases: tuple[str, ...] = ()
    has_default: bool = False
    default: Any = None


@dataclass(eq=False)
class Record:
    """Its fields, written one after the other."""

    name: str
    fields: list[Field] = field(default_factory=list)


Node = Primitive | Fixed | Enum | Array | Map | Union | Record


def parse(text: str) -> Node:
    """The schema in `text` (JSON, as a registry serves it)."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise SchemaError(f"the schema is not JSON: {error}") from error
    return _Parser().node(document, "")


class _Parser:
    """Parses one schema document, keeping its named types."""

    def __init__(self) -> None:
        self.named: dict[str, Node] = {}

    def node(self, document: Any, namespace: str) -> Node:
        if isinstance(document, str):
            return self._reference(document, namespace)
        if isinstance(document, list):
            return Union(tuple(self.node(branch, namespace) for branch in document))
        if not isinstance(document, dict) or "type" not in document:
            raise SchemaError(f"not an Avro schema: {json.dumps(document)[:200]}")
        kind = document["type"]
        if kind in ("record", "error"):
            name, inner = self._name(document, namespace)
            record = Record(name)
            self.named[name] = record  # before its fields: they may refer to it
            for entry in document.get("fields", []):
                if not isinstance(entry, dict) or "name" not in entry or "type" not in entry:
                    raise SchemaError(f"record {name}: a field needs a name and a type")
                record.fields.append(Field(str(entry["name"]), self.node(entry["type"], inner),
                                           tuple(entry.get("aliases", ())), "default" in entry,
                                           entry.get("default")))
            return record
        if kind == "enum":
            name, _ = self._name(document, namespace)
            enum = Enum(name, tuple(document.get("symbols", ())))
            self.named[name] = enum
            return enum
        if kind == "fixed":
            name, _ = self._name(document, namespace)
            fixed = Fixed(name, int(document["size"]))
            self.named[name] = fixed
            return fixed
        if kind == "array":
            return Array(self.node(document["items"], namespace))
        if kind == "map":
            return Map(self.node(document["values"], namespace))
        return self.node(kind, namespace)  # {"type": "double", "logicalType": ...}

    def _name(self, document: dict[str, Any], namespace: str) -> tuple[str, str]:
        """The full name of a named type and the namespace its inner names default to."""
        name = str(document.get("name", ""))
        if "." not in name:
            space = str(document.get("namespace", namespace) or "")
            name = f"{space}.{name}" if space else name
        return name, name.rpartition(".")[0]

    def _reference(self, name: str, namespace: str) -> Node:
        if name in PRIMITIVES:
            return Primitive(name)
        for candidate in (f"{namespace}.{name}" if namespace else name, name):
            if candidate in self.named:
                return self.named[candidate]
        raise SchemaError(f"unknown type {name!r}")


# ---------------------------------------------------------------- the reader's side


@dataclass(eq=False)
class Wanted:
    """A field of the reader's schema the job reads, or a record on the way to one."""

    field: Field
    """The reader's field: its name, aliases and default."""
    column: int | None = None
    """The column it fills (a leaf), in `data.columns` order."""
    below: dict[str, Wanted] | None = None
    """The fields wanted inside it (a record on a dotted path), by reader name."""

    def columns(self) -> list[int]:
        """Every column at or under this field."""
        if self.column is not None:
            return [self.column]
        return [column for child in (self.below or {}).values() for column in child.columns()]


def records_in(node: Node) -> list[Record]:
    """The records a value of `node` may be: itself, or a union's record branches."""
    if isinstance(node, Record):
        return [node]
    if isinstance(node, Union):
        return [branch for branch in node.branches if isinstance(branch, Record)]
    return []


def wanted(reader: Node, paths: list[list[str]]) -> dict[str, Wanted]:
    """The reader's fields at `paths` (each column's dotted path, in column order), as a tree
    by reader name; a path the reader's schema does not have is a `SchemaError`."""
    top: dict[str, Wanted] = {}
    for column, path in enumerate(paths):
        node, level = reader, top
        for depth, name in enumerate(path):
            found = next((each for record in records_in(node) for each in record.fields
                          if each.name == name), None)
            if found is None:
                raise SchemaError(f"the reader's schema has no field {'.'.join(path[:depth + 1])}")
            entry = level.setdefault(name, Wanted(found))
            if depth == len(path) - 1:
                entry.column = column
            else:
                entry.below = entry.below if entry.below is not None else {}
                level, node = entry.below, found.type
    return top


@dataclass(frozen=True)
class RecordPlan:
    """How one writer record gives the wanted fields: what to do with each writer field (read
    into a column, descend, or skip) and the wanted fields it lacks."""

    steps: tuple[tuple[Node, int | dict[str, Wanted] | None], ...]
    """Per writer field, in order: its type and its target (a column, the fields wanted inside
    it, or `None`: skipped)."""
    absent: tuple[Wanted, ...]
    """Wanted fields the writer's record lacks (they take the reader's default, if any)."""


def record_plan(record: Record, want: dict[str, Wanted]) -> RecordPlan:
    """Match a writer's record to the fields wanted from it (by name or the reader's aliases)."""
    by_name: dict[str, Wanted] = {}
    for name, entry in want.items():
        by_name.setdefault(name, entry)
        for alias in entry.field.aliases:
            by_name.setdefault(alias, entry)
    matched: set[int] = set()
    steps: list[tuple[Node, int | dict[str, Wanted] | None]] = []
    for each in record.fields:
        match = by_name.get(each.name)
        if match is None or id(match) in matched:
            steps.append((each.type, None))
            continue
        matched.add(id(match))
        steps.append((each.type, match.column if match.column is not None else match.below))
    absent = tuple(entry for entry in want.values() if id(entry) not in matched)
    return RecordPlan(tuple(steps), absent)


def default_leaves(entry: Wanted, value: Any) -> tuple[dict[int, Any], set[int]]:
    """What a reader default gives the columns at and under `entry`: each column's value (JSON,
    as the schema writes defaults), and the columns it leaves missing."""
    if entry.column is not None:
        return {entry.column: value}, set()
    values: dict[int, Any] = {}
    missing: set[int] = set()
    for name, child in (entry.below or {}).items():
        if isinstance(value, dict) and name in value:
            inner = default_leaves(child, value[name])
        elif child.field.has_default:
            inner = default_leaves(child, child.field.default)
        else:
            inner = ({}, set(child.columns()))
        values.update(inner[0])
        missing |= inner[1]
    return values, missing
