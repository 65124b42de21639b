"""A multiclass job with categorical fields reading Avro through the real schema registry: it
trains, evaluates every record exactly once with the same figures as the same records in JSON
give its model, learns online, and a bad category or an unknown class gets its reason. Serving's
decoder reads the same records without their label, categories included.

The records are the tickets family's (numeric fields, categorical `channel`,
`product` and nested `account.country`, the class in `queue`), written by
confluent-kafka's AvroSerializer (not this project's code) under a schema
whose `channel` may be null.
"""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import json  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroSerializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

from localparts.registry import Registry  # noqa: E402
from tests.conftest import KafkaHandle  # noqa: E402
from tests.integration.test_tasks import outputs_of  # noqa: E402
from workload.artifacts import Artifacts  # noqa: E402
from workload.data.decode import REASON_CODES, LabelRule  # noqa: E402
from workload.data.unlabelled import features_decoder  # noqa: E402
from workload.datagen.records import encode  # noqa: E402
from workload.datagen.task_families import TICKETS  # noqa: E402
from workload.kafka.connection import KafkaConnection  # noqa: E402
from workload.runner import run_phases  # noqa: E402
from workload.spec import parse_spec  # noqa: E402

TRAIN_ROWS, TEST_ROWS, ONLINE_ROWS = 3000, 1200, 600


def avro_schema(record: dict[str, Any], name: str = "Ticket") -> dict[str, Any]:
    """An Avro record schema of a JSON record's shape: numbers as doubles, text as strings
    (`channel` nullable), nested objects as records."""
    fields = []
    for key, value in record.items():
        kind: Any = (avro_schema(value, f"{name}_{key}") if isinstance(value, dict)
                     else "string" if isinstance(value, str) else "double")
        fields.append({"name": key, "type": ["null", "string"] if key == "channel" else kind})
    return {"type": "record", "name": name, "namespace": "dev.streamtrain.tickets",
            "fields": fields}


def write_avro(kafka: KafkaHandle, schema_registry: Registry, records: list[dict[str, Any]],
               schema: dict[str, Any], partitions: int) -> str:
    """A new topic holding `records` as AvroSerializer writes them (round-robin)."""
    topic = kafka.create_topic(f"avro-task-{uuid.uuid4().hex[:6]}", partitions=partitions)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for index, value in enumerate(avro_values(schema_registry, records, schema, topic)):
        producer.produce(topic, value=value, partition=index % partitions)
    producer.flush()
    return topic


def avro_values(schema_registry: Registry, records: list[dict[str, Any]],
                schema: dict[str, Any], topic: str) -> list[bytes]:
    """`records` as AvroSerializer writes them for `topic` (schema under `<topic>-value`)."""
    serialize = AvroSerializer(SchemaRegistryClient({"url": schema_registry.url}),
                               json.dumps(schema))
    context = SerializationContext(topic, MessageField.VALUE)
    return [serialize(record, context) for record in records]


def test_a_multiclass_avro_job_with_categorical_fields_trains_evaluates_and_learns_online(
        kafka: KafkaHandle, schema_registry: Registry, tmp_path: Path) -> None:
    as_json = TICKETS.data_spec()
    rows = TICKETS.generate(TRAIN_ROWS + TEST_ROWS + ONLINE_ROWS, seed=31)
    train = [json.loads(m.value) for m in encode(rows.slice(0, TRAIN_ROWS), as_json)]
    test_messages = encode(rows.slice(TRAIN_ROWS, TRAIN_ROWS + TEST_ROWS), as_json)
    online = [json.loads(m.value)
              for m in encode(rows.slice(TRAIN_ROWS + TEST_ROWS, rows.rows), as_json)]
    test = [json.loads(m.value) for m in test_messages]
    schema = avro_schema(train[0])
    bad = [dict(test[0], queue="lost-and-found"), dict(test[1], channel=None)]
    train_topic = write_avro(kafka, schema_registry, train, schema, 1)
    test_topic = write_avro(kafka, schema_registry, [*test, *bad], schema, 2)
    online_topic = write_avro(kafka, schema_registry, online, schema, 1)
    data = {**as_json.model_dump(mode="json", by_alias=True, exclude_none=True),
            "format": "avro", "schemaRegistry": {"url": schema_registry.url}}
    spec = parse_spec({
        "kafka": {"bootstrapServers": kafka.bootstrap_servers},
        "data": data,
        "train": {"topic": train_topic, "epochs": 3, "batchSize": 64},
        "evaluate": {"topic": test_topic, "consumerGroup": f"eval-{uuid.uuid4().hex[:8]}",
                     "streamTimeoutMs": 0},
        "online": {"topic": online_topic, "consumerGroup": f"online-{uuid.uuid4().hex[:8]}",
                   "streamTimeoutMs": 3000},
        "model": {"output": {"path": str(tmp_path)}, "layers": [{"dense": 32}],
                  "task": "multiclass"},
    })
    artifacts = Artifacts(tmp_path)

    reports = {report.mode: report for report in run_phases(
        "tickets-avro", spec, KafkaConnection(kafka.bootstrap_servers), artifacts,
        progress=False)}

    assert all(report.ok for report in reports.values()), [r.message for r in reports.values()]
    trained = reports["train"]
    assert trained.classes == sorted(TICKETS.classes)
    results = json.loads(artifacts.results("train").read_text())
    assert set(results["preprocessing"]["categorical"]) == {"channel", "product",
                                                             "account.country"}
    assert results["readerSchema"]["subject"] == f"{train_topic}-value"
    assert sum(results["schemaIds"].values()) == TRAIN_ROWS
    evaluated = reports["evaluate"].metrics
    assert evaluated.records_evaluated == TEST_ROWS
    assert evaluated.bad_records_by_reason == {"non_categorical": 1, "unknown_class": 1}
    outputs, labels = outputs_of(artifacts.keras_model, as_json,
                                 LabelRule("multiclass", tuple(trained.classes or ())),
                                 test_messages)
    assert len(labels) == TEST_ROWS
    predicted = outputs.argmax(axis=1)
    assert evaluated.eval_accuracy == pytest.approx(float((predicted == labels).mean()),
                                                    abs=1e-9)
    assert evaluated.eval_accuracy > 1 / len(TICKETS.classes)
    learned = reports["online"].metrics
    assert learned.records_online == ONLINE_ROWS
    assert learned.online_accuracy is not None

    # Serving reads the records as the test topic holds them, its label not read: the unknown
    # class is answered, the null channel set aside; the inputs are those the JSON records give.
    values = avro_values(schema_registry, [*test, *bad], schema, test_topic)
    served = features_decoder(spec.data, test_topic)([b""] * len(values), values)
    assert served.reasons.tolist() == [0] * (TEST_ROWS + 1) + [REASON_CODES["non_categorical"]]
    from_json = features_decoder(as_json)([b""] * TEST_ROWS, [m.value for m in test_messages])
    np.testing.assert_array_equal(served.features[:TEST_ROWS], from_json.features)
    assert served.category_table[:TEST_ROWS].tolist() == from_json.category_table.tolist()
