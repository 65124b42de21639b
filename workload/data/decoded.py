"""What a decoder returns, the reasons a record is set aside, and how labels are read per task.

Every format's decoder (`workload.data.decode` keeps the registry) turns a
batch of Kafka records into a `Decoded`: the good records' numeric features,
categorical values and labels, and every record's verdict. This module holds
what they share and imports only numpy, so a decoder imports it, never the
registry that imports the decoders.

Labels by task (`LabelRule`):
- `binary`: `0` or `1` (also `0.0`, `1.0`); anything else is `bad_key`;
- `regression`: a finite number (float32); anything else is `non_numeric`;
- `multiclass`: a class name or an integer, read as text (`3` and `"3"` are the
  same class); a label that is not one of the known classes, or an empty one,
  is `unknown_class`. While the classes are being learned (a training range
  read before they are known) every non-empty label is kept as its text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

Task = Literal["binary", "multiclass", "regression"]
"""What a label is (the spec's `model.task`)."""

FORMAT_REASONS: dict[str, tuple[str, ...]] = {
    "csv": ("empty", "oversized", "field_count", "non_numeric", "non_categorical", "bad_key",
            "unknown_class"),
    "json": ("empty", "oversized", "invalid_json", "missing_field", "non_numeric",
             "non_categorical", "bad_key", "unknown_class"),
    "avro": ("empty", "oversized", "invalid_avro", "unknown_schema", "registry_unreachable",
             "missing_field", "non_numeric", "non_categorical", "bad_key", "unknown_class"),
}
"""The reasons each format's decoder gives, in the order they are checked."""

BAD_REASONS: tuple[str, ...] = tuple(dict.fromkeys(
    reason for reasons in FORMAT_REASONS.values() for reason in reasons))
"""Every reason a record can be set aside, as counted in results, status and dead-letter headers."""

REASON_CODES: dict[str, int] = {reason: code for code, reason in enumerate(BAD_REASONS, 1)}
"""A reason's code in `Decoded.reasons` (0: a good record)."""

WHITESPACE = " \t\n\r"
"""JSON's whitespace (RFC 8259); a value of nothing else is `empty` in every format."""

NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
"""A decimal number as the CSV decoder parses it; `nan`, `inf` and hex are not numbers here."""

LABEL_KEY = rf"[{WHITESPACE}]*[01](?:\.0*)?[{WHITESPACE}]*"
"""A message key that is a binary label: `0` or `1` (also `0.0`, `1.0`), possibly padded; the
same pattern in RE2 (TensorFlow) and Python's `re`."""

NUMBER_KEY = rf"[{WHITESPACE}]*{NUMBER}[{WHITESPACE}]*"
"""A message key that is a regression label: a decimal number, possibly padded."""

Floats = npt.NDArray[np.float32]
Codes = npt.NDArray[np.uint8]
Texts = npt.NDArray[np.object_]
"""An object array of `str`."""


def texts(values: Iterable[str], shape: tuple[int, ...]) -> Texts:
    """An object array of `shape` holding `values` (row-major)."""
    flat = np.empty(int(np.prod(shape)), dtype=object)
    flat[:] = list(values)
    return flat.reshape(shape)


def no_texts(rows: int, width: int = 0) -> Texts:
    """An empty-text object array [rows, width] (width 0: no categorical column)."""
    return texts(("" for _ in range(rows * width)), (rows, width))


@dataclass(frozen=True)
class LabelRule:
    """How labels are read: the task, and for multiclass the classes known so far."""

    task: Task = "binary"
    classes: tuple[str, ...] | None = None
    """Multiclass: the classes in output order; `None` while they are learned (every
    non-empty label is kept as text, its index left at 0)."""

    def key(self) -> str:
        """What makes two rules decode alike (a decoder cache key)."""
        return f"{self.task}:{'|'.join(self.classes) if self.classes is not None else '*'}"


class BadRecord(NamedTuple):
    """A record set aside: as read, with why (and, for `missing_field`, the first missing column)."""

    key: bytes
    value: bytes
    reason: str
    field: str | None = None


@dataclass(frozen=True)
class Decoded:
    """One decoded batch: the good records' features and labels, and each record's verdict."""

    features: Floats
    """float32 [n_good, n_numeric], in `DataSpec.numeric_names` order."""
    labels: Floats
    """float32 [n_good]: binary 0 or 1; regression the value; multiclass the class index."""
    reasons: Codes
    """uint8 [n]: 0 for a good record, else its reason's code (`REASON_CODES`)."""
    missing: dict[int, str] = field(default_factory=dict)
    """For each `missing_field` record (by index in the batch): the first missing column."""
    categories: Texts | None = None
    """str [n_good, n_categorical], in `DataSpec.categorical_names` order (`None`: none)."""
    tokens: Texts | None = None
    """Multiclass: each good record's label as text [n_good]."""

    @property
    def good(self) -> npt.NDArray[np.bool_]:
        """bool [n]: which records were decoded."""
        good: npt.NDArray[np.bool_] = self.reasons == 0
        return good

    @property
    def category_table(self) -> Texts:
        """`categories`, or an empty [n_good, 0] table."""
        return self.categories if self.categories is not None else no_texts(len(self.labels))

    def counts(self) -> dict[str, int]:
        """How many records were set aside per reason (reasons with no record are left out)."""
        found = np.bincount(self.reasons, minlength=len(BAD_REASONS) + 1)
        return {reason: int(found[code]) for reason, code in REASON_CODES.items() if found[code]}

    def bad_records(self, keys: Sequence[bytes], values: Sequence[bytes]) -> Iterator[BadRecord]:
        """The records set aside, given the batch's keys and values."""
        for index in np.flatnonzero(self.reasons).tolist():
            yield BadRecord(bytes(keys[index]), bytes(values[index]),
                            BAD_REASONS[self.reasons[index] - 1], self.missing.get(index))

    def with_classes(self, classes: tuple[str, ...] | None) -> Decoded:
        """Multiclass: labels as class indices; a record whose label is not one of `classes`
        (or is empty) set aside as `unknown_class`. With `classes` `None` (being learned) only
        empty labels are set aside."""
        if self.tokens is None:
            return self
        tokens = self.tokens
        if classes is None:
            known = np.fromiter((bool(token) for token in tokens), bool, len(tokens))
            labels = np.zeros(len(tokens), np.float32)
        else:
            index = {name: position for position, name in enumerate(classes)}
            found = np.fromiter((index.get(token, -1) for token in tokens), np.int64,
                                len(tokens))
            known, labels = found >= 0, found.astype(np.float32)
        if known.all():
            return replace(self, labels=labels)
        reasons = self.reasons.copy()
        reasons[np.flatnonzero(reasons == 0)[~known]] = REASON_CODES["unknown_class"]
        return replace(self, features=self.features[known], labels=labels[known],
                       reasons=reasons, tokens=tokens[known],
                       categories=None if self.categories is None else self.categories[known])


def class_order(names: Iterable[str]) -> tuple[str, ...]:
    """Classes in output order: numeric when every name is an integer, else text order."""
    unique = set(names)
    if all(_is_integer(name) for name in unique):
        return tuple(sorted(unique, key=lambda name: (int(name), name)))
    return tuple(sorted(unique))


def _is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def sum_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    """Add `counts` (per reason) into `total`."""
    for reason, count in counts.items():
        total[reason] = total.get(reason, 0) + count
