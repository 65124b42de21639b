"""The local broker is real Apache Kafka 4: it serves kafka-python (tensorflow-io's readers, which it
refuses, are tried in test_tensorflow_io_datasets.py, in the tensorflow-io set's environment)."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer

from tests.conftest import KafkaHandle


def write_rows(kafka: KafkaHandle, topic: str, rows: int, partitions: int) -> None:
    """``rows`` CSV records, key = label, spread round-robin over ``partitions``."""
    producer = kafka.producer()
    for index in range(rows):
        producer.send(topic, key=str(index % 2).encode(), value=f"{index},0.5,1.5".encode(),
                      partition=index % partitions)
    producer.flush()
    producer.close()


@pytest.mark.parametrize("partitions", [1, 2])
def test_kafka_python_produces_and_consumes_on_kafka_4(kafka: KafkaHandle, partitions: int) -> None:
    assert kafka.broker.version.startswith("4.")
    topic = kafka.create_topic("plain", partitions)
    write_rows(kafka, topic, 100, partitions)
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000,
                             group_id=None)
    values = sorted(int(message.value.split(b",")[0]) for message in consumer)
    consumer.close()
    assert values == list(range(100))
    assert kafka.end_offsets(topic) == {p: 100 // partitions for p in range(partitions)}
