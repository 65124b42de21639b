"""Decode CSV records with Python's `re` and numpy: the CSV decoder of a process without TensorFlow.

Serving pods score with LiteRT and should not load TensorFlow (3.5 s and
about 550 MB) to read CSV, so this decoder gives what the TensorFlow one
(`workload.data.csv_decode`) gives, record for record: the same checks in
the same order, with the same regular expressions (RE2 and `re` agree on
them), the same reasons, features and labels (a property test holds the two
to it). A clean batch (the common case) is parsed in one numpy conversion
of every field after a few checks of the whole batch's bytes; only a batch
with a bad record is checked record by record, and only the records that
fail the expression of a whole record are split to learn why. Categorical
columns (`data.categorical`: text without a comma or a double quote, kept
stripped of ASCII blanks as `tf.strings.strip` keeps them) are always
checked record by record, with the expression of a whole record.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from workload.data.csv_text import CSV_FIELD, FULL_REGEX_MAX_FIELDS, record_pattern
from workload.data.decoded import LABEL_KEY, REASON_CODES, WHITESPACE, Decoded, Texts, texts
from workload.spec import DataSpec

EMPTY, OVERSIZED, FIELD_COUNT, NON_NUMERIC, NON_CATEGORICAL, BAD_KEY = (
    REASON_CODES[name] for name in ("empty", "oversized", "field_count", "non_numeric",
                                    "non_categorical", "bad_key"))

BLANK = re.compile(f"[{WHITESPACE}]*".encode())
FIELD = re.compile(CSV_FIELD.encode())
KEY = re.compile(LABEL_KEY.encode())

NUMBER_BYTES = b"0123456789+-.eE,\t\n\f\r "
"""The bytes a clean batch holds: digits, signs, points, exponents, commas and the blanks
`CSV_FIELD` allows (no vertical tab, no `nan`, `inf` or `_`, which Python's float takes)."""


class NumpyCsvDecoder:
    """A `Decoder` of CSV records laid out as `data` says, without TensorFlow."""

    def __init__(self, data: DataSpec) -> None:
        columns = data.record_columns
        categorical = set(data.categorical_names)
        self._columns = len(columns)
        self._numbers = [name not in categorical for name in columns]
        """Per record column: a number (`True`), or a category's text."""
        self._record = (re.compile(record_pattern(self._numbers).encode())
                        if self._columns <= FULL_REGEX_MAX_FIELDS else None)
        self._max_bytes = data.max_record_bytes
        self._label = None if data.label == "key" else columns.index(data.label)
        self._features = [i for i in range(self._columns) if self._numbers[i] and i != self._label]
        self._categories = [i for i in range(self._columns) if not self._numbers[i]]

    def __call__(self, keys: Sequence[bytes], values: Sequence[bytes]) -> Decoded:
        table = None if self._categories else self._clean_table(values)
        if table is None:
            reasons = np.fromiter((self._reason(value) for value in values), np.uint8,
                                  len(values))
        else:
            reasons = np.zeros(len(values), np.uint8)
        if self._label is None:
            ok = {key: KEY.fullmatch(key) is not None for key in set(keys)}
            key_ok = np.fromiter((ok[key] for key in keys), bool, len(keys))
            reasons[(reasons == 0) & ~key_ok] = BAD_KEY
        passed = np.flatnonzero(reasons == 0)
        words: npt.NDArray[np.object_] | None = None
        if table is not None:
            table = table[passed]
        else:
            table, words = self._split([values[index] for index in passed.tolist()])
        with np.errstate(over="ignore"):
            table32 = table.astype(np.float32)
        finite = np.isfinite(table32).all(axis=1)
        if self._label is None:
            number = {key: float(key) for key in {keys[index] for index in passed.tolist()}}
            labels = np.fromiter((number[keys[index]] for index in passed.tolist()),
                                 np.float32, len(passed))
            label_ok = np.ones(len(passed), bool)
        else:
            labels = table32[:, self._label]
            # TensorFlow's kernels compare with subnormals as zero (denormals-are-zero).
            compared = np.where(np.abs(labels) < np.finfo(np.float32).tiny, 0.0, labels)
            label_ok = (compared == 0.0) | (compared == 1.0)
        late = np.where(finite, np.where(label_ok, 0, BAD_KEY), NON_NUMERIC).astype(np.uint8)
        reasons[passed] = late
        keep = late == 0
        features = np.ascontiguousarray(table32[keep][:, self._features])
        return Decoded(features, labels[keep], reasons,
                       categories=None if words is None else _category_texts(words[keep]))

    def _split(self, passed: list[bytes]
               ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.object_] | None]:
        """Records that passed the text checks, split at their commas: the numbers [n, columns]
        (a category's column 0) and, with categorical columns, their raw text [n, categories]."""
        rows = len(passed)
        if not rows:
            empty = np.zeros((0, len(self._categories)), object) if self._categories else None
            return np.zeros((0, self._columns)), empty
        fields = b",".join(passed).split(b",")
        if not self._categories:
            return np.array(fields).astype(np.float64).reshape(rows, self._columns), None
        flat = np.empty(len(fields), object)
        flat[:] = fields
        grid = flat.reshape(rows, self._columns)
        table = np.zeros((rows, self._columns))
        numbers = [i for i in range(self._columns) if self._numbers[i]]
        if numbers:
            table[:, numbers] = np.array(grid[:, numbers].ravel().tolist()).astype(
                np.float64).reshape(rows, len(numbers))
        return table, grid[:, self._categories]

    def _clean_table(self, values: Sequence[bytes]) -> npt.NDArray[np.float64] | None:
        """Every record parsed in one conversion, when the batch is clean: each within the size
        limit, with the right number of fields, of the characters numbers are made of, every
        field a number (Python's float, which numpy uses, then reads exactly what `CSV_FIELD`
        matches); `None` when any record is not, and the records are examined one by one."""
        if not values or any(len(value) > self._max_bytes for value in values):
            return None
        commas = self._columns - 1
        joined = b"".join(values)
        if joined.translate(None, NUMBER_BYTES) or any(
                value.count(b",") != commas for value in values):
            return None
        try:
            parsed = np.array(b",".join(values).split(b",")).astype(np.float64)
        except ValueError:
            return None
        table: npt.NDArray[np.float64] = parsed.reshape(len(values), self._columns)
        return table

    def _reason(self, value: bytes) -> int:
        """A record's reason from its text alone (0: a row of numbers and categories)."""
        if len(value) <= self._max_bytes and self._record is not None \
                and self._record.fullmatch(value) \
                and not (self._categories and BLANK.fullmatch(value)):
            return 0  # a row with a number is not blank; one of text only is checked
        if BLANK.fullmatch(value):
            return EMPTY
        if len(value) > self._max_bytes:
            return OVERSIZED
        parts = value.split(b",")
        if len(parts) != self._columns:
            return FIELD_COUNT
        if not all(FIELD.fullmatch(part) for part, number in zip(parts, self._numbers, strict=True)
                   if number):
            return NON_NUMERIC
        if any(b'"' in part for part, number in zip(parts, self._numbers, strict=True)
               if not number):
            return NON_CATEGORICAL
        return 0


def _category_texts(words: npt.NDArray[np.object_]) -> Texts:
    """Categories as `tf.strings.strip` and the TensorFlow decoder leave them: stripped of ASCII
    blanks, as text (invalid UTF-8 replaced)."""
    return texts((word.strip().decode("utf-8", "replace") for word in words.reshape(-1)),
                 words.shape)
