"""Decode a batch of raw Kafka records into features and labels, setting malformed ones aside.

Everything here is vectorised TensorFlow over the whole batch (no per-record
Python), so it runs inside a `tf.data` pipeline after batching. One bad
record must never fail the batch: `tf.io.decode_csv` raises on the first
malformed row, so every record is validated first (lengths, regular
expressions, split counts) and only the good ones are decoded.

Layouts (from `DataSpec`):
- CSV with the label in the message key (TensorFlow's Kafka tutorial): key
  `0`/`1`, value `x1,...,xN`;
- CSV with a label column (`columns` names every field, `label` one of them);
- flat JSON objects whose fields are named by `columns` (the label is the key
  or one of the fields). Nested objects or arrays are not supported.

Reasons a record is set aside, checked in this order (the first one wins):
- `empty`: the value is empty or only whitespace;
- `oversized`: the value is longer than `data.max_record_bytes`;
- `field_count`: a CSV value without exactly the expected number of fields,
  or a JSON value that is not a flat object or lacks one of the columns;
- `non_numeric`: a field that is not a decimal number. The text `nan`,
  `inf` and numbers beyond float32's range are refused too: one NaN or
  infinity in a batch turns the model's weights into NaN;
- `bad_key`: the label (message key or label column) is not `0` or `1`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import tensorflow as tf

from workload.spec import DataSpec

BAD_REASONS = ("field_count", "non_numeric", "empty", "oversized", "bad_key")
"""Every reason a record can be set aside, as counted in results and dead-letter headers."""

NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
"""A decimal number as `decode_csv` parses it; `nan`, `inf` and hex are not numbers here."""

CSV_FIELD = rf"\s*{NUMBER}\s*"
"""One CSV field: a number, optionally padded with blanks."""

LABEL_KEY = r"\s*[01](?:\.0*)?\s*"
"""A message key that is a label: `0` or `1` (also `0.0`, `1.0`)."""

JSON_STRING = r'"(?:[^"\\]|\\.)*"'
JSON_SCALAR = rf"(?:{JSON_STRING}|{NUMBER}|true|false|null)"
JSON_PAIR = rf"\s*{JSON_STRING}\s*:\s*{JSON_SCALAR}\s*"
JSON_FLAT_OBJECT = rf"\s*\{{(?:{JSON_PAIR}(?:,{JSON_PAIR})*)?\}}\s*"
"""A JSON object whose values are all scalars (strings, numbers, booleans, null)."""

FULL_REGEX_MAX_FIELDS = 256
"""Up to this many CSV fields one regular expression checks a whole record (fast path);
wider records are split and checked field by field (RE2 limits repetition counts)."""


@dataclass(frozen=True)
class DecodedBatch:
    """One decoded batch: the good records' features and labels, and each record's verdict."""

    features: tf.Tensor
    """float32 [n_good, n_features], in `DataSpec.feature_names` order."""
    labels: tf.Tensor
    """float32 [n_good], 0 or 1."""
    reasons: tf.Tensor
    """string [n]: `""` for a good record, else one of `BAD_REASONS`."""
    good: tf.Tensor
    """bool [n]: which records were decoded."""


def decode_batch(keys: tf.Tensor, values: tf.Tensor, data: DataSpec) -> DecodedBatch:
    """Decode a batch of records (1-D string tensors of keys and values); never raises."""
    features, labels, reasons = decode_batch_tensors(keys, values, data)
    return DecodedBatch(features, labels, reasons, tf.equal(reasons, ""))


def decode_batch_tensors(
    keys: tf.Tensor, values: tf.Tensor, data: DataSpec
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`decode_batch` as a plain tuple (features, labels, reasons), for `tf.data.Dataset.map`.

    A CSV batch whose records all pass one regular expression per record (the
    common case) is decoded directly; only a batch with a bad record takes the
    path that finds each record's reason.
    """
    keys = tf.reshape(tf.convert_to_tensor(keys, tf.string), [-1])
    values = tf.reshape(tf.convert_to_tensor(values, tf.string), [-1])
    n_fields = len(data.record_columns)
    if data.format != "csv" or n_fields > FULL_REGEX_MAX_FIELDS:
        return _decode_with_reasons(keys, values, data, None)
    whole_ok = tf.strings.regex_full_match(values, _csv_record_pattern(n_fields))
    clean = whole_ok & (tf.strings.length(values) <= data.max_record_bytes)
    if data.label == "key":
        clean &= tf.strings.regex_full_match(keys, LABEL_KEY)
    parse = _csv_parser(n_fields)
    return tf.cond(  # type: ignore[no-any-return]
        tf.reduce_all(clean),
        lambda: _decode_passed(keys, values, tf.ones_like(clean), data, parse),
        lambda: _decode_with_reasons(keys, values, data, whole_ok),
    )


def _decode_with_reasons(
    keys: tf.Tensor, values: tf.Tensor, data: DataSpec, whole_ok: tf.Tensor | None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Find each record's reason, then decode the records that have none."""
    lengths = tf.strings.length(values)
    empty = tf.strings.regex_full_match(values, r"\s*")
    oversized = lengths > data.max_record_bytes
    # Empty and oversized values are blanked so the checks below do no work on them.
    checked = tf.where(empty | oversized, "", values)
    record_columns = data.record_columns
    if data.format == "csv":
        shape_reasons = _csv_reasons(checked, len(record_columns), whole_ok)
        parse = _csv_parser(len(record_columns))
    else:
        shape_reasons, fields = _json_reasons_and_fields(checked, record_columns)
        parse = _json_parser(fields)
    reasons = shape_reasons
    if data.label == "key":
        key_ok = tf.strings.regex_full_match(keys, LABEL_KEY)
        reasons = tf.where(tf.equal(reasons, "") & ~key_ok, "bad_key", reasons)
    reasons = tf.where(oversized, "oversized", reasons)
    reasons = tf.where(empty, "empty", reasons)

    passed = tf.equal(reasons, "")
    features, labels, late_reasons = _decode_passed(
        tf.boolean_mask(keys, passed), tf.boolean_mask(checked, passed), passed, data, parse)
    reasons = tf.tensor_scatter_nd_update(reasons, tf.where(passed), late_reasons)
    return features, labels, reasons


def _decode_passed(
    keys: tf.Tensor, values: tf.Tensor, passed: tf.Tensor, data: DataSpec,
    parse: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Decode records that passed the text checks; refuse values beyond float32 and bad labels.

    Returns the kept features and labels and, per given record, `""` or its late reason.
    """
    record_columns = data.record_columns
    table = parse(values, passed)
    finite = tf.reduce_all(tf.math.is_finite(table), axis=1)
    if data.label == "key":
        labels = tf.strings.to_number(keys, tf.float32)
        label_ok = tf.ones_like(finite)
        feature_table = table
    else:
        label_column = record_columns.index(data.label)
        labels = table[:, label_column]
        label_ok = tf.equal(labels, 0.0) | tf.equal(labels, 1.0)
        feature_index = [i for i, name in enumerate(record_columns) if name != data.label]
        feature_table = tf.gather(table, feature_index, axis=1)
    late_reasons = tf.where(finite, tf.where(label_ok, "", "bad_key"), "non_numeric")
    keep = tf.equal(late_reasons, "")
    n_features = len(data.feature_names)
    features = tf.reshape(tf.boolean_mask(feature_table, keep), [-1, n_features])
    return features, tf.boolean_mask(labels, keep), late_reasons


def count_reasons(reasons: tf.Tensor | npt.NDArray[np.bytes_]) -> dict[str, int]:
    """How many records were set aside per reason (reasons with no record are left out)."""
    array = reasons.numpy() if isinstance(reasons, tf.Tensor) else np.asarray(reasons)
    names, counts = np.unique(array, return_counts=True)
    found: dict[str, int] = {}
    for name, count in zip(names, counts, strict=True):
        text = name.decode() if isinstance(name, bytes) else str(name)
        if text:
            found[text] = int(count)
    return found


def _csv_record_pattern(n_fields: int) -> str:
    """One regular expression for a whole CSV record of `n_fields` numbers."""
    return CSV_FIELD + (f"(?:,{CSV_FIELD}){{{n_fields - 1}}}" if n_fields > 1 else "")


def _csv_reasons(values: tf.Tensor, n_fields: int, whole_ok: tf.Tensor | None) -> tf.Tensor:
    """`""`, `field_count` or `non_numeric` for each CSV value."""
    if n_fields <= FULL_REGEX_MAX_FIELDS:
        if whole_ok is None:
            whole_ok = tf.strings.regex_full_match(values, _csv_record_pattern(n_fields))
        whole_ok &= tf.not_equal(values, "")
        # Only the records that failed the fast check are split to learn why.
        detail = _csv_field_reasons(tf.where(whole_ok, "", values), n_fields)
        return tf.where(whole_ok, "", detail)
    return _csv_field_reasons(values, n_fields)


def _csv_field_reasons(values: tf.Tensor, n_fields: int) -> tf.Tensor:
    """Reasons from splitting each value at commas: count the fields, check each one."""
    parts = tf.strings.split(values, ",")
    counts = parts.row_lengths()
    field_bad = tf.cast(~tf.strings.regex_full_match(parts.flat_values, CSV_FIELD), tf.int32)
    bad_per_row = tf.math.unsorted_segment_sum(
        field_bad, parts.value_rowids(), tf.shape(values, out_type=tf.int64)[0]
    )
    return tf.where(
        tf.not_equal(counts, n_fields),
        "field_count",
        tf.where(bad_per_row > 0, "non_numeric", ""),
    )


def _csv_parser(n_fields: int) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Decode validated CSV values into float32 [rows, n_fields] with one `decode_csv`."""
    defaults = [tf.constant([], tf.float32)] * n_fields

    def parse(good_values: tf.Tensor, _passed: tf.Tensor) -> tf.Tensor:
        columns = tf.io.decode_csv(good_values, record_defaults=defaults)
        return tf.reshape(tf.stack(columns, axis=1), [-1, n_fields])

    return parse


def _json_reasons_and_fields(
    values: tf.Tensor, columns: list[str]
) -> tuple[tf.Tensor, tf.Tensor]:
    """Reasons for each JSON value, and each column's raw text: string [n, len(columns)]."""
    is_object = tf.strings.regex_full_match(values, JSON_FLAT_OBJECT)
    present = []
    numeric = []
    texts = []
    for column in columns:
        name = rf'"\Q{column}\E"'
        present.append(tf.strings.regex_full_match(values, rf"(?s).*[{{,]\s*{name}\s*:.*"))
        text = tf.strings.regex_replace(
            values, rf"(?s)^.*[{{,]\s*{name}\s*:\s*([^,}}]*?)\s*[,}}].*$", r"\1"
        )
        numeric.append(tf.strings.regex_full_match(text, NUMBER))
        texts.append(text)
    all_present = tf.reduce_all(tf.stack(present, axis=1), axis=1)
    all_numeric = tf.reduce_all(tf.stack(numeric, axis=1), axis=1)
    reasons = tf.where(
        is_object & all_present, tf.where(all_numeric, "", "non_numeric"), "field_count"
    )
    return reasons, tf.stack(texts, axis=1)


def _json_parser(fields: tf.Tensor) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Turn the validated records' column texts into float32 [rows, columns]."""

    def parse(_good_values: tf.Tensor, passed: tf.Tensor) -> tf.Tensor:
        return tf.strings.to_number(tf.boolean_mask(fields, passed), tf.float32)

    return parse
