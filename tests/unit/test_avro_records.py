"""The Avro writer of `streamtrain produce`: its values are what fastavro reads under its schema,
for every family (numbers, categorical strings, a 0/1, class or numeric label), and what the
workload's own decoder reads for the family's task (a registry stand-in; the real one in
integration)."""

from __future__ import annotations

import io
import uuid

import fastavro
import numpy as np
import pytest

from tests.avro_support import StaticRegistry
from workload.data.avro_decode import AvroDecoder
from workload.data.decode import for_topic
from workload.datagen.avro_records import _fixed_values, _joined_values, avro_values, schema_of
from workload.datagen.families import FAMILIES, data_spec
from workload.datagen.records import encode
from workload.datagen.synthetic import generate
from workload.datagen.table import SUSY_COLUMNS, SusyData
from workload.datagen.task_families import DEMAND, TICKETS
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


def avro_layout(family: str) -> DataSpec:
    """A family's own layout, as Avro (what `streamtrain produce --format avro` prints)."""
    own = data_spec(FAMILIES[family])
    return DataSpec.model_validate({**own.model_dump(by_alias=True, exclude_defaults=True),
                                    "format": "avro", "schemaRegistry": {"url": "http://r"}})


def test_the_tickets_schema_nests_dotted_columns_with_string_categories_and_class() -> None:
    schema = schema_of(avro_layout("tickets"), "multiclass", "Tickets")

    assert schema == {"type": "record", "name": "Tickets", "namespace": "dev.streamtrain",
                      "fields": [
        {"name": "text", "type": {"type": "record", "name": "Tickets_text",
                                  "fields": [{"name": "length", "type": "float"}]}},
        {"name": "priority", "type": "float"},
        {"name": "account", "type": {"type": "record", "name": "Tickets_account", "fields": [
            {"name": "age_days", "type": "float"}, {"name": "country", "type": "string"}]}},
        {"name": "channel", "type": "string"},
        {"name": "product", "type": "string"},
        {"name": "queue", "type": "string"}]}
    demand = schema_of(avro_layout("demand"), "regression")
    assert [(entry["name"], entry["type"]) for entry in demand["fields"]][-2:] == [
        ("region", "string"), ("demand", "double")]


def test_tickets_read_back_through_fastavro_as_generated() -> None:
    spec = avro_layout("tickets")
    data = TICKETS.generate(300, seed=8)
    schema = fastavro.parse_schema(schema_of(spec, data.task))
    messages = encode(data, spec, schema_id=70_000)

    assert data.task == "multiclass" and data.categories is not None
    assert len(messages) == 300
    for row, message in enumerate(messages):
        assert message.key is None and message.value[:5] == b"\0" + (70_000).to_bytes(4, "big")
        body = io.BytesIO(message.value[5:])
        record = fastavro.schemaless_reader(body, schema, None)
        assert body.read() == b""
        assert [np.float32(record["text"]["length"]), np.float32(record["priority"]),
                np.float32(record["account"]["age_days"])] == data.features[row].tolist()
        assert [record["channel"], record["product"], record["account"]["country"]] == \
            data.categories[row].tolist()
        assert record["queue"] == TICKETS.classes[data.labels[row]]


def test_a_regression_target_reads_back_through_fastavro_as_the_same_double() -> None:
    spec = avro_layout("demand")
    data = DEMAND.generate(300, seed=9)
    schema = fastavro.parse_schema(schema_of(spec, data.task))
    records = [fastavro.schemaless_reader(io.BytesIO(message.value[5:]), schema, None)
               for message in encode(data, spec, schema_id=3)]

    assert data.task == "regression" and data.targets is not None and data.categories is not None
    assert [record["demand"] for record in records] == data.targets.tolist()
    assert [record["region"] for record in records] == data.categories[:, 0].tolist()
    assert [[np.float32(record[name]) for name in DEMAND.columns] for record in records] == \
        data.features.tolist()


def test_long_and_unicode_categories_are_written_as_avro_strings() -> None:
    spec = DataSpec.model_validate({"format": "avro", "columns": ["x", "word", "label"],
                                    "label": "label", "categorical": ["word"],
                                    "schemaRegistry": {"url": "http://r"}})
    words = ["", "a", "é" * 40, "z" * 64, "日本" * 3000, "a" * 63]
    data = SusyData(np.arange(len(words), dtype=np.float32)[:, None], np.array([0, 1, 1, 0, 1, 0]),
                    ("x",), np.array(words, object)[:, None], ("word",))
    schema = fastavro.parse_schema(schema_of(spec))
    records = [fastavro.schemaless_reader(io.BytesIO(message.value[5:]), schema, None)
               for message in encode(data, spec, schema_id=1)]

    assert [record["word"] for record in records] == words
    assert [record["label"] for record in records] == [0, 1, 1, 0, 1, 0]
    assert [record["x"] for record in records] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_binary_rows_are_the_same_bytes_from_the_fixed_and_the_joined_writer() -> None:
    columns = [f"event.{name}" if index % 2 else name for index, name in enumerate(SUSY_COLUMNS)]
    columns.insert(7, "label")
    spec = DataSpec.model_validate({"format": "avro", "columns": columns, "label": "label",
                                    "schemaRegistry": {"url": "http://registry"}})
    data = generate(500, seed=6)

    fixed = _fixed_values(data, spec, 513)
    assert avro_values(data, spec, 513) == fixed
    assert _joined_values(data, spec, 513) == fixed


@pytest.mark.parametrize("family", ["tickets", "demand"])
def test_the_workload_decoder_reads_what_was_written(family: str) -> None:
    spec = avro_layout(family)
    data = FAMILIES[family].generate(2000, seed=10)
    messages = encode(data, spec, schema_id=12)
    registry = StaticRegistry({12: schema_of(spec, data.task)})
    decoder = AvroDecoder(for_topic(spec, f"{family}-{uuid.uuid4().hex}"), data.task,
                          registry=registry)  # type: ignore[arg-type]

    decoded = decoder([b""] * len(messages), [message.value for message in messages])

    assert decoded.counts() == {}
    np.testing.assert_array_equal(decoded.features, data.features)
    assert decoded.categories is not None and data.categories is not None
    assert decoded.categories.tolist() == data.categories.tolist()
    if data.targets is not None:
        np.testing.assert_array_equal(decoded.labels, data.targets.astype(np.float32))
    else:
        assert decoded.tokens is not None
        assert decoded.tokens.tolist() == data.label_texts
