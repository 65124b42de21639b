"""`streamtrain produce --format avro`: the demo data as Avro through the real registry, read
back exactly by fastavro and by the workload's own decoder."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.request

import fastavro
import numpy as np
from kafka import KafkaConsumer

from localparts.registry import Registry
from tests.conftest import KafkaHandle
from workload.data.avro_decode import AvroDecoder
from workload.data.decode import for_topic
from workload.datagen.synthetic import generate
from workload.datagen.table import split
from workload.spec import DataSpec


def test_produce_writes_avro_that_fastavro_and_the_decoder_read_back_exactly(
        kafka: KafkaHandle, schema_registry: Registry) -> None:
    train_topic, test_topic = kafka.create_topic("avro-p-train"), kafka.create_topic(
        "avro-p-test", partitions=2)
    command = [sys.executable, "-m", "workload.cli", "produce", "--bootstrap-servers",
               kafka.bootstrap_servers, "--rows", "3000", "--train-fraction", "0.5",
               "--train-topic", train_topic, "--test-topic", test_topic, "--seed", "5",
               "--format", "avro", "--schema-registry", schema_registry.url, "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    layout = json.loads(done.stdout.split("the job's data section: ", 1)[1])
    data = DataSpec.model_validate(layout)
    assert data.format == "avro" and data.label == "key"

    with urllib.request.urlopen(
            f"{schema_registry.url}/subjects/{train_topic}-value/versions/latest") as answer:
        registered = json.load(answer)
    schema = fastavro.parse_schema(json.loads(registered["schema"]))
    consumer = KafkaConsumer(train_topic, bootstrap_servers=kafka.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    records = list(consumer)
    consumer.close()
    assert len(records) == 1500
    expected, _ = split(generate(3000, seed=5), 1500)
    keys = [record.key for record in records]
    values = [record.value for record in records]
    assert {value[:5] for value in values} == {b"\0" + registered["id"].to_bytes(4, "big")}
    first = fastavro.schemaless_reader(io.BytesIO(values[0][5:]), schema, None)
    assert [np.float32(first[name]) for name in data.feature_names] == \
        expected.features[0].tolist()

    decoded = AvroDecoder(for_topic(data, train_topic))(keys, values)
    assert decoded.counts() == {}
    np.testing.assert_array_equal(decoded.features, expected.features)
    np.testing.assert_array_equal(decoded.labels, expected.labels.astype(np.float32))
