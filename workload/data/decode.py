"""Decode a batch of raw Kafka records into features and labels, setting malformed ones aside.

A decoder (`make_decoder(data, labels)`, made once per layout) takes a batch
as the Kafka readers hand it over (lists of key and value bytes) and returns
numpy arrays (`workload.data.decoded.Decoded`): the good records' numeric
features, categorical values and labels, and every record's verdict. One bad
record never fails the batch.

Layouts (from `DataSpec`):
- CSV with the label in the message key (TensorFlow's Kafka tutorial): key
  `0`/`1`, value `x1,...,xN` (`workload.data.csv_decode`);
- CSV with a label column (`columns` names every field, `label` one of them);
- JSON objects whose fields `columns` names, a dotted name (`features.pt`)
  being a path into nested objects; the label is the key or one of the
  fields (`workload.data.json_decode`);
- Avro in the Confluent wire format, schemas from a registry, fields named
  as for JSON (`workload.data.avro_decode`, which lists its own reasons:
  `invalid_avro`, `unknown_schema`, `registry_unreachable`).
`data.categorical` columns hold categories: text in CSV (no quotes, no
commas), a string, integer or boolean in JSON, a string, enum symbol,
integer or boolean in Avro; they are kept as text.

Reasons a record is set aside, checked in this order (the first one wins):
- `empty`: the value is empty or only whitespace;
- `oversized`: the value is longer than `data.max_record_bytes`;
- `field_count` (CSV): not exactly the expected number of fields;
- `invalid_json` (JSON): not JSON (RFC 8259: `NaN` is not JSON either, nor
  invalid UTF-8), or JSON that is not an object;
- `missing_field` (JSON): a column is absent (the first one is named in the
  dead-letter headers);
- `non_numeric`: a numeric field that is not a number (a JSON string,
  boolean, null, object or array; in CSV anything but a decimal number), or
  a regression label that is not one. `nan`, `inf` and numbers beyond
  float32's range are refused too: one NaN or infinity in a batch turns the
  model's weights into NaN;
- `non_categorical`: a categorical field that is a JSON object, array, null
  or non-integer number, or CSV text with a double quote;
- `bad_key`: a binary label (message key or label column) that is not `0` or `1`;
- `unknown_class`: a multiclass label that is not one of the classes (or empty).

The formats are a registry (`DECODERS`): a format's module is imported when
its first decoder is made, so TensorFlow (CSV), msgspec (JSON) or the
registry client (Avro) load only when used, and a new format is one more entry and one class that takes
`(data, task)`.
"""

from __future__ import annotations

import atexit
import importlib
from collections.abc import Callable, Sequence

from workload.data.decoded import (
    BAD_REASONS,
    FORMAT_REASONS,
    REASON_CODES,
    BadRecord,
    Decoded,
    Floats,
    LabelRule,
    Task,
    sum_counts,
)
from workload.spec import DataSpec

__all__ = ["BAD_REASONS", "DECODERS", "FORMAT_REASONS", "REASON_CODES", "BadRecord", "Decoded",
           "Decoder", "Floats", "LabelRule", "for_topic", "make_decoder", "sum_counts"]

Decoder = Callable[[Sequence[bytes], Sequence[bytes]], Decoded]
"""Decodes a batch (keys, values: one bytes object per record); never raises."""

FormatDecoder = Callable[[DataSpec, Task], Decoder]
"""Makes a format's decoder for a layout and a task (multiclass labels come back as text)."""

DECODERS: dict[str, str] = {
    "csv": "workload.data.csv_decode:CsvDecoder",
    "json": "workload.data.json_decode:JsonDecoder",
    "avro": "workload.data.avro_decode:AvroDecoder",
}
"""Each format's decoder class, as `module:class`, by `data.format`."""

_DECODERS: dict[str, Decoder] = {}
"""Decoders made so far, by layout: a CSV decoder's compiled function is traced once per process
(about a second), not once per read of a topic."""
atexit.register(_DECODERS.clear)  # dropped while TensorFlow is still whole, not at teardown


def format_decoder(name: str) -> FormatDecoder:
    """The decoder class of format `name` (its module imported now)."""
    module, _, attribute = DECODERS[name].partition(":")
    made: FormatDecoder = getattr(importlib.import_module(module), attribute)
    return made


def for_topic(data: DataSpec, topic: str | None) -> DataSpec:
    """`data` as read from `topic`: an Avro layout names its subject (`<topic>-value` unless
    `schemaRegistry.subject` says), so that the layout alone makes its decoder."""
    registry = data.schema_registry
    if registry is None or registry.subject is not None or topic is None:
        return data
    return data.model_copy(update={"schema_registry": registry.model_copy(
        update={"subject": f"{topic}-value"})})


def make_decoder(data: DataSpec, labels: LabelRule | None = None,
                 topic: str | None = None) -> Decoder:
    """The decoder of `data`'s layout as read from `topic`, reading labels as `labels` says
    (default: binary); made once per process, layout and rule; safe across threads. An Avro
    decoder fetches the reader's schema, its subject's, now."""
    rule = labels or LabelRule()
    data = for_topic(data, topic)
    layout = data.model_dump_json(include={"format", "features", "columns", "label",
                                           "max_record_bytes", "categorical",
                                           "schema_registry", "schema_version"})
    key = f"{layout}\n{rule.key()}"
    if key not in _DECODERS:
        decode = format_decoder(data.format)(data, rule.task)
        _DECODERS[key] = decode if rule.task != "multiclass" else _with_classes(decode, rule)
    return _DECODERS[key]


def _with_classes(decode: Decoder, rule: LabelRule) -> Decoder:
    """A multiclass decoder: the format's, then its labels mapped to `rule.classes`."""

    def decode_classes(keys: Sequence[bytes], values: Sequence[bytes]) -> Decoded:
        return decode(keys, values).with_classes(rule.classes)

    return decode_classes
