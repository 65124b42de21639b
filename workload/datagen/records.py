"""Rows as Kafka messages, in the layouts `DataSpec` describes, and malformed ones for tests.

CSV (the tutorial's layout): the value is the record's columns joined by
commas, the key is the label (`b"0"` or `b"1"`) when `label: key`. JSON: the
value is an object with one field per column of `DataSpec.columns`, a dotted
column (`features.pt`) written inside a nested object. Floats are written as
the shortest text that reads back as the same float32.
Values are formatted column by column with Arrow's compute kernels (no
Python call per number): `streamtrain produce` is as fast as its producer.

`corrupt` swaps a fraction of good messages for malformed ones, one reason
per message from the decoder's reasons for the layout
(`workload.data.decode.FORMAT_REASONS`), and returns how many of each it made.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workload.data.decode import FORMAT_REASONS
from workload.datagen.table import SusyData
from workload.spec import DataSpec

NON_NUMERIC = "n/a"
"""What a `non_numeric` corruption writes in place of a number."""

BAD_KEYS: tuple[bytes, ...] = (b"2", b"x", b"")
"""Keys a `bad_key` corruption cycles through when the label is the key."""

BAD_LABELS: tuple[int | float, ...] = (2, -1, 0.5)
"""Numbers a `bad_key` corruption cycles through when the label is a column."""

NOT_CATEGORICAL = {"not": "a category"}
"""What a `non_categorical` corruption writes in a JSON categorical field (CSV: a quoted text)."""

NOT_JSON: tuple[bytes, ...] = (b"{not json", b"[1, 2, 3]", b'{"unterminated": "')
"""Values an `invalid_json` corruption cycles through: not JSON, JSON but not an object."""


class Message(NamedTuple):
    """One Kafka record: its key (None for no key) and value."""

    key: bytes | None
    value: bytes


def label_key(label: int) -> bytes:
    """The message key carrying a label, as in the tutorial: `b"0"` or `b"1"`."""
    return b"1" if label else b"0"


def _check_width(data: SusyData, spec: DataSpec) -> None:
    names = spec.numeric_names
    if len(names) != data.features.shape[1]:
        field = "spec.data.columns" if spec.columns is not None else "spec.data.features"
        raise ValueError(
            f"{field}: describes {len(names)} numeric features but the data has "
            f"{data.features.shape[1]}")
    if len(spec.categorical_names) != len(data.categorical):
        raise ValueError(f"spec.data.categorical: names {len(spec.categorical_names)} columns, "
                         f"the data has {len(data.categorical)}")


def _text(values: list[str], quoted: bool) -> pa.Array:
    """Text values as a column (JSON strings when `quoted`)."""
    return pa.array([json.dumps(value) for value in values] if quoted else values, pa.string())


def _column_texts(data: SusyData, spec: DataSpec) -> list[pa.Array]:
    """Each record column as text, in `record_columns` order (the label, if a column, as
    `0`/`1`, a class name or a number; categorical columns as their text)."""
    features = iter(range(data.features.shape[1]))
    categorical = iter(range(len(data.categorical)))
    quoted = spec.format == "json"
    texts = []
    for name in spec.record_columns:
        if name == spec.label and data.classes is None and data.targets is None:
            texts.append(pc.cast(pa.array(data.labels.astype(np.int8)), pa.string()))
        elif name == spec.label:
            texts.append(_text(data.label_texts, quoted and data.classes is not None))
        elif name in spec.categorical_names:
            assert data.categories is not None
            texts.append(_text(data.categories[:, next(categorical)].tolist(), quoted))
        else:
            column = data.features[:, next(features)].astype(np.float32)
            texts.append(pc.cast(pa.array(column), pa.string()))
    return texts


def _values(data: SusyData, spec: DataSpec) -> list[bytes]:
    """Every row's message value: the columns joined as CSV or as a JSON object."""
    texts = _column_texts(data, spec)
    if spec.format == "csv":
        joined = pc.binary_join_element_wise(*texts, ",")
    else:
        joined = pc.binary_join_element_wise(*_json_pieces(spec.record_columns, texts), "")
    values: list[bytes] = pc.cast(joined, pa.binary()).to_pylist()
    return values


def _json_pieces(columns: list[str], texts: list[pa.Array]) -> list[pa.Array | str]:
    """A JSON object's text as literal pieces and column texts to join: one field per column,
    a dotted column inside nested objects (`a.b` -> `{"a": {"b": ...}}`)."""
    tree: dict[str, Any] = {}
    for name, text in zip(columns, texts, strict=True):
        *parents, leaf = name.split(".")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = text

    def render(node: dict[str, Any]) -> list[pa.Array | str]:
        pieces: list[pa.Array | str] = []
        for index, (key, child) in enumerate(node.items()):
            pieces.append(("{" if index == 0 else ", ") + f"{json.dumps(key)}: ")
            pieces += render(child) if isinstance(child, dict) else [child]
        return [*pieces, "}"]

    return render(tree)


def encode(data: SusyData, spec: DataSpec | None = None,
           schema_id: int | None = None) -> list[Message]:
    """Every row of `data` as a message laid out as `spec` says (the tutorial's CSV by default);
    Avro values carry `schema_id` (`workload.datagen.avro_records`)."""
    spec = spec or DataSpec()
    _check_width(data, spec)
    if spec.format == "avro":
        from workload.datagen.avro_records import avro_values

        if schema_id is None:
            raise ValueError("Avro values need the id of their schema in the registry")
        values = avro_values(data, spec, schema_id)
    else:
        values = _values(data, spec)
    if spec.label != "key":
        return [Message(None, value) for value in values]
    if data.classes is not None or data.targets is not None:
        return [Message(label.encode(), value)
                for label, value in zip(data.label_texts, values, strict=True)]
    keys = (b"0", b"1")
    labels = data.labels.tolist()
    return [Message(keys[label], value) for label, value in zip(labels, values, strict=True)]


# ---------------------------------------------------------------- malformed records


def applicable_reasons(spec: DataSpec) -> tuple[str, ...]:
    """The malformations `corrupt` makes in this layout: every reason its decoder gives a
    binary label (`non_categorical` only with categorical columns)."""
    return tuple(reason for reason in FORMAT_REASONS[spec.format]
                 if reason != "unknown_class" and (reason != "non_categorical"
                                                   or spec.categorical_names))


def _pad_number(field: bytes, width: int) -> bytes:
    """The same number, zero-padded after its sign to at least `width` bytes."""
    sign = field[:1] if field[:1] in (b"-", b"+") else b""
    digits = field[len(sign) :]
    return sign + digits.rjust(max(width - len(sign), len(digits)), b"0")


def _malform(message: Message, reason: str, spec: DataSpec, serial: int) -> Message:
    """`message` changed so that `reason`, and only it, makes it malformed."""
    key, value = message
    if reason == "empty":
        return Message(key, b"")
    if reason == "bad_key" and spec.label == "key":
        return Message(BAD_KEYS[serial % len(BAD_KEYS)], value)
    bad_label = BAD_LABELS[serial % len(BAD_LABELS)]
    if spec.format == "json":
        if reason == "invalid_json":
            return Message(key, NOT_JSON[serial % len(NOT_JSON)])
        record = json.loads(value)
        if reason == "bad_key":
            _set_path(record, spec.label, bad_label)
        elif reason == "missing_field":
            *parents, leaf = spec.record_columns[-1].split(".")
            _at_path(record, parents).pop(leaf)
        elif reason == "non_numeric":
            _set_path(record, spec.numeric_names[0], NON_NUMERIC)
        elif reason == "non_categorical":
            _set_path(record, spec.categorical_names[0], NOT_CATEGORICAL)
        else:  # oversized: whitespace is valid JSON, so only the size is wrong
            text = json.dumps(record)
            return Message(key, ("{" + " " * (spec.max_record_bytes + 1) + text[1:]).encode())
        return Message(key, json.dumps(record).encode())
    fields = value.split(b",")
    if reason == "bad_key":
        fields[spec.record_columns.index(spec.label)] = str(bad_label).encode()
    elif reason == "field_count":
        fields = fields[:-1] if len(fields) > 1 else [*fields, b"0"]
    elif reason == "non_numeric":
        fields[spec.record_columns.index(spec.numeric_names[0])] = NON_NUMERIC.encode()
    elif reason == "non_categorical":
        fields[spec.record_columns.index(spec.categorical_names[0])] = b'"quoted"'
    else:  # oversized: the first number zero-padded, so only the size is wrong
        first = spec.record_columns.index(spec.numeric_names[0])
        room = spec.max_record_bytes + 1 - (len(value) - len(fields[first]))
        fields[first] = _pad_number(fields[first], room)
    return Message(key, b",".join(fields))


def _at_path(record: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The object `keys` leads to inside `record`."""
    for key in keys:
        record = record[key]
    return record


def _set_path(record: dict[str, Any], column: str, value: object) -> None:
    """Set the field a (possibly dotted) column names."""
    *parents, leaf = column.split(".")
    _at_path(record, parents)[leaf] = value


def corrupt(
    messages: Sequence[Message], fraction: float, seed: int, spec: DataSpec | None = None
) -> tuple[list[Message], dict[str, int]]:
    """A copy of `messages` with `fraction` of them malformed, and the count made per reason.

    The malformed messages are picked at random (seeded) and cycle through
    `applicable_reasons(spec)`, so every reason appears once enough messages are
    corrupted; each has exactly one thing wrong. The counts name every
    reason, zeros included.
    """
    spec = spec or DataSpec()
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    reasons = applicable_reasons(spec)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(messages), size=round(fraction * len(messages)), replace=False)
    result = list(messages)
    counts = dict.fromkeys(reasons, 0)
    for serial, index in enumerate(chosen.tolist()):
        reason = reasons[serial % len(reasons)]
        result[index] = _malform(result[index], reason, spec, serial)
        counts[reason] += 1
    return result, counts
