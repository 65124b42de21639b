"""Schema evolution through the real registry: a topic mixing two versions of a schema trains on
both, BACKWARD compatibility refuses an incompatible version, and a record whose schema lacks a
field the job needs is set aside as `missing_field`, naming it."""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import json  # noqa: E402
from copy import deepcopy  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.error import SchemaRegistryError  # noqa: E402

from localparts.registry import Registry  # noqa: E402
from tests.avro_support import wire  # noqa: E402
from tests.conftest import KafkaHandle  # noqa: E402
from tests.integration.test_avro_records import COLUMNS, EVENT_V1, avro_job  # noqa: E402
from workload.artifacts import Artifacts, read_json  # noqa: E402
from workload.datagen.synthetic import generate  # noqa: E402
from workload.datagen.table import SUSY_COLUMNS  # noqa: E402
from workload.kafka.connection import KafkaConnection  # noqa: E402
from workload.runner import run_mode  # noqa: E402

EVENT_V2: dict[str, Any] = {**EVENT_V1, "fields": [
    *EVENT_V1["fields"], {"name": "pileup", "type": "double", "default": 20.0}]}
"""v1 plus a field with a default: BACKWARD compatible (a v2 reader reads v1 records)."""

EVENT_V3_BREAKING: dict[str, Any] = {**EVENT_V2, "fields": [
    *EVENT_V2["fields"], {"name": "vertex", "type": "double"}]}
"""v2 plus a field without a default: a v3 reader cannot read v1 or v2 records."""


def _without_lepton1_pt() -> dict[str, Any]:
    schema = deepcopy(EVENT_V1)
    event = schema["fields"][0]["type"]
    event["fields"] = [each for each in event["fields"] if each["name"] != "lepton1_pt"]
    return schema


def test_v1_and_v2_records_in_one_topic_train_and_an_incompatible_v3_is_refused(
        kafka: KafkaHandle, schema_registry: Registry, tmp_path: Path) -> None:
    topic = kafka.create_topic("avro-evolve", partitions=1)
    subject = f"{topic}-value"
    client = SchemaRegistryClient({"url": schema_registry.url})
    v1 = client.register_schema(subject, Schema(json.dumps(EVENT_V1), "AVRO"))
    client.set_compatibility(subject, "BACKWARD")
    v2 = client.register_schema(subject, Schema(json.dumps(EVENT_V2), "AVRO"))
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(json.dumps(EVENT_V3_BREAKING), "AVRO"))
    assert refused.value.http_status_code == 409
    other = client.register_schema("elsewhere-value",
                                   Schema(json.dumps(_without_lepton1_pt()), "AVRO"))
    assert len({v1, v2, other}) == 3

    data = generate(2000, seed=41)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    written = {v1: 0, v2: 0, other: 0}
    for index, (features, label) in enumerate(zip(data.features.tolist(),
                                                  data.labels.tolist(), strict=True)):
        event = dict(zip(SUSY_COLUMNS, features, strict=True))
        record: dict[str, Any] = {"event": event, "run": "r", "label": int(label)}
        if index % 100 == 99:
            schema_id, schema = other, _without_lepton1_pt()
            del event["lepton1_pt"]
        elif index % 2:
            schema_id, schema = v2, EVENT_V2
            record["pileup"] = 30.0 + index % 7
        else:
            schema_id, schema = v1, EVENT_V1
        written[schema_id] += 1
        producer.produce(topic, value=wire(schema_id, schema, record))
    producer.flush()

    spec = avro_job(kafka, schema_registry, tmp_path, data={
        "columns": [*COLUMNS[:-1], "pileup", "label"]},
        train={"topic": topic, "epochs": 1, "batchSize": 64})
    artifacts = Artifacts(tmp_path)
    report = run_mode("train", "evolve", spec, KafkaConnection(kafka.bootstrap_servers),
                      artifacts, progress=False)

    assert report.ok, report.message
    assert report.metrics.bad_records_by_reason == {"missing_field": written[other]}
    assert report.metrics.records_trained + report.metrics.records_validated == (
        written[v1] + written[v2])
    results = read_json(artifacts.results("train"))
    assert results["readerSchema"] == {"subject": subject, "version": 2, "id": v2}
    assert results["schemaIds"] == {str(key): count for key, count in sorted(written.items())}


def test_a_pinned_reader_version_without_a_column_fails_the_phase_saying_so(
        kafka: KafkaHandle, schema_registry: Registry, tmp_path: Path) -> None:
    topic = kafka.create_topic("avro-pinned", partitions=1)
    client = SchemaRegistryClient({"url": schema_registry.url})
    v1 = client.register_schema(f"{topic}-value", Schema(json.dumps(EVENT_V1), "AVRO"))
    client.register_schema(f"{topic}-value", Schema(json.dumps(EVENT_V2), "AVRO"))
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    event = dict.fromkeys(SUSY_COLUMNS, 1.0)
    for _ in range(10):
        producer.produce(topic, value=wire(v1, EVENT_V1, {"event": event, "run": "r",
                                                          "label": 1}))
    producer.flush()
    spec = avro_job(kafka, schema_registry, tmp_path,
                    data={"columns": [*COLUMNS[:-1], "pileup", "label"], "schemaVersion": 1},
                    train={"topic": topic, "epochs": 1})

    report = run_mode("train", "pinned", spec, KafkaConnection(kafka.bootstrap_servers),
                      Artifacts(tmp_path), progress=False)

    assert not report.ok
    assert "version 1: the reader's schema has no field pileup" in report.message
