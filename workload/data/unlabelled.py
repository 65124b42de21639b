"""Decode records that may carry no label: what serving reads.

A model predicts from features alone, so a record is served when its
features decode, whatever its label says; records that are not answered are
set aside with the same reasons as everywhere (`workload.data.decode`), less
the label's own. CSV is read by the decoder that needs no TensorFlow
(`csv_numpy`, which agrees with the TensorFlow one record for record), JSON
by the usual one (msgspec): a serving pod that scores with LiteRT never loads
TensorFlow. The decoders are given a layout without the label:
- `label: key`: the message key is free (it is copied to the prediction), so
  the decoder is given a valid label key for every record;
- a label column in JSON: the column is not read (a record may leave it out);
- a label column in CSV: fields are positional, so the column stays in the
  record (it must be a number, as any CSV field) and is dropped after decoding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workload.data.decode import Decoded, Decoder, make_decoder
from workload.spec import DataSpec

FREE_KEY = b"0"
"""A label key the decoder accepts, put in place of the records' own keys."""


def _decoder(data: DataSpec) -> Decoder:
    """The decoder of a layout whose label is the key: CSV without TensorFlow."""
    if data.format == "csv":
        from workload.data.csv_numpy import NumpyCsvDecoder

        return NumpyCsvDecoder(data)
    return make_decoder(data)


def features_decoder(data: DataSpec) -> Decoder:
    """A decoder of `data`'s records that needs no label (labels come back as 0)."""
    if data.label == "key":
        decode = _decoder(data)
        return lambda keys, values: decode([FREE_KEY] * len(values), values)
    if data.format == "json":
        features_only = data.model_copy(update={"columns": data.feature_names, "label": "key"})
        decode = _decoder(features_only)
        return lambda keys, values: decode([FREE_KEY] * len(values), values)
    every_column = data.model_copy(update={"columns": data.record_columns, "label": "key"})
    decode = _decoder(every_column)
    keep = [index for index, name in enumerate(data.record_columns) if name != data.label]

    def without_label(keys: Sequence[bytes], values: Sequence[bytes]) -> Decoded:
        decoded = decode([FREE_KEY] * len(values), values)
        return Decoded(np.ascontiguousarray(decoded.features[:, keep]), decoded.labels,
                       decoded.reasons, decoded.missing)

    return without_label
