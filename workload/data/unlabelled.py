"""Decode records that may carry no label: what serving reads.

A model predicts from features alone, so a record is served when its
features decode, whatever its label says; records that are not answered are
set aside with the same reasons as everywhere (`workload.data.decode`), less
the label's own. The decoded batch holds the numeric features and the
categorical values (`Decoded.category_table`, in `DataSpec.categorical_names`
order), what `InputLayout.of_decoded` makes the model's inputs of. CSV is
read by the decoder that needs no TensorFlow (`csv_numpy`, which agrees with
the TensorFlow one record for record), JSON and Avro by the usual ones
(msgspec; the Avro reader): a serving pod that scores with LiteRT never
loads TensorFlow. The decoders are given a layout without the label:
- `label: key`: the message key is free (it is copied to the prediction), so
  the decoder is given a valid label key for every record;
- a label column in JSON or Avro: the column is not read (a record may leave
  it out);
- a label column in CSV: fields are positional, so the column stays in the
  record, read as text (a number or a class name; like a category, no comma
  or double quote) and dropped after decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from workload.data.decode import Decoded, Decoder, for_topic, make_decoder
from workload.spec import DataSpec

FREE_KEY = b"0"
"""A label key the decoder accepts, put in place of the records' own keys."""


def _decoder(data: DataSpec) -> Decoder:
    """The decoder of a layout whose label is the key: CSV without TensorFlow."""
    if data.format == "csv":
        from workload.data.csv_numpy import NumpyCsvDecoder

        return NumpyCsvDecoder(data)
    return make_decoder(data)


def features_decoder(data: DataSpec, topic: str | None = None) -> Decoder:
    """A decoder of `data`'s records as read from `topic` (an Avro layout's subject is
    `<topic>-value` unless it names one) that needs no label (labels come back as 0)."""
    data = for_topic(data, topic)
    if data.label == "key":
        decode = _decoder(data)
        return lambda keys, values: decode([FREE_KEY] * len(values), values)
    if data.format != "csv":  # fields by name: the label's is not read
        features_only = data.model_copy(update={"columns": data.feature_names, "label": "key"})
        decode = _decoder(features_only)
        return lambda keys, values: decode([FREE_KEY] * len(values), values)
    # The label column read as one more category (any text), then left out of the table.
    with_label = data.model_copy(update={
        "columns": data.record_columns, "label": "key",
        "categorical": [*data.categorical_names, data.label]})
    decode = _decoder(with_label)
    keep = [index for index, name in enumerate(with_label.categorical_names)
            if name != data.label]

    def without_label(keys: Sequence[bytes], values: Sequence[bytes]) -> Decoded:
        decoded = decode([FREE_KEY] * len(values), values)
        categories = decoded.category_table
        return replace(decoded, categories=np.ascontiguousarray(categories[:, keep])
                       if keep else None)

    return without_label
