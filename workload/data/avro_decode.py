"""Decode Avro records (the Confluent wire format) straight into numpy columns, a field at a time.

A value is a zero byte, the writer schema's id (4 bytes, big-endian) and the
body, Avro's binary encoding of one record under that schema. The writer's
schema is fetched from the registry once per id and kept; the job's own (the
reader's) is its subject's version when the decoder is made
(`data.schemaVersion`, else the latest), and each writer record is resolved
against it for the columns the job reads (`workload.data.avro_schema`).

Why not fastavro: its `schemaless_reader` builds a dict per record (370-384k
records/s after the header in an idle probe, 37-43k under this machine's
usual load in `make bench`) and the columns then have to be picked out of
it. Here the records of one writer schema are decoded together, a field at
a time over the whole batch in numpy (`workload.data.avro_columns`): no
Python runs per record (but for a categorical string or a class name).

Categorical columns (`data.categorical`) and a multiclass label column are
read as text: a string, an enum's symbol, an integer or boolean as JSON
spells it, an integral float as its integer. Labels are read for the task as
JSON's are (`workload.data.json_decode.task_labels`).

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
- `non_numeric`: a numeric column that is null, a string, bytes or anything
  but a number or boolean (booleans read as 0 and 1), a default that is not
  a number, NaN or infinity, or beyond float32; a regression label that is
  not a number;
- `non_categorical`: a categorical column that is null, bytes, a record, an
  array, a map or a float that is not integral;
- `bad_key`: a binary label that is not 0 or 1;
- `unknown_class`: a multiclass label that is not one of the classes (given
  by `workload.data.decode`), or none (a null, say).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from workload.data.avro_columns import Columns, Ints, Slot
from workload.data.avro_schema import (
    Node,
    Record,
    RecordPlan,
    SchemaError,
    Wanted,
    parse,
    record_plan,
    wanted,
)
from workload.data.decoded import REASON_CODES, Decoded, Task, Texts
from workload.data.json_decode import task_labels
from workload.data.schema_registry import (
    RegistryUnavailable,
    SchemaNotFound,
    SchemaRegistry,
    registry_access,
)
from workload.spec import DataSpec

EMPTY, OVERSIZED, INVALID, UNKNOWN, UNREACHABLE, MISSING, NON_NUMERIC, NON_CATEGORICAL = (
    REASON_CODES[name] for name in ("empty", "oversized", "invalid_avro", "unknown_schema",
                                    "registry_unreachable", "missing_field", "non_numeric",
                                    "non_categorical"))

HEADER = 5
"""The wire format's header: magic byte 0, then the schema id (big-endian int32)."""

PAD = 16
"""Zero bytes after the joined values, so a read that runs past a record stays in the array."""

RETRY_AFTER_S = 5.0
"""Seconds before an id the registry did not answer for is asked again."""


_REGISTRIES: dict[str, SchemaRegistry] = {}
_MADE: dict[str, AvroDecoder] = {}
"""The last decoder made for each subject (its schema figures go in the phase's results)."""
_SEEN: dict[tuple[str, str], Counter[int]] = {}
"""Records seen per writer schema id, by registry URL and subject: shared by the subject's
decoders in this process (a multiclass phase makes one while it learns the classes and another
once they are known)."""
_LOCK = threading.Lock()


def made_for(data: DataSpec) -> AvroDecoder | None:
    """The decoder this process made last for `data`'s subject (`decode.for_topic`), if any."""
    registry = data.schema_registry
    with _LOCK:
        return _MADE.get(registry.subject or "") if registry is not None else None


def registry_for(data: DataSpec) -> SchemaRegistry:
    """The process's client of `data`'s registry (one per URL)."""
    assert data.schema_registry is not None
    with _LOCK:
        url = data.schema_registry.url
        if url not in _REGISTRIES:
            _REGISTRIES[url] = SchemaRegistry(registry_access(data.schema_registry))
        return _REGISTRIES[url]


class AvroDecoder:
    """A `Decoder` of Avro records in the Confluent wire format, read as `data` says (labels for
    `task`; multiclass labels come back as text, as `workload.data.decode` expects), resolved to
    the reader's schema of `data.schemaRegistry.subject` (set by `decode.for_topic`), fetched
    now: a registry that does not answer, or a subject without the job's columns, fails here,
    before anything is read."""

    def __init__(self, data: DataSpec, task: Task = "binary",
                 registry: SchemaRegistry | None = None) -> None:
        assert data.schema_registry is not None and data.schema_registry.subject is not None
        subject = data.schema_registry.subject
        self._registry = registry if registry is not None else registry_for(data)
        self.subject = subject
        self._task = task
        self._columns = columns = data.record_columns
        self._width = len(columns)
        self._max_bytes = data.max_record_bytes
        label = None if data.label == "key" else data.label
        class_column = label if task == "multiclass" else None
        categorical = data.categorical_names
        numeric = [c for c in columns if c not in categorical and c != class_column]
        worded = [*categorical, *([class_column] if class_column is not None else [])]
        self._slots: list[Slot] = [("text", worded.index(c)) if c in worded
                                   else ("number", numeric.index(c)) for c in columns]
        self._lenient = frozenset({len(categorical)} if class_column is not None else ())
        self._n_numeric, self._n_text = len(numeric), len(worded)
        self._categorical = len(categorical)
        self._label = None if label is None or class_column is not None else numeric.index(label)
        self._class = None if class_column is None else len(categorical)
        self._features = [i for i in range(len(numeric)) if i != self._label]
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
        with _LOCK:
            self.schema_ids: Counter[int] = _SEEN.setdefault((data.schema_registry.url, subject),
                                                              Counter())
            """Records seen per writer schema id (each record with a readable header), by every
            decoder of the subject in this process."""
            _MADE[subject] = self

    def __call__(self, keys: Sequence[bytes], values: Sequence[bytes]) -> Decoded:
        n = len(values)
        lengths = np.fromiter(map(len, values), np.int64, n)
        starts = np.zeros(n, np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        raw = b"".join([*values, bytes(PAD)])
        buf = np.frombuffer(raw, np.uint8)
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
        table = np.zeros((n, self._n_numeric), np.float64)
        words = np.full((n, self._n_text), "", object)
        missing: dict[int, str] = {}
        found, counts = np.unique(ids[framed], return_counts=True)
        with _LOCK:
            self.schema_ids.update(dict(zip(found.tolist(), counts.tolist(), strict=True)))
        for schema_id in found.tolist():
            rows = np.flatnonzero(ids == schema_id)
            writer = self._writer(schema_id)
            if isinstance(writer, int):
                reasons[rows] = writer
                continue
            group = self._group(writer, raw, buf, starts[rows] + HEADER,
                                starts[rows] + lengths[rows])
            verdict = np.where(group.invalid, INVALID, np.where(
                group.missing < self._width, MISSING, np.where(
                    group.not_numeric, NON_NUMERIC, np.where(
                        group.not_categorical, NON_CATEGORICAL, 0))))
            reasons[rows] = verdict
            table[rows] = group.numbers
            words[rows] = group.texts
            for index in np.flatnonzero(verdict == MISSING).tolist():
                missing[int(rows[index])] = self._columns[int(group.missing[index])]
        return self._finish(keys, table, words, reasons, missing)

    def _group(self, writer: Node, raw: bytes, buf: npt.NDArray[np.uint8], start: Ints,
               end: Ints) -> Columns:
        """The records of one writer schema, decoded together. Nesting as deep as Python's
        recursion limit (a recursive schema, a long chain of nested records) fails the group:
        its records are then decoded one at a time, and the ones that nest that deep are
        `invalid_avro`."""
        group = Columns(raw, buf, start, end, self._slots, self._plan, self._lenient)
        try:
            group.run(writer, self._want, np.arange(len(start)))
        except RecursionError:
            if len(start) == 1:
                group.invalid[:] = True
                return group
            group = Columns(raw, buf, start, end, self._slots, self._plan, self._lenient)
            for index in range(len(start)):
                alone = self._group(writer, raw, buf, start[index:index + 1],
                                    end[index:index + 1])
                for name in ("numbers", "texts", "invalid", "not_numeric", "not_categorical",
                             "missing", "pos"):
                    getattr(group, name)[index] = getattr(alone, name)[0]
        group.finish()
        return group

    def _finish(self, keys: Sequence[bytes], table: npt.NDArray[np.float64], words: Texts,
                reasons: npt.NDArray[np.uint8], missing: dict[int, str]) -> Decoded:
        with np.errstate(over="ignore", invalid="ignore"):
            table32 = table.astype(np.float32)
        reasons[(reasons == 0) & ~np.isfinite(table32).all(axis=1)] = NON_NUMERIC
        labels, tokens = task_labels(
            self._task, keys, None if self._label is None else table32[:, self._label],
            None if self._class is None else words[:, self._class], reasons)
        good = reasons == 0
        features = table32[good] if self._label is None else table32[good][:, self._features]
        categories = words[good][:, :self._categorical] if self._categorical else None
        return Decoded(np.ascontiguousarray(features), labels[good], reasons, missing,
                       categories=categories, tokens=None if tokens is None else tokens[good])

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
