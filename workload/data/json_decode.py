"""Decode JSON records with msgspec, and find a refused record's exact reason with `json`.

Why msgspec: measured on the benchmark's records (18 features and a label,
about 350 bytes each, batches of 8,192), parsing straight into a typed
record was 1.3-2 x as fast (across runs) as orjson's `loads` per record
(which builds a dict, then the columns have to be picked and type-checked)
and as pyarrow's JSON reader on a newline-joined batch (`bench.decoding`).

How a batch is decoded:
1. msgspec decodes each value into a record type built from `columns` (one
   struct per nested object; a numeric leaf a float, a categorical one a
   string, integer or boolean, a multiclass label a string or integer):
   parsing, "is an object", "has every column" and each column's type are
   one C call per record; other fields are skipped.
2. One `attrgetter` per record takes the numeric columns of the records it
   accepted into a float64 table, then float32: a row with a value beyond
   float32 is `non_numeric`, a binary label other than 0/1 `bad_key`
   (vectorised). Categorical values and class names are kept as text
   (`3` -> `"3"`, `true` -> `"true"`).
3. A record msgspec refuses is examined by the standard library's `json`
   (strict: UTF-8, no `NaN`/`Infinity`), which gives its exact reason; the
   few valid records msgspec refuses (a number beyond float64, an unpaired
   surrogate escape in another field, an integral float such as `3.0` in a
   categorical field) come out as `json` reads them. msgspec skips other
   fields without checking their UTF-8, so in a batch that is not all ASCII
   every non-ASCII record is checked as UTF-8 too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from workload.data.decoded import (
    LABEL_KEY,
    NUMBER_KEY,
    REASON_CODES,
    WHITESPACE,
    Decoded,
    Task,
    Texts,
    texts,
)
from workload.spec import DataSpec

EMPTY, OVERSIZED, INVALID_JSON, MISSING_FIELD, NON_NUMERIC, NON_CATEGORICAL, BAD_KEY = (
    REASON_CODES[name] for name in ("empty", "oversized", "invalid_json", "missing_field",
                                    "non_numeric", "non_categorical", "bad_key"))

REFUSED = (msgspec.DecodeError, RecursionError)
"""What msgspec raises for a value that is not a record of the expected type."""

BLANKS = WHITESPACE.encode()
LABEL_KEY_RE = re.compile(LABEL_KEY.encode())
NUMBER_KEY_RE = re.compile(NUMBER_KEY.encode())
NUMBER_TYPES = (int, float)
"""What `json` gives for a JSON number (`bool` is a subclass of int, not one of these types)."""

CATEGORY_TYPES = (str, int, bool)
"""What a categorical value may be (read as text)."""

Verdict = tuple[int, str | None, tuple[float, ...] | None, tuple[str, ...] | None]
"""A record's reason code (0: good), its first missing column, its numbers and texts when good."""

Getter = Callable[[Any], tuple[Any, ...]]


def as_text(value: Any) -> str:
    """A categorical value or class name as text: JSON's spelling of integers and booleans, an
    integral float as its integer; '' for anything else (no class, no category)."""
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float and value.is_integer():
        return str(int(value))
    return ""


def _getter(attributes: list[str]) -> Getter:
    """A function of a record giving the values at `attributes` as a tuple."""
    if not attributes:
        return lambda record: ()
    getter = attrgetter(*attributes)
    if len(attributes) == 1:
        return lambda record: (getter(record),)
    return getter


class JsonDecoder:
    """A `Decoder` of JSON records laid out as `data` says, labels read for `task`."""

    def __init__(self, data: DataSpec, task: Task = "binary") -> None:
        self._task = task
        columns = data.record_columns
        categorical = set(data.categorical_names)
        label = None if data.label == "key" else data.label
        class_column = label if task == "multiclass" else None
        self._numeric = [c for c in columns if c not in categorical and c != class_column]
        self._text = [c for c in columns if c in categorical or c == class_column]
        self._categorical = [c for c in columns if c in categorical]
        self._columns = columns
        self._paths = [column.split(".") for column in columns]
        leaves = [float if c in self._numeric else str | int if c == class_column
                  else str | int | bool for c in columns]
        record_type, attributes = record_type_of(self._paths, leaves)
        decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(record_type)
        self._decode_one = decoder.decode
        where = dict(zip(columns, attributes, strict=True))
        self._numbers = _getter([where[c] for c in self._numeric])
        self._words = _getter([where[c] for c in self._text])
        self._zero = decoder.decode(json.dumps(_zero_object(self._paths, set(self._text))))
        self._max_bytes = data.max_record_bytes
        self._label = (None if label is None or class_column is not None
                       else self._numeric.index(label))
        self._class = None if class_column is None else self._text.index(class_column)
        self._features = [i for i in range(len(self._numeric)) if i != self._label]

    def __call__(self, keys: Sequence[bytes], values: Sequence[bytes]) -> Decoded:
        n, width = len(values), len(self._numeric)
        records = self._parse(values)
        suspects = self._suspects(values, records)
        reasons = np.zeros(n, np.uint8)
        missing: dict[int, str] = {}
        verdicts = [(index, self._examine(values[index])) for index in suspects]
        for index, _ in verdicts:
            records[index] = self._zero
        table = np.fromiter(chain.from_iterable(map(self._numbers, records)), np.float64,
                            n * width).reshape(n, width)
        words = list(map(self._words, records)) if self._text else []
        for index, (reason, column, numbers, text) in verdicts:
            reasons[index] = reason
            if column is not None:
                missing[index] = column
            if numbers is not None:
                table[index] = numbers
            if text is not None and self._text:
                words[index] = text
        with np.errstate(over="ignore"):
            table32 = table.astype(np.float32)
        reasons[(reasons == 0) & ~np.isfinite(table32).all(axis=1)] = NON_NUMERIC
        text_table = texts((as_text(word) for word in chain.from_iterable(words)),
                           (n, len(self._text)))
        labels, tokens = task_labels(
            self._task, keys, None if self._label is None else table32[:, self._label],
            None if self._class is None else text_table[:, self._class], reasons)
        good = reasons == 0
        features = table32[good] if self._label is None else table32[good][:, self._features]
        categories = None
        if self._categorical:
            categories = text_table[good][:, [self._text.index(c) for c in self._categorical]]
        return Decoded(np.ascontiguousarray(features), labels[good], reasons, missing,
                       categories=categories,
                       tokens=None if tokens is None else tokens[good])

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
            return EMPTY, None, None, None
        if len(value) > self._max_bytes:
            return OVERSIZED, None, None, None
        try:
            record = json.loads(value.decode("utf-8"), parse_constant=_refuse_constant)
        except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
            return INVALID_JSON, None, None, None
        if not isinstance(record, dict):
            return INVALID_JSON, None, None, None
        leaves: dict[str, Any] = {}
        for column, path in zip(self._columns, self._paths, strict=True):
            node: Any = record
            for key in path:
                if not isinstance(node, dict) or key not in node:
                    return MISSING_FIELD, column, None, None
                node = node[key]
            leaves[column] = node
        if not all(type(leaves[column]) in NUMBER_TYPES for column in self._numeric):
            return NON_NUMERIC, None, None, None
        if not all(as_text(leaves[column]) or type(leaves[column]) is str
                   for column in self._categorical):
            return NON_CATEGORICAL, None, None, None
        try:
            numbers = tuple(float(leaves[column]) for column in self._numeric)
        except OverflowError:  # an integer beyond float64
            return NON_NUMERIC, None, None, None
        return 0, None, numbers, tuple(as_text(leaves[column]) for column in self._text)


def task_labels(task: Task, keys: Sequence[bytes], column: npt.NDArray[np.float32] | None,
                class_column: Texts | None, reasons: npt.NDArray[np.uint8]
                ) -> tuple[npt.NDArray[np.float32], Texts | None]:
    """Each record's label (float32 [n]) and, for multiclass, its text [n] (the labels then 0,
    mapped to classes later), from the label column (`column` for a number, `class_column` for
    a class) or else the message key; a bad binary or regression label marks its record's
    reason (`bad_key`, `non_numeric`). Shared by the formats that read records field by field."""
    n = len(reasons)
    if task == "multiclass":
        tokens = (class_column if class_column is not None
                  else texts((key.decode("utf-8", "replace").strip(WHITESPACE) for key in keys),
                             (n,)))
        return np.zeros(n, np.float32), tokens
    if column is not None:
        labels = column
        ok = (labels == 0.0) | (labels == 1.0) if task == "binary" else np.ones(n, bool)
    elif task == "binary":
        labels, ok = key_labels(keys)
    else:
        labels = number_keys(keys)
        ok = np.isfinite(labels)
    reasons[(reasons == 0) & ~ok] = BAD_KEY if task == "binary" else NON_NUMERIC
    return labels, None


def record_type_of(paths: list[list[str]], leaves: list[Any] | None = None
                   ) -> tuple[type, list[str]]:
    """The msgspec record type holding the columns at `paths` (each of the type in `leaves`,
    float by default), and each column's attribute path (for `attrgetter`, in column order).
    Attributes are named `c0, c1, ...` and renamed to the JSON keys, so any key (dots, spaces,
    unicode) works."""
    kinds = leaves or [float] * len(paths)
    tree: dict[str, Any] = {}  # a column is never also a path under another (`DataSpec`)
    for index, path in enumerate(paths):
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = index
    attributes = [""] * len(paths)

    def build(node: dict[str, Any], prefix: str) -> type:
        fields: list[tuple[str, Any]] = []
        for position, child in enumerate(node.values()):
            name = f"c{position}"
            if isinstance(child, dict):
                fields.append((name, build(child, f"{prefix}{name}.")))
            else:
                fields.append((name, kinds[child]))
                attributes[child] = prefix + name
        rename = {f"c{position}": key for position, key in enumerate(node)}
        return msgspec.defstruct("Record", fields, rename=rename, gc=False)

    return build(tree, ""), attributes


def key_labels(keys: Sequence[bytes]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Binary labels from message keys (float32 [n]) and which keys are labels (`LABEL_KEY`)."""
    joined = b"".join(keys)
    if len(joined) == len(keys) and all(map(len, keys)):  # one byte each: `0` or `1`
        digits = np.frombuffer(joined, np.uint8) - ord("0")
        return digits.astype(np.float32), digits <= 1
    ok = np.fromiter((LABEL_KEY_RE.fullmatch(key) is not None for key in keys), bool, len(keys))
    labels = np.fromiter((float(key) if good else 0.0 for key, good in zip(keys, ok, strict=True)),
                         np.float32, len(keys))
    return labels, ok


def number_keys(keys: Sequence[bytes]) -> npt.NDArray[np.float32]:
    """Regression labels from message keys (float32 [n]); NaN where a key is not a decimal
    number (`NUMBER_KEY`), infinity where it is beyond float32."""
    with np.errstate(over="ignore"):
        return np.fromiter((float(key) if NUMBER_KEY_RE.fullmatch(key) else np.nan
                            for key in keys), np.float64, len(keys)).astype(np.float32)


def _zero_object(paths: list[list[str]], text: set[str]) -> dict[str, Any]:
    """A JSON object with every numeric column at 0 and every text column '' (the placeholder
    row of a refused record)."""
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = "" if ".".join(path) in text else 0
    return root


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")
