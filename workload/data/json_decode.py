"""Decode JSON records with msgspec, and find a refused record's exact reason with `json`.

Why msgspec: measured on the benchmark's records (18 features and a label,
about 350 bytes each, batches of 8,192), parsing straight into a typed
record was 1.3-2 x as fast (across runs) as orjson's `loads` per record
(which builds a dict, then the columns have to be picked and type-checked)
and as pyarrow's JSON reader on a newline-joined batch (`bench.decoding`).

How a batch is decoded:
1. msgspec decodes each value into a record type built from `columns` (one
   struct per nested object, every leaf a float): parsing, "is an object",
   "has every column" and "each column is a number (not a boolean)" are
   one C call per record; other fields are skipped.
2. One `attrgetter` per record takes the columns of the records it accepted
   into a float64 table, then float32: a row with a value beyond float32 is
   `non_numeric`, a label other than 0/1 `bad_key` (vectorised).
3. A record msgspec refuses is examined by the standard library's `json`
   (strict: UTF-8, no `NaN`/`Infinity`), which gives its exact reason; the
   few valid records msgspec refuses (a number beyond float64, an unpaired
   surrogate escape in another field) come out good or `non_numeric` as
   `json` reads them. msgspec skips other fields without checking their
   UTF-8, so in a batch that is not all ASCII every non-ASCII record is
   checked as UTF-8 too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from itertools import chain
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from workload.data.decode import LABEL_KEY, REASON_CODES, WHITESPACE, Decoded
from workload.spec import DataSpec

EMPTY, OVERSIZED, INVALID_JSON, MISSING_FIELD, NON_NUMERIC, BAD_KEY = (
    REASON_CODES[name] for name in ("empty", "oversized", "invalid_json", "missing_field",
                                    "non_numeric", "bad_key"))

REFUSED = (msgspec.DecodeError, RecursionError)
"""What msgspec raises for a value that is not a record of the expected type."""

BLANKS = WHITESPACE.encode()
LABEL_KEY_RE = re.compile(LABEL_KEY.encode())
NUMBER_TYPES = (int, float)
"""What `json` gives for a JSON number (`bool` is a subclass of int, not one of these types)."""

Verdict = tuple[int, str | None, tuple[float, ...] | None]
"""A record's reason code (0: good), its first missing column, its values when good."""


class JsonDecoder:
    """A `Decoder` of JSON records laid out as `data` says."""

    def __init__(self, data: DataSpec) -> None:
        self._columns = data.record_columns
        self._paths = [column.split(".") for column in self._columns]
        record_type, attributes = record_type_of(self._paths)
        decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(record_type)
        self._decode_one = decoder.decode
        getter = attrgetter(*attributes)
        self._row = getter if len(attributes) > 1 else lambda record: (getter(record),)
        self._zero = decoder.decode(json.dumps(_zero_object(self._paths)))
        self._max_bytes = data.max_record_bytes
        self._label = None if data.label == "key" else self._columns.index(data.label)
        self._features = [i for i in range(len(self._columns)) if i != self._label]

    def __call__(self, keys: Sequence[bytes], values: Sequence[bytes]) -> Decoded:
        n, width = len(values), len(self._columns)
        records = self._parse(values)
        suspects = self._suspects(values, records)
        reasons = np.zeros(n, np.uint8)
        missing: dict[int, str] = {}
        verdicts = [(index, self._examine(values[index])) for index in suspects]
        for index, _ in verdicts:
            records[index] = self._zero
        table = np.fromiter(chain.from_iterable(map(self._row, records)), np.float64,
                            n * width).reshape(n, width)
        for index, (reason, column, row) in verdicts:
            reasons[index] = reason
            if column is not None:
                missing[index] = column
            if row is not None:
                table[index] = row
        with np.errstate(over="ignore"):
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

    def _parse(self, values: Sequence[bytes]) -> list[Any]:
        """msgspec's record of each value, `None` where it refuses the value.

        One `map` over the batch: when a value is refused, `extend` has kept the
        records before it, and the same `map` goes on with the next value.
        """
        records: list[Any] = []
        remaining = map(self._decode_one, values)
        while True:
            try:
                records.extend(remaining)
                break
            except REFUSED:
                records.append(None)
        assert len(records) == len(values)
        return records

    def _suspects(self, values: Sequence[bytes], records: list[Any]) -> list[int]:
        """Records to examine one by one: refused, oversized, or accepted but not UTF-8."""
        if records.count(None) == 0 and max(map(len, values), default=0) <= self._max_bytes \
                and b"".join(values).isascii():
            return []
        return [index for index, (value, record) in enumerate(zip(values, records, strict=True))
                if record is None or len(value) > self._max_bytes
                or (not value.isascii() and not _is_utf8(value))]

    def _examine(self, value: bytes) -> Verdict:
        """One record's verdict as the standard library's strict `json` reads it."""
        if not value.strip(BLANKS):
            return EMPTY, None, None
        if len(value) > self._max_bytes:
            return OVERSIZED, None, None
        try:
            record = json.loads(value.decode("utf-8"), parse_constant=_refuse_constant)
        except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
            return INVALID_JSON, None, None
        if not isinstance(record, dict):
            return INVALID_JSON, None, None
        leaves = []
        for column, path in zip(self._columns, self._paths, strict=True):
            node: Any = record
            for key in path:
                if not isinstance(node, dict) or key not in node:
                    return MISSING_FIELD, column, None
                node = node[key]
            leaves.append(node)
        if not all(type(leaf) in NUMBER_TYPES for leaf in leaves):
            return NON_NUMERIC, None, None
        try:
            return 0, None, tuple(float(leaf) for leaf in leaves)
        except OverflowError:  # an integer beyond float64
            return NON_NUMERIC, None, None


def record_type_of(paths: list[list[str]]) -> tuple[type, list[str]]:
    """The msgspec record type holding the columns at `paths`, and each column's attribute path
    (for `attrgetter`, in column order). Attributes are named `c0, c1, ...` and renamed to the
    JSON keys, so any key (dots, spaces, unicode) works."""
    tree: dict[str, Any] = {}  # a column is never also a path under another (`DataSpec`)
    for index, path in enumerate(paths):
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = index
    attributes = [""] * len(paths)

    def build(node: dict[str, Any], prefix: str) -> type:
        fields: list[tuple[str, type]] = []
        for position, child in enumerate(node.values()):
            name = f"c{position}"
            if isinstance(child, dict):
                fields.append((name, build(child, f"{prefix}{name}.")))
            else:
                fields.append((name, float))
                attributes[child] = prefix + name
        rename = {f"c{position}": key for position, key in enumerate(node)}
        return msgspec.defstruct("Record", fields, rename=rename, gc=False)

    return build(tree, ""), attributes


def key_labels(keys: Sequence[bytes]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Labels from message keys (float32 [n]) and which keys are labels (`LABEL_KEY`)."""
    joined = b"".join(keys)
    if len(joined) == len(keys):  # one byte per key: the common case, `0` or `1`
        digits = np.frombuffer(joined, np.uint8) - ord("0")
        return digits.astype(np.float32), digits <= 1
    ok = np.fromiter((LABEL_KEY_RE.fullmatch(key) is not None for key in keys), bool, len(keys))
    labels = np.fromiter((float(key) if good else 0.0 for key, good in zip(keys, ok, strict=True)),
                         np.float32, len(keys))
    return labels, ok


def _zero_object(paths: list[list[str]]) -> dict[str, Any]:
    """A JSON object with every column at 0 (the placeholder row of a refused record)."""
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = 0
    return root


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")
