"""Decode CSV records with TensorFlow ops over the whole batch (no per-record Python).

`tf.io.decode_csv` raises on the first malformed row, so every record is
validated first (lengths, regular expressions, split counts) and only the
good ones are parsed. A batch whose records all pass one regular expression
per record (the common case) is parsed directly; only a batch with a bad
record takes the path that finds each record's reason. Both run as one
compiled function, built once per decoder.

Each column is a number, a category (`data.categorical`: text without
commas or double quotes, kept stripped of blanks) or, for a multiclass
label, a class name (the same text). Reasons are `REASON_CODES` (int32
inside the graph, 0 for a good record); the rules are the module docstring's
of `workload.data.decode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from workload.data.csv_text import CSV_FIELD, FULL_REGEX_MAX_FIELDS, record_pattern
from workload.data.decoded import (
    LABEL_KEY,
    NUMBER_KEY,
    REASON_CODES,
    WHITESPACE,
    Decoded,
    Task,
    Texts,
)
from workload.spec import DataSpec

NUMBER_KIND, CATEGORY_KIND, CLASS_KIND = 0, 1, 2
"""What a column holds: a number, a category, a multiclass label's class name."""

GOOD, EMPTY, OVERSIZED, FIELD_COUNT, NON_NUMERIC, NON_CATEGORICAL, BAD_KEY, UNKNOWN_CLASS = (
    0, *(REASON_CODES[name] for name in ("empty", "oversized", "field_count", "non_numeric",
                                         "non_categorical", "bad_key", "unknown_class")))


@dataclass(frozen=True)
class CsvLayout:
    """Where each part of a record is: column kinds and positions, the label, the task."""

    kinds: tuple[int, ...]
    """Per record column: `NUMBER_KIND`, `CATEGORY_KIND` or `CLASS_KIND`."""
    features: tuple[int, ...]
    """Record positions of the numeric features, in order."""
    categories: tuple[int, ...]
    """Record positions of the categorical features, in order."""
    label: int | None
    """Record position of the label column; `None`: the label is the message key."""
    task: Task
    max_record_bytes: int

    @classmethod
    def of(cls, data: DataSpec, task: Task) -> CsvLayout:
        """The layout of `data`'s records for `task`."""
        columns = data.record_columns
        categorical = set(data.categorical_names)
        label = None if data.label == "key" else columns.index(data.label)
        kinds = tuple(CATEGORY_KIND if name in categorical
                      else CLASS_KIND if position == label and task == "multiclass"
                      else NUMBER_KIND for position, name in enumerate(columns))
        return cls(kinds,
                   tuple(p for p, kind in enumerate(kinds) if kind == NUMBER_KIND and p != label),
                   tuple(p for p, kind in enumerate(kinds) if kind == CATEGORY_KIND),
                   label, task, data.max_record_bytes)


class CsvDecoder:
    """A `Decoder` of CSV records laid out as `data` says, labels read for `task`."""

    def __init__(self, data: DataSpec, task: Task = "binary") -> None:
        layout = CsvLayout.of(data, task)
        self._layout = layout
        self._decode = tf.function(
            lambda keys, values: decode_tensors(keys, values, layout),
            input_signature=[tf.TensorSpec([None], tf.string)] * 2, autograph=False)

    def __call__(self, keys: Sequence[bytes], values: Sequence[bytes]) -> Decoded:
        features, categories, labels, tokens, reasons = self._decode(
            tf.constant(keys, tf.string, [len(keys)]), tf.constant(values, tf.string, [len(values)]))
        return Decoded(features.numpy(), labels.numpy(), reasons.numpy().astype(np.uint8),
                       categories=_texts(categories) if self._layout.categories else None,
                       tokens=_texts(tokens) if self._layout.task == "multiclass" else None)


def _texts(tensor: tf.Tensor) -> Texts:
    """A string tensor as an object array of `str` (invalid UTF-8 replaced)."""
    raw = tensor.numpy()
    out = np.empty(raw.shape, dtype=object)
    out.reshape(-1)[:] = [value.decode("utf-8", "replace") for value in raw.reshape(-1)]
    return out


def decode_tensors(keys: tf.Tensor, values: tf.Tensor, layout: CsvLayout
                   ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Of a batch of CSV records (1-D string tensors of keys and values): features float32
    [n_good, n_numeric], categories string [n_good, n_categorical], labels float32 [n_good],
    label texts string [n_good] (multiclass; else blank) and int32 reason codes [n]."""
    if len(layout.kinds) > FULL_REGEX_MAX_FIELDS:
        return _decode_with_reasons(keys, values, layout, None)
    whole_ok = tf.strings.regex_full_match(values, _record_pattern(layout.kinds))
    clean = whole_ok & (tf.strings.length(values) <= layout.max_record_bytes)
    if len(layout.kinds) == 1:  # one text column: a blank record matches the pattern but is empty
        clean &= ~tf.strings.regex_full_match(values, f"[{WHITESPACE}]*")
    key_check = _key_check(keys, layout)
    if key_check is not None:
        clean &= key_check[0]
    return tf.cond(  # type: ignore[no-any-return]
        tf.reduce_all(clean),
        lambda: _decode_passed(keys, values, layout),
        lambda: _decode_with_reasons(keys, values, layout, whole_ok),
    )


def _key_check(keys: tf.Tensor, layout: CsvLayout) -> tuple[tf.Tensor, int] | None:
    """Which message keys are labels of the task, and the reason of those that are not
    (`None` when the key is not the label, or any text is: multiclass)."""
    if layout.label is not None or layout.task == "multiclass":
        return None
    if layout.task == "regression":
        return tf.strings.regex_full_match(keys, NUMBER_KEY), NON_NUMERIC
    return tf.strings.regex_full_match(keys, LABEL_KEY), BAD_KEY


def _decode_with_reasons(keys: tf.Tensor, values: tf.Tensor, layout: CsvLayout,
                         whole_ok: tf.Tensor | None
                         ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Find each record's reason, then decode the records that have none."""
    empty = tf.strings.regex_full_match(values, f"[{WHITESPACE}]*")
    oversized = tf.strings.length(values) > layout.max_record_bytes
    # Empty and oversized values are blanked so the checks below do no work on them.
    checked = tf.where(empty | oversized, "", values)
    reasons = _shape_reasons(checked, layout.kinds, whole_ok)
    key_check = _key_check(keys, layout)
    if key_check is not None:
        key_ok, why = key_check
        reasons = tf.where(tf.equal(reasons, GOOD) & ~key_ok, why, reasons)
    reasons = tf.where(oversized, OVERSIZED, reasons)
    reasons = tf.where(empty, EMPTY, reasons)

    passed = tf.equal(reasons, GOOD)
    features, categories, labels, tokens, late_reasons = _decode_passed(
        tf.boolean_mask(keys, passed), tf.boolean_mask(checked, passed), layout)
    reasons = tf.tensor_scatter_nd_update(reasons, tf.where(passed), late_reasons)
    return features, categories, labels, tokens, reasons


def _decode_passed(keys: tf.Tensor, values: tf.Tensor, layout: CsvLayout
                   ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Decode records that passed the text checks; refuse values beyond float32 and bad labels.

    Returns the kept features, categories, labels and label texts and, per given record,
    `GOOD` or its late reason.
    """
    defaults = [tf.constant([], tf.float32) if kind == NUMBER_KIND else tf.constant([""])
                for kind in layout.kinds]
    columns = tf.io.decode_csv(values, record_defaults=defaults)
    rows = tf.shape(values)[0]
    numbers = [columns[p] for p, kind in enumerate(layout.kinds) if kind == NUMBER_KIND]
    finite = (tf.reduce_all(tf.math.is_finite(tf.stack(numbers, axis=1)), axis=1) if numbers
              else tf.ones([rows], tf.bool))
    label_ok = tf.ones_like(finite)
    tokens = tf.fill([rows], "")
    labels = tf.zeros([rows], tf.float32)
    if layout.task == "multiclass":
        tokens = tf.strings.strip(keys if layout.label is None else columns[layout.label])
    elif layout.label is None:
        labels = tf.strings.to_number(keys, tf.float32)
        finite &= tf.math.is_finite(labels)
    else:
        labels = columns[layout.label]
        if layout.task == "binary":
            label_ok = tf.equal(labels, 0.0) | tf.equal(labels, 1.0)
    late_reasons = tf.where(finite, tf.where(label_ok, GOOD, BAD_KEY), NON_NUMERIC)
    keep = tf.equal(late_reasons, GOOD)
    features = _table([columns[p] for p in layout.features], rows, tf.float32)
    categories = _table([tf.strings.strip(columns[p]) for p in layout.categories], rows,
                        tf.string)
    return (tf.reshape(tf.boolean_mask(features, keep), [-1, len(layout.features)]),
            tf.reshape(tf.boolean_mask(categories, keep), [-1, len(layout.categories)]),
            tf.boolean_mask(labels, keep), tf.boolean_mask(tokens, keep), late_reasons)


def _table(columns: list[tf.Tensor], rows: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """The columns side by side [rows, len(columns)] (an empty table when there are none)."""
    if columns:
        return tf.stack(columns, axis=1)
    return tf.zeros([rows, 0], dtype) if dtype != tf.string else tf.fill([rows, 0], "")


def _record_pattern(kinds: tuple[int, ...]) -> str:
    """One regular expression for a whole CSV record of these column kinds."""
    return record_pattern([kind == NUMBER_KIND for kind in kinds])


def _shape_reasons(values: tf.Tensor, kinds: tuple[int, ...],
                   whole_ok: tf.Tensor | None) -> tf.Tensor:
    """`GOOD`, `FIELD_COUNT`, `NON_NUMERIC`, `NON_CATEGORICAL` or `UNKNOWN_CLASS` for each value."""
    if len(kinds) <= FULL_REGEX_MAX_FIELDS:
        if whole_ok is None:
            whole_ok = tf.strings.regex_full_match(values, _record_pattern(kinds))
        whole_ok &= tf.not_equal(values, "")
        # Only the records that failed the fast check are split to learn why.
        detail = _field_reasons(tf.where(whole_ok, "", values), kinds)
        return tf.where(whole_ok, GOOD, detail)
    return _field_reasons(values, kinds)


def _field_reasons(values: tf.Tensor, kinds: tuple[int, ...]) -> tf.Tensor:
    """Reasons from splitting each value at commas: count the fields, check each one as its
    column's kind wants."""
    parts = tf.strings.split(values, ",")
    counts = parts.row_lengths()
    flat = parts.flat_values
    position = tf.minimum(tf.ragged.range(counts).flat_values, len(kinds) - 1)
    kind = tf.gather(tf.constant(kinds, tf.int32), position)
    number_bad = ~tf.strings.regex_full_match(flat, CSV_FIELD)
    # A double quote, found byte by byte: a pattern's `.` stops at invalid UTF-8.
    text_bad = tf.strings.split(flat, '"').row_lengths() > 1
    rows = tf.shape(values, out_type=tf.int64)[0]

    def per_row(bad: tf.Tensor) -> tf.Tensor:
        return tf.math.unsorted_segment_sum(tf.cast(bad, tf.int32), parts.value_rowids(), rows)

    bad_numbers = per_row(tf.equal(kind, NUMBER_KIND) & number_bad)
    bad_categories = per_row(tf.equal(kind, CATEGORY_KIND) & text_bad)
    bad_classes = per_row(tf.equal(kind, CLASS_KIND) & text_bad)
    return tf.where(tf.not_equal(counts, len(kinds)), FIELD_COUNT,
                    tf.where(bad_numbers > 0, NON_NUMERIC,
                             tf.where(bad_categories > 0, NON_CATEGORICAL,
                                      tf.where(bad_classes > 0, UNKNOWN_CLASS, GOOD))))
