"""Avro records written by confluent-kafka's AvroSerializer through the real schema registry, read
by train, evaluate (exactly once) and online on the real broker, bad ones counted by reason.

The serializer (not this project's code) registers the schema and writes the
Confluent wire format; the records nest the SUSY columns in an `event` record
(`event.lepton1_pt`, ...), as a JSON job names them. About 1% of the values
are junk: a JSON text (no magic byte), an id the registry never gave, a body
cut short, a null where a number belongs.
"""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import json  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroSerializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

from localparts.registry import Registry  # noqa: E402
from tests.conftest import KafkaHandle  # noqa: E402
from tests.integration.test_json_records import dead_letters  # noqa: E402
from workload.artifacts import Artifacts  # noqa: E402
from workload.datagen.synthetic import generate  # noqa: E402
from workload.datagen.table import SUSY_COLUMNS  # noqa: E402
from workload.kafka.connection import KafkaConnection  # noqa: E402
from workload.modes.evaluate import run_evaluate  # noqa: E402
from workload.modes.online import run_online  # noqa: E402
from workload.modes.train import run_train  # noqa: E402
from workload.spec import StreamingTrainingJobSpec  # noqa: E402

EVENT_V1: dict[str, Any] = {
    "type": "record", "name": "Collision", "namespace": "susy", "fields": [
        {"name": "event", "type": {"type": "record", "name": "Event", "fields": [
            {"name": name, "type": "double"} for name in SUSY_COLUMNS]}},
        {"name": "run", "type": "string"},
        {"name": "label", "type": ["null", "int"]}]}
"""The writer's schema: 18 doubles in a nested record, a string no column reads, a nullable label."""

COLUMNS = [f"event.{name}" for name in SUSY_COLUMNS] + ["label"]


def avro_job(kafka: KafkaHandle, schema_registry: Registry, tmp_path: Path,
             **sections: dict[str, Any]) -> StreamingTrainingJobSpec:
    return StreamingTrainingJobSpec.model_validate({
        "kafka": {"bootstrapServers": kafka.bootstrap_servers},
        "data": {"format": "avro", "columns": COLUMNS, "label": "label",
                 "schemaRegistry": {"url": schema_registry.url}, **sections.pop("data", {})},
        "model": {"output": {"path": str(tmp_path)}, "layers": [{"dense": 16}]},
        **sections})


def write(kafka: KafkaHandle, schema_registry: Registry, topic: str, rows: int, seed: int,
          partitions: int, schema: dict[str, Any] = EVENT_V1,
          junk_every: int = 0) -> Counter[str]:
    """`rows` synthetic records through confluent-kafka's AvroSerializer, round-robin over the
    partitions; with `junk_every`, every that many-th value is junk of the next kind in turn.
    Returns the junk written, by the reason it should be counted under."""
    data = generate(rows, seed=seed)
    serialize = AvroSerializer(SchemaRegistryClient({"url": schema_registry.url}),
                               json.dumps(schema))
    context = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    made: Counter[str] = Counter()
    kinds = ("invalid_avro", "unknown_schema", "truncated", "non_numeric")
    for index, (features, label) in enumerate(zip(data.features.tolist(), data.labels.tolist(),
                                                  strict=True)):
        record = {"event": dict(zip(SUSY_COLUMNS, features, strict=True)), "run": f"r{index}",
                  "label": int(label)}
        junk = kinds[(index // junk_every) % len(kinds)] if junk_every and (
            index % junk_every == junk_every - 1) else None
        if junk == "non_numeric":
            record["label"] = None
        value = serialize(record, context)
        assert value is not None
        if junk == "invalid_avro":
            value = json.dumps(record).encode()
        elif junk == "unknown_schema":
            value = b"\0\x7f\xff\xff\xff" + value[5:]
        elif junk == "truncated":
            value = value[:-3]
        if junk is not None:
            made["invalid_avro" if junk == "truncated" else junk] += 1
        producer.produce(topic, value=value, partition=index % partitions)
    producer.flush()
    return made


def test_avro_from_another_client_trains_evaluates_once_and_learns_online(
        kafka: KafkaHandle, schema_registry: Registry, tmp_path: Path) -> None:
    train_topic = kafka.create_topic("avro-train", partitions=2)
    test_topic = kafka.create_topic("avro-test", partitions=2)
    online_topic = kafka.create_topic("avro-online", partitions=1)
    train_junk = write(kafka, schema_registry, train_topic, 3000, 31, 2, junk_every=100)
    test_junk = write(kafka, schema_registry, test_topic, 2000, 32, 2, junk_every=100)
    write(kafka, schema_registry, online_topic, 1500, 33, 1)
    dead = f"{train_topic}-dead"
    group = f"avro-{uuid.uuid4().hex[:8]}"
    spec = avro_job(kafka, schema_registry, tmp_path, data={"deadLetterTopic": dead},
                    train={"topic": train_topic, "epochs": 2, "batchSize": 64},
                    evaluate={"topic": test_topic, "consumerGroup": group, "streamTimeoutMs": 0},
                    online={"topic": online_topic, "consumerGroup": f"{group}-online",
                            "streamTimeoutMs": 1000})
    connection = KafkaConnection(kafka.bootstrap_servers)
    artifacts = Artifacts(tmp_path)

    trained = run_train("avro", spec, connection, artifacts, progress=False)

    assert trained.ok, trained.message
    assert set(train_junk) == {"invalid_avro", "unknown_schema", "non_numeric"}
    assert trained.metrics.bad_records_by_reason == dict(train_junk)
    good = 3000 - sum(train_junk.values())
    assert trained.metrics.records_trained + trained.metrics.records_validated == good
    assert dead_letters(kafka, dead) == Counter(
        {(reason, None): count for reason, count in train_junk.items()})

    evaluated = run_evaluate("avro", spec, connection, artifacts, progress=False)
    again = run_evaluate("avro", spec, connection, artifacts, progress=False)

    assert evaluated.ok, evaluated.message
    assert evaluated.metrics.bad_records_by_reason == dict(test_junk)
    assert evaluated.metrics.records_evaluated == 2000 - sum(test_junk.values())
    assert evaluated.metrics.eval_accuracy is not None and evaluated.metrics.eval_accuracy > 0.6
    assert again.ok and again.metrics.records_evaluated == evaluated.metrics.records_evaluated
    assert kafka.committed(group) == {(test_topic, 0): 1000, (test_topic, 1): 1000}

    learned = run_online("avro", spec, connection, artifacts, progress=False)

    assert learned.ok, learned.message
    assert learned.metrics.records_online == 1500
    assert learned.metrics.online_accuracy is not None and learned.metrics.online_accuracy > 0.6
