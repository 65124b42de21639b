"""Decode CSV records with TensorFlow ops over the whole batch (no per-record Python).

`tf.io.decode_csv` raises on the first malformed row, so every record is
validated first (lengths, regular expressions, split counts) and only the
good ones are parsed. A batch whose records all pass one regular expression
per record (the common case) is parsed directly; only a batch with a bad
record takes the path that finds each record's reason. Both run as one
compiled function, built once per decoder.

Reasons are `REASON_CODES` (int32 inside the graph, 0 for a good record);
the rules are the module docstring's of `workload.data.decode`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from workload.data.csv_text import CSV_FIELD, FULL_REGEX_MAX_FIELDS, record_pattern
from workload.data.decode import LABEL_KEY, REASON_CODES, WHITESPACE, Decoded
from workload.spec import DataSpec

GOOD, EMPTY, OVERSIZED, FIELD_COUNT, NON_NUMERIC, BAD_KEY = (
    0, *(REASON_CODES[name] for name in ("empty", "oversized", "field_count", "non_numeric",
                                         "bad_key")))


class CsvDecoder:
    """A `Decoder` of CSV records laid out as `data` says."""

    def __init__(self, data: DataSpec) -> None:
        self._data = data
        self._decode = tf.function(
            lambda keys, values: decode_tensors(keys, values, data),
            input_signature=[tf.TensorSpec([None], tf.string)] * 2, autograph=False)

    def __call__(self, keys: Sequence[bytes], values: Sequence[bytes]) -> Decoded:
        features, labels, reasons = self._decode(tf.constant(keys, tf.string, [len(keys)]),
                                                 tf.constant(values, tf.string, [len(values)]))
        return Decoded(features.numpy(), labels.numpy(), reasons.numpy().astype(np.uint8))


def decode_tensors(keys: tf.Tensor, values: tf.Tensor, data: DataSpec
                   ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Features float32 [n_good, n_features], labels float32 [n_good] and int32 reason codes [n]
    of a batch of CSV records (1-D string tensors of keys and values)."""
    n_fields = len(data.record_columns)
    if n_fields > FULL_REGEX_MAX_FIELDS:
        return _decode_with_reasons(keys, values, data, None)
    whole_ok = tf.strings.regex_full_match(values, record_pattern(n_fields))
    clean = whole_ok & (tf.strings.length(values) <= data.max_record_bytes)
    if data.label == "key":
        clean &= tf.strings.regex_full_match(keys, LABEL_KEY)
    return tf.cond(  # type: ignore[no-any-return]
        tf.reduce_all(clean),
        lambda: _decode_passed(keys, values, data),
        lambda: _decode_with_reasons(keys, values, data, whole_ok),
    )


def _decode_with_reasons(keys: tf.Tensor, values: tf.Tensor, data: DataSpec,
                         whole_ok: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Find each record's reason, then decode the records that have none."""
    empty = tf.strings.regex_full_match(values, f"[{WHITESPACE}]*")
    oversized = tf.strings.length(values) > data.max_record_bytes
    # Empty and oversized values are blanked so the checks below do no work on them.
    checked = tf.where(empty | oversized, "", values)
    reasons = _shape_reasons(checked, len(data.record_columns), whole_ok)
    if data.label == "key":
        key_ok = tf.strings.regex_full_match(keys, LABEL_KEY)
        reasons = tf.where(tf.equal(reasons, GOOD) & ~key_ok, BAD_KEY, reasons)
    reasons = tf.where(oversized, OVERSIZED, reasons)
    reasons = tf.where(empty, EMPTY, reasons)

    passed = tf.equal(reasons, GOOD)
    features, labels, late_reasons = _decode_passed(
        tf.boolean_mask(keys, passed), tf.boolean_mask(checked, passed), data)
    reasons = tf.tensor_scatter_nd_update(reasons, tf.where(passed), late_reasons)
    return features, labels, reasons


def _decode_passed(keys: tf.Tensor, values: tf.Tensor, data: DataSpec
                   ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Decode records that passed the text checks; refuse values beyond float32 and bad labels.

    Returns the kept features and labels and, per given record, `GOOD` or its late reason.
    """
    record_columns = data.record_columns
    n_fields = len(record_columns)
    columns = tf.io.decode_csv(values, record_defaults=[tf.constant([], tf.float32)] * n_fields)
    table = tf.reshape(tf.stack(columns, axis=1), [-1, n_fields])
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
    late_reasons = tf.where(finite, tf.where(label_ok, GOOD, BAD_KEY), NON_NUMERIC)
    keep = tf.equal(late_reasons, GOOD)
    n_features = len(data.feature_names)
    features = tf.reshape(tf.boolean_mask(feature_table, keep), [-1, n_features])
    return features, tf.boolean_mask(labels, keep), late_reasons


def _shape_reasons(values: tf.Tensor, n_fields: int, whole_ok: tf.Tensor | None) -> tf.Tensor:
    """`GOOD`, `FIELD_COUNT` or `NON_NUMERIC` for each value."""
    if n_fields <= FULL_REGEX_MAX_FIELDS:
        if whole_ok is None:
            whole_ok = tf.strings.regex_full_match(values, record_pattern(n_fields))
        whole_ok &= tf.not_equal(values, "")
        # Only the records that failed the fast check are split to learn why.
        detail = _field_reasons(tf.where(whole_ok, "", values), n_fields)
        return tf.where(whole_ok, GOOD, detail)
    return _field_reasons(values, n_fields)


def _field_reasons(values: tf.Tensor, n_fields: int) -> tf.Tensor:
    """Reasons from splitting each value at commas: count the fields, check each one."""
    parts = tf.strings.split(values, ",")
    counts = parts.row_lengths()
    field_bad = tf.cast(~tf.strings.regex_full_match(parts.flat_values, CSV_FIELD), tf.int32)
    bad_per_row = tf.math.unsorted_segment_sum(
        field_bad, parts.value_rowids(), tf.shape(values, out_type=tf.int64)[0]
    )
    return tf.where(tf.not_equal(counts, n_fields), FIELD_COUNT,
                    tf.where(bad_per_row > 0, NON_NUMERIC, GOOD))

