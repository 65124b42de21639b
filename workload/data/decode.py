"""Decode a batch of raw Kafka records into features and labels, setting malformed ones aside.

A decoder (`make_decoder(data)`, made once per layout) takes a batch as the
Kafka readers hand it over (lists of key and value bytes) and returns numpy
arrays: the good records' features and labels, and every record's verdict.
One bad record never fails the batch.

Layouts (from `DataSpec`):
- CSV with the label in the message key (TensorFlow's Kafka tutorial): key
  `0`/`1`, value `x1,...,xN` (`workload.data.csv_decode`);
- CSV with a label column (`columns` names every field, `label` one of them);
- JSON objects whose fields `columns` names, a dotted name (`features.pt`)
  being a path into nested objects; the label is the key or one of the
  fields (`workload.data.json_decode`).
- Avro in the Confluent wire format, schemas from a registry, fields named
  as for JSON (`workload.data.avro_decode`, which lists its own reasons:
  `invalid_avro`, `unknown_schema`, `registry_unreachable`).

Reasons a record is set aside, checked in this order (the first one wins):
- `empty`: the value is empty or only whitespace;
- `oversized`: the value is longer than `data.max_record_bytes`;
- `field_count` (CSV): not exactly the expected number of fields;
- `invalid_json` (JSON): not JSON (RFC 8259: `NaN` is not JSON either, nor
  invalid UTF-8), or JSON that is not an object;
- `missing_field` (JSON): a column is absent (the first one is named in the
  dead-letter headers);
- `non_numeric`: a field that is not a number (a JSON string, boolean, null,
  object or array; in CSV anything but a decimal number). `nan`, `inf` and
  numbers beyond float32's range are refused too: one NaN or infinity in a
  batch turns the model's weights into NaN;
- `bad_key`: the label (message key or label column) is not `0` or `1`.

This module holds what every format shares and imports only numpy; a
format's parser (msgspec, TensorFlow) loads when its first decoder is made.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from workload.spec import DataSpec

FORMAT_REASONS: dict[str, tuple[str, ...]] = {
    "csv": ("empty", "oversized", "field_count", "non_numeric", "bad_key"),
    "json": ("empty", "oversized", "invalid_json", "missing_field", "non_numeric", "bad_key"),
    "avro": ("empty", "oversized", "invalid_avro", "unknown_schema", "registry_unreachable",
             "missing_field", "non_numeric", "bad_key"),
}
"""The reasons each format's decoder gives, in the order they are checked."""

BAD_REASONS: tuple[str, ...] = tuple(dict.fromkeys(
    reason for reasons in FORMAT_REASONS.values() for reason in reasons))
"""Every reason a record can be set aside, as counted in results, status and dead-letter headers."""

REASON_CODES: dict[str, int] = {reason: code for code, reason in enumerate(BAD_REASONS, 1)}
"""A reason's code in `Decoded.reasons` (0: a good record)."""

WHITESPACE = " \t\n\r"
"""JSON's whitespace (RFC 8259); a value of nothing else is `empty` in every format."""

LABEL_KEY = rf"[{WHITESPACE}]*[01](?:\.0*)?[{WHITESPACE}]*"
"""A message key that is a label: `0` or `1` (also `0.0`, `1.0`), possibly padded; the same
pattern in RE2 (TensorFlow) and Python's `re`."""

Floats = npt.NDArray[np.float32]
Codes = npt.NDArray[np.uint8]


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
    """float32 [n_good, n_features], in `DataSpec.feature_names` order."""
    labels: Floats
    """float32 [n_good], 0 or 1."""
    reasons: Codes
    """uint8 [n]: 0 for a good record, else its reason's code (`REASON_CODES`)."""
    missing: dict[int, str] = field(default_factory=dict)
    """For each `missing_field` record (by index in the batch): the first missing column."""

    @property
    def good(self) -> npt.NDArray[np.bool_]:
        """bool [n]: which records were decoded."""
        good: npt.NDArray[np.bool_] = self.reasons == 0
        return good

    def counts(self) -> dict[str, int]:
        """How many records were set aside per reason (reasons with no record are left out)."""
        found = np.bincount(self.reasons, minlength=len(BAD_REASONS) + 1)
        return {reason: int(found[code]) for reason, code in REASON_CODES.items() if found[code]}

    def bad_records(self, keys: Sequence[bytes], values: Sequence[bytes]) -> Iterator[BadRecord]:
        """The records set aside, given the batch's keys and values."""
        for index in np.flatnonzero(self.reasons).tolist():
            yield BadRecord(bytes(keys[index]), bytes(values[index]),
                            BAD_REASONS[self.reasons[index] - 1], self.missing.get(index))


Decoder = Callable[[Sequence[bytes], Sequence[bytes]], Decoded]
"""Decodes a batch (keys, values: one bytes object per record); never raises."""


_DECODERS: dict[str, Decoder] = {}
"""Decoders made so far, by layout: a CSV decoder's compiled function is traced once per process
(about a second), not once per read of a topic."""
atexit.register(_DECODERS.clear)  # dropped while TensorFlow is still whole, not at teardown


def for_topic(data: DataSpec, topic: str | None) -> DataSpec:
    """`data` as read from `topic`: an Avro layout names its subject (`<topic>-value` unless
    `schemaRegistry.subject` says), so that the layout alone makes its decoder."""
    registry = data.schema_registry
    if registry is None or registry.subject is not None or topic is None:
        return data
    return data.model_copy(update={"schema_registry": registry.model_copy(
        update={"subject": f"{topic}-value"})})


def _layout_key(data: DataSpec) -> str:
    return data.model_dump_json(include={"format", "features", "columns", "label",
                                         "max_record_bytes", "schema_registry", "schema_version"})


def make_decoder(data: DataSpec, topic: str | None = None) -> Decoder:
    """The decoder of `data`'s layout, as read from `topic` (made once per process and layout;
    safe across threads). An Avro decoder fetches the reader's schema, its subject's, now."""
    data = for_topic(data, topic)
    key = _layout_key(data)
    if key not in _DECODERS:
        if data.format == "avro":
            from workload.data.avro_decode import AvroDecoder

            _DECODERS[key] = AvroDecoder(data)
        elif data.format == "json":
            from workload.data.json_decode import JsonDecoder

            _DECODERS[key] = JsonDecoder(data)
        else:
            from workload.data.csv_decode import CsvDecoder

            _DECODERS[key] = CsvDecoder(data)
    return _DECODERS[key]


def sum_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    """Add `counts` (per reason) into `total`."""
    for reason, count in counts.items():
        total[reason] = total.get(reason, 0) + count
