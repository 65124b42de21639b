"""Decode Avro records (the Confluent wire format) straight into numpy columns, a field at a time.

A value is a zero byte, the writer schema's id (4 bytes, big-endian) and the
body, Avro's binary encoding of one record under that schema. The writer's
schema is fetched from the registry once per id and kept; the job's own (the
reader's) is its subject's version when the decoder is made
(`data.schemaVersion`, else the latest), and each writer record is resolved
against it for the columns the job reads (`workload.data.avro_schema`).

Why not fastavro: its `schemaless_reader` builds a dict per record (measured
370-384k records/s after the header) and the columns then have to be picked
out of it. Here the records of one writer schema are decoded together: the
batch's values are joined into one byte array, each record keeps a cursor
into it, and each field of the schema is one numpy step over every record
at once (a run of fixed-width fields, e.g. 18 doubles, is one gather; an
`int` or `long` is a vectorised varint; a union reads its branch index and
goes on with each branch's records). No Python runs per record.

Reasons (in `workload.data.decode`'s order; the first one wins):
- `empty`, `oversized`: as for every format;
- `invalid_avro`: not the wire format (no zero byte, shorter than the
  header) or a body that does not decode under its writer's schema
  (truncated, a union branch or enum index out of range, a negative length,
  bytes left over);
- `unknown_schema`: the registry has no schema of that id (or not Avro);
- `registry_unreachable`: the registry did not answer for that id (tried
  `ATTEMPTS` times; tried again for a later batch after `RETRY_AFTER_S`);
- `missing_field`: the writer's record lacks a column and the reader's
  schema gives it no default (or a null where a record was expected);
- `non_numeric`: a column that is null, a string, bytes or anything but a
  number or boolean (booleans read as 0 and 1), a default that is not a
  number, NaN or infinity, or beyond float32;
- `bad_key`: the label is not 0 or 1.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from workload.data.avro_schema import (
    Array,
    Enum,
    Fixed,
    Map,
    Node,
    Primitive,
    Record,
    RecordPlan,
    SchemaError,
    Union,
    Wanted,
    default_values,
    parse,
    record_plan,
    wanted,
)
from workload.data.decode import REASON_CODES, Decoded
from workload.data.json_decode import key_labels
from workload.data.schema_registry import (
    RegistryUnavailable,
    SchemaNotFound,
    SchemaRegistry,
    registry_access,
)
from workload.spec import DataSpec

EMPTY, OVERSIZED, INVALID, UNKNOWN, UNREACHABLE, MISSING, NON_NUMERIC, BAD_KEY = (
    REASON_CODES[name] for name in ("empty", "oversized", "invalid_avro", "unknown_schema",
                                    "registry_unreachable", "missing_field", "non_numeric",
                                    "bad_key"))

HEADER = 5
"""The wire format's header: magic byte 0, then the schema id (big-endian int32)."""

PAD = 16
"""Zero bytes after the joined values, so a read that runs past a record stays in the array."""

RETRY_AFTER_S = 5.0
"""Seconds before an id the registry did not answer for is asked again."""

FIXED_WIDTH = {"null": 0, "boolean": 1, "float": 4, "double": 8}
Ints = npt.NDArray[np.int64]

Target = int | dict[str, Wanted] | None
"""What a value is read for: a column, the fields wanted inside it, or nothing (skipped)."""


_REGISTRIES: dict[str, SchemaRegistry] = {}
_LOCK = threading.Lock()


def registry_for(data: DataSpec) -> SchemaRegistry:
    """The process's client of `data`'s registry (one per URL)."""
    assert data.schema_registry is not None
    with _LOCK:
        url = data.schema_registry.url
        if url not in _REGISTRIES:
            _REGISTRIES[url] = SchemaRegistry(registry_access(data.schema_registry))
        return _REGISTRIES[url]


class AvroDecoder:
    """A `Decoder` of Avro records in the Confluent wire format, read as `data` says, resolved to
    the reader's schema of `data.schemaRegistry.subject` (set by `decode.for_topic`), fetched
    now: a registry that does not answer, or a subject without the job's columns, fails here,
    before anything is read."""

    def __init__(self, data: DataSpec, registry: SchemaRegistry | None = None) -> None:
        assert data.schema_registry is not None and data.schema_registry.subject is not None
        subject = data.schema_registry.subject
        self._registry = registry if registry is not None else registry_for(data)
        self.subject = subject
        self._columns = data.record_columns
        self._width = len(self._columns)
        self._max_bytes = data.max_record_bytes
        self._label = None if data.label == "key" else self._columns.index(data.label)
        self._features = [i for i in range(self._width) if i != self._label]
        self.reader_id, self.reader_version, text = self._registry.version(
            subject, data.schema_version)
        try:
            self._want = wanted(parse(text), [column.split(".") for column in self._columns])
        except SchemaError as error:
            raise SchemaError(f"subject {subject!r} version {self.reader_version}: {error}; "
                              "data.columns names the fields to read") from None
        self._writers: dict[int, Node | None] = {}
        self._failed_at: dict[int, float] = {}
        self._plans: dict[tuple[int, int], RecordPlan] = {}
        self._lock = threading.Lock()
        self.schema_ids: Counter[int] = Counter()
        """Records seen per writer schema id (each record with a readable header)."""

    def __call__(self, keys: Sequence[bytes], values: Sequence[bytes]) -> Decoded:
        n = len(values)
        lengths = np.fromiter(map(len, values), np.int64, n)
        starts = np.zeros(n, np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        buf = np.frombuffer(b"".join([*values, bytes(PAD)]), np.uint8)
        reasons = np.zeros(n, np.uint8)
        reasons[lengths > self._max_bytes] = OVERSIZED
        reasons[lengths == 0] = EMPTY
        framed = (reasons == 0) & (lengths >= HEADER)
        framed[framed] = buf[starts[framed]] == 0
        reasons[(reasons == 0) & ~framed] = INVALID
        ids = np.full(n, -1, np.int64)
        head = starts[framed]
        ids[framed] = ((buf[head + 1].astype(np.int64) << 24) | (buf[head + 2].astype(np.int64)
                       << 16) | (buf[head + 3].astype(np.int64) << 8) | buf[head + 4])
        table = np.zeros((n, self._width), np.float64)
        missing: dict[int, str] = {}
        found, counts = np.unique(ids[framed], return_counts=True)
        with self._lock:
            self.schema_ids.update(dict(zip(found.tolist(), counts.tolist(), strict=True)))
        for schema_id in found.tolist():
            rows = np.flatnonzero(ids == schema_id)
            writer = self._writer(schema_id)
            if isinstance(writer, int):
                reasons[rows] = writer
                continue
            group = self._group(writer, buf, starts[rows] + HEADER, starts[rows] + lengths[rows])
            verdict = np.where(group.invalid, INVALID, np.where(
                group.missing < self._width, MISSING, np.where(group.not_numeric, NON_NUMERIC, 0)))
            reasons[rows] = verdict
            table[rows] = group.table
            for index in np.flatnonzero(verdict == MISSING).tolist():
                missing[int(rows[index])] = self._columns[int(group.missing[index])]
        return self._finish(keys, table, reasons, missing)

    def _group(self, writer: Node, buf: npt.NDArray[np.uint8], start: Ints, end: Ints) -> _Group:
        """The records of one writer schema, decoded together. Nesting as deep as Python's
        recursion limit (a recursive schema, a long chain of nested records) fails the group:
        its records are then decoded one at a time, and the ones that nest that deep are
        `invalid_avro`."""
        group = _Group(buf, start, end, self._width, self._plan)
        try:
            group.run(writer, self._want, np.arange(len(start)))
        except RecursionError:
            if len(start) == 1:
                group.invalid[:] = True
                return group
            group = _Group(buf, start, end, self._width, self._plan)
            for index in range(len(start)):
                alone = self._group(writer, buf, start[index:index + 1], end[index:index + 1])
                group.table[index] = alone.table[0]
                group.invalid[index] = alone.invalid[0]
                group.not_numeric[index] = alone.not_numeric[0]
                group.missing[index] = alone.missing[0]
                group.pos[index] = alone.pos[0]
        group.invalid |= group.pos != group.end
        return group

    def _finish(self, keys: Sequence[bytes], table: npt.NDArray[np.float64],
                reasons: npt.NDArray[np.uint8], missing: dict[int, str]) -> Decoded:
        with np.errstate(over="ignore", invalid="ignore"):
            table32 = table.astype(np.float32)
        reasons[(reasons == 0) & ~np.isfinite(table32).all(axis=1)] = NON_NUMERIC
        if self._label is None:
            labels, label_ok = key_labels(keys)
        else:
            labels = table32[:, self._label]
            label_ok = (labels == 0.0) | (labels == 1.0)
        reasons[(reasons == 0) & ~label_ok] = BAD_KEY
        good = reasons == 0
        features = table32[good] if self._label is None else table32[good][:, self._features]
        return Decoded(np.ascontiguousarray(features), labels[good], reasons, missing)

    def _writer(self, schema_id: int) -> Node | int:
        """The writer's schema of `schema_id`, or the reason code its records get."""
        with self._lock:
            if schema_id in self._writers:
                known = self._writers[schema_id]
                return known if known is not None else UNKNOWN
            if time.monotonic() - self._failed_at.get(schema_id, -RETRY_AFTER_S) < RETRY_AFTER_S:
                return UNREACHABLE
            try:
                node: Node | None = parse(self._registry.schema(schema_id))
            except (SchemaNotFound, SchemaError):
                node = None
            except RegistryUnavailable:
                self._failed_at[schema_id] = time.monotonic()
                return UNREACHABLE
            self._writers[schema_id] = node
            return node if node is not None else UNKNOWN

    def _plan(self, record: Record, want: dict[str, Wanted]) -> RecordPlan:
        key = (id(record), id(want))
        if key not in self._plans:
            self._plans[key] = record_plan(record, want)
        return self._plans[key]


class _Group:
    """The records of one writer schema being decoded: a cursor per record into the joined
    bytes, and what each has given so far."""

    def __init__(self, buf: npt.NDArray[np.uint8], pos: Ints, end: Ints, width: int,
                 plan: Any) -> None:
        self.buf, self.pos, self.end, self._plan = buf, pos, end, plan
        n = len(pos)
        self.table = np.zeros((n, width), np.float64)
        self.invalid = np.zeros(n, bool)
        self.not_numeric = np.zeros(n, bool)
        self.missing = np.full(n, width, np.int64)
        """The first missing column of each record (`width`: none)."""

    def run(self, node: Node, target: Target, idx: Ints) -> None:
        """Read a value of writer type `node` for the records `idx`, for `target`."""
        if not len(idx):
            return
        if isinstance(node, Union):
            branch = self.varint(idx)
            bad = (branch < 0) | (branch >= len(node.branches))
            self.invalid[idx[bad]] = True
            for index, each in enumerate(node.branches):
                self.run(each, target, idx[branch == index])
            return
        if isinstance(node, Record) and isinstance(target, dict):
            self.record(node, target, idx)
            return
        if isinstance(target, dict):  # a value where a record was wanted
            self.skip(node, idx)
            self._lack([column for entry in target.values() for column in entry.columns()], idx)
            return
        if isinstance(node, Primitive) and target is not None and node.kind in ("int", "long"):
            self.table[idx, target] = self.varint(idx)
            return
        if isinstance(node, Primitive) and node.kind in FIXED_WIDTH:
            self.fixed_run([(node.kind, target)], idx)
            return
        self.skip(node, idx)
        if target is not None:
            self.not_numeric[idx] = True

    def record(self, node: Record, want: dict[str, Wanted], idx: Ints) -> None:
        plan: RecordPlan = self._plan(node, want)
        run: list[tuple[str, int | None]] = []
        for kind, target in plan.steps:
            if isinstance(kind, Primitive) and kind.kind in FIXED_WIDTH and not isinstance(
                    target, dict):
                run.append((kind.kind, target))
                continue
            self.fixed_run(run, idx)
            run = []
            self.run(kind, target, idx)
        self.fixed_run(run, idx)
        for entry in plan.absent:
            if not entry.field.has_default:
                self._lack(entry.columns(), idx)
                continue
            numbers, not_numeric, lacking = default_values(entry, entry.field.default)
            for column, value in numbers.items():
                self.table[idx, column] = value
            if not_numeric:
                self.not_numeric[idx] = True
            if lacking:
                self._lack(sorted(lacking), idx)

    def fixed_run(self, run: list[tuple[str, int | None]], idx: Ints) -> None:
        """Fields of fixed width one after the other: one gather of their bytes for every record,
        viewed as a structured array (no copy per field)."""
        width = sum(FIXED_WIDTH[kind] for kind, _ in run)
        if not run or not len(idx):
            return
        full = len(idx) == len(self.pos)  # idx is then every record, in order
        names: list[str] = []
        formats: list[str] = []
        offsets: list[int] = []
        targets: list[int] = []
        offset = 0
        for kind, target in run:
            if kind == "boolean" or (target is not None and kind != "null"):
                names.append(f"f{len(names)}")
                formats.append({"boolean": "u1", "float": "<f4", "double": "<f8"}[kind])
                offsets.append(offset)
                targets.append(-1 if target is None else target)
            elif target is not None:  # null where a number is wanted
                self.not_numeric[idx] = True
            offset += FIXED_WIDTH[kind]
        if names:
            fields = self._gather(self.pos[idx], width).view(np.dtype(
                {"names": names, "formats": formats, "offsets": offsets, "itemsize": width}))[:, 0]
            for name, fmt, target in zip(names, formats, targets, strict=True):
                column = fields[name]
                if fmt == "u1":
                    self.invalid[idx[column > 1]] = True
                if target < 0:
                    continue
                if full:
                    self.table[:, target] = column
                else:
                    self.table[idx, target] = column
        self.advance(idx, width)

    def _gather(self, start: Ints, width: int) -> npt.NDArray[np.uint8]:
        """`width` bytes from each of `start`, as a contiguous [len(start), width] array; a start
        too near the end (a truncated record, found invalid by `advance`) reads the last bytes."""
        if len(self.buf) < width:
            padded = np.zeros(width, np.uint8)
            padded[:len(self.buf)] = self.buf
            return np.broadcast_to(padded, (len(start), width)).copy()
        windows = np.lib.stride_tricks.sliding_window_view(self.buf, width)
        return windows[np.minimum(start, len(self.buf) - width)]

    def skip(self, node: Node, idx: Ints) -> None:
        """Read past a value of `node` that no column needs."""
        if not len(idx):
            return
        if isinstance(node, Primitive):
            if node.kind in FIXED_WIDTH:
                self.advance(idx, FIXED_WIDTH[node.kind])
            elif node.kind in ("int", "long"):
                self.varint(idx)
            else:  # bytes, string
                self.advance(idx, self.varint(idx), checked=True)
        elif isinstance(node, Fixed):
            self.advance(idx, node.size)
        elif isinstance(node, Enum):
            symbol = self.varint(idx)
            self.invalid[idx[(symbol < 0) | (symbol >= len(node.symbols))]] = True
        elif isinstance(node, Record):
            for each in node.fields:
                self.skip(each.type, idx)
        elif isinstance(node, Union):
            self.run(node, None, idx)
        else:
            self.blocks(node, idx)

    def blocks(self, node: Array | Map, idx: Ints) -> None:
        """Arrays and maps: blocks of a count and items, until a count of 0. A negative count is
        followed by the block's size in bytes, which skips it whole."""
        item = node.items if isinstance(node, Array) else node.values
        empty = isinstance(node, Array) and _zero_width(item)
        while len(idx):
            count = self.varint(idx)
            sized = count < 0
            if sized.any():
                self.advance(idx[sized], self.varint(idx[sized]), checked=True)
            items, wanted_items = idx[count > 0], count[count > 0]
            if not empty:  # each item takes a byte or more: more than are left is invalid
                too_many = wanted_items > self.end[items] - self.pos[items]
                self.invalid[items[too_many]] = True
                items, wanted_items = items[~too_many], wanted_items[~too_many]
                for index in range(int(wanted_items.max()) if len(items) else 0):
                    going = items[wanted_items > index]
                    if isinstance(node, Map):
                        self.skip(Primitive("string"), going)
                    self.skip(item, going)
            idx = idx[(count != 0) & ~self.invalid[idx]]

    def varint(self, idx: Ints) -> Ints:
        """A zigzag varint (Avro's int and long) per record; advances the cursors."""
        start = self.pos[idx]
        value = np.zeros(len(idx), np.uint64)
        size = np.zeros(len(idx), np.int64)
        going = np.arange(len(idx))
        for index in range(10):
            byte = np.take(self.buf, start[going] + index, mode="clip").astype(np.uint64)
            value[going] |= (byte & np.uint64(0x7F)) << np.uint64(7 * index)
            size[going] = index + 1
            going = going[byte >= 0x80]
            if not len(going):
                break
        self.invalid[idx[going]] = True  # more than 10 bytes
        self.advance(idx, size)
        return (value >> np.uint64(1)).astype(np.int64) ^ -(value & np.uint64(1)).astype(np.int64)

    def advance(self, idx: Ints, by: int | Ints, checked: bool = False) -> None:
        """Move the cursors of `idx` on by `by` bytes; a record that runs past its end (or asks
        for a negative length) is invalid and its cursor stays at its end."""
        step = np.asarray(by, np.int64)
        if checked:
            negative = step < 0
            self.invalid[idx[negative]] = True
            step = np.where(negative, 0, step)
        moved = self.pos[idx] + step
        past = moved > self.end[idx]
        self.invalid[idx[past]] = True
        self.pos[idx] = np.where(past, self.end[idx], moved)

    def _lack(self, columns: list[int], idx: Ints) -> None:
        if columns:
            self.missing[idx] = np.minimum(self.missing[idx], min(columns))


def _zero_width(node: Node, seen: frozenset[int] = frozenset()) -> bool:
    """Whether a value of `node` takes no bytes (null, or a record of such fields; a record that
    holds itself is not counted as one: such a value cannot be written)."""
    if isinstance(node, Primitive):
        return node.kind == "null"
    return isinstance(node, Record) and id(node) not in seen and all(
        _zero_width(each.type, seen | {id(node)}) for each in node.fields)
