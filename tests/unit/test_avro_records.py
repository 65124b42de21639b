"""The Avro writer of `streamtrain produce`: its values are what fastavro reads under its schema."""

from __future__ import annotations

import io

import fastavro
import numpy as np

from workload.datagen.avro_records import schema_of
from workload.datagen.records import encode
from workload.datagen.synthetic import generate
from workload.datagen.table import SUSY_COLUMNS
from workload.spec import DataSpec


def test_nested_columns_and_a_label_column_read_back_through_fastavro() -> None:
    columns = [f"event.{name}" if index % 2 else f"jet.{name}"
               for index, name in enumerate(SUSY_COLUMNS)]
    columns.insert(5, "label")
    spec = DataSpec.model_validate({"format": "avro", "columns": columns, "label": "label",
                                    "schemaRegistry": {"url": "http://registry"}})
    data = generate(50, seed=3)
    messages = encode(data, spec, schema_id=258)
    schema = fastavro.parse_schema(schema_of(spec))
    for row, message in enumerate(messages):
        assert message.key is None and message.value[:5] == b"\0\0\0\x01\x02"
        body = io.BytesIO(message.value[5:])
        record = fastavro.schemaless_reader(body, schema, None)
        assert body.read() == b""
        assert record["label"] == int(data.labels[row])
        features = [np.float32(record[name.split(".")[0]][name.split(".")[1]])
                    for name in spec.feature_names]
        assert features == data.features[row].tolist()


def test_the_label_goes_in_the_key_as_for_csv() -> None:
    spec = DataSpec.model_validate({"format": "avro", "columns": list(SUSY_COLUMNS),
                                    "label": "key", "schemaRegistry": {"url": "http://r"}})
    data = generate(20, seed=4)
    messages = encode(data, spec, schema_id=1)
    assert [message.key for message in messages] == [b"1" if label else b"0"
                                                     for label in data.labels.tolist()]
    assert {len(message.value) for message in messages} == {5 + 4 * 18}
