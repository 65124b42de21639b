"""`streamtrain produce --format avro`: the demo data as Avro through the real registry, read
back exactly by fastavro and by the workload's own decoder; the tickets family (categorical
fields, a class name for a label) as Avro that a job with the printed data section trains and
evaluates on with `streamtrain run`, scoring each record as its model scores the same row in
JSON."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pytest
from kafka import KafkaConsumer

from localparts.registry import Registry
from tests.conftest import KafkaHandle
from workload.data.avro_decode import AvroDecoder
from workload.data.decode import LabelRule, for_topic
from workload.datagen.records import encode
from workload.datagen.synthetic import generate
from workload.datagen.table import split
from workload.datagen.task_families import TICKETS
from workload.spec import DataSpec


def produce(kafka: KafkaHandle, schema_registry: Registry, train_topic: str, test_topic: str,
            *extra: str) -> dict[str, Any]:
    """Run `streamtrain produce --format avro` to the two topics; the data section it prints."""
    command = [sys.executable, "-m", "workload.cli", "produce", "--bootstrap-servers",
               kafka.bootstrap_servers, "--train-topic", train_topic, "--test-topic", test_topic,
               "--format", "avro", "--schema-registry", schema_registry.url, "--quiet", *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    section: dict[str, Any] = json.loads(done.stdout.split("the job's data section: ", 1)[1])
    return section


def registered(schema_registry: Registry, topic: str) -> dict[str, Any]:
    """The latest version under `topic`'s value subject, as the registry answers."""
    with urllib.request.urlopen(
            f"{schema_registry.url}/subjects/{topic}-value/versions/latest") as answer:
        found: dict[str, Any] = json.load(answer)
    return found


def test_produce_writes_avro_that_fastavro_and_the_decoder_read_back_exactly(
        kafka: KafkaHandle, schema_registry: Registry) -> None:
    train_topic, test_topic = kafka.create_topic("avro-p-train"), kafka.create_topic(
        "avro-p-test", partitions=2)
    layout = produce(kafka, schema_registry, train_topic, test_topic, "--rows", "3000",
                     "--train-fraction", "0.5", "--seed", "5")
    data = DataSpec.model_validate(layout)
    assert data.format == "avro" and data.label == "key"

    subject = registered(schema_registry, train_topic)
    schema = fastavro.parse_schema(json.loads(subject["schema"]))
    consumer = KafkaConsumer(train_topic, bootstrap_servers=kafka.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    records = list(consumer)
    consumer.close()
    assert len(records) == 1500
    expected, _ = split(generate(3000, seed=5), 1500)
    keys = [record.key for record in records]
    values = [record.value for record in records]
    assert {value[:5] for value in values} == {b"\0" + subject["id"].to_bytes(4, "big")}
    first = fastavro.schemaless_reader(io.BytesIO(values[0][5:]), schema, None)
    assert [np.float32(first[name]) for name in data.feature_names] == \
        expected.features[0].tolist()

    decoded = AvroDecoder(for_topic(data, train_topic))(keys, values)
    assert decoded.counts() == {}
    np.testing.assert_array_equal(decoded.features, expected.features)
    np.testing.assert_array_equal(decoded.labels, expected.labels.astype(np.float32))


def test_produced_tickets_in_avro_train_and_evaluate_with_the_printed_data_section(
        kafka: KafkaHandle, schema_registry: Registry, tmp_path: Path) -> None:
    train_topic, test_topic = kafka.create_topic("avro-t-train"), kafka.create_topic(
        "avro-t-test", partitions=2)
    data = produce(kafka, schema_registry, train_topic, test_topic, "--family", "tickets",
                   "--rows", "2000", "--seed", "12")
    own = TICKETS.data_spec()
    assert data == {"format": "avro", "columns": own.columns, "label": "queue",
                    "categorical": own.categorical,
                    "schemaRegistry": {"url": schema_registry.url}}
    schema = json.loads(registered(schema_registry, train_topic)["schema"])
    assert schema["name"] == "Tickets"
    assert {entry["name"]: entry["type"] for entry in schema["fields"]
            if entry["name"] in ("channel", "product", "queue")} == dict.fromkeys(
        ("channel", "product", "queue"), "string")

    job = tmp_path / "job.yaml"
    job.write_text(f"""\
apiVersion: streamtrain.dev/v1alpha1
kind: StreamingTrainingJob
metadata: {{name: tickets-avro}}
spec:
  kafka: {{bootstrapServers: "{kafka.bootstrap_servers}"}}
  data: {json.dumps(data)}
  train: {{topic: {train_topic}, epochs: 1}}
  evaluate: {{topic: {test_topic}, consumerGroup: t-{uuid.uuid4().hex[:8]}, streamTimeoutMs: 0}}
  model: {{task: multiclass, layers: [{{dense: 16}}]}}
""")
    output = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "workload.cli", "run", str(job), "--quiet",
                          "--output-dir", str(output)], capture_output=True, text=True,
                         timeout=300, check=False)

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    train, evaluate = json.loads((output / "results.json").read_text())["phases"]
    assert train["classes"] == sorted(TICKETS.classes)
    assert train["metrics"]["recordsTrained"] + train["metrics"]["recordsValidated"] == 1200
    assert evaluate["metrics"]["recordsEvaluated"] == 800
    assert evaluate["metrics"].get("badRecords", 0) == 0
    # The evaluator scored the records as the model scores the same rows written as JSON.
    from tests.integration.test_tasks import outputs_of

    test_rows = split(TICKETS.generate(2000, seed=12), 1200)[1]
    outputs, labels = outputs_of(Path(train["modelUri"]), own,
                                 LabelRule("multiclass", tuple(train["classes"])),
                                 encode(test_rows, own))
    assert len(labels) == 800
    assert evaluate["metrics"]["evalAccuracy"] == pytest.approx(
        float((outputs.argmax(axis=1) == labels).mean()), abs=1e-9)
    trained = json.loads((output / "results-train.json").read_text())
    assert trained["readerSchema"]["subject"] == f"{train_topic}-value"
