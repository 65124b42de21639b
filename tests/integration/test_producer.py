"""The producer against the real broker: partitions, balance, exact values, layout checks."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.conftest import KafkaHandle
from workload.datagen import synthetic
from workload.datagen.produce import produce_split
from workload.datagen.records import Message, corrupt, encode
from workload.kafka.admin import TopicLayoutError
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import produce_messages


def read_all(kafka: KafkaHandle, topic: str) -> dict[int, list[Message]]:
    """Every record of a topic, by partition, in offset order."""
    end = kafka.end_offsets(topic)
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in end]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        records: dict[int, list[Message]] = {p: [] for p in end}
        while sum(map(len, records.values())) < sum(end.values()):
            for tp, batch in consumer.poll(timeout_ms=2000).items():
                records[tp.partition].extend(Message(r.key, r.value) for r in batch)
        return records
    finally:
        consumer.close()


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_split_lands_in_1_and_2_balanced_partitions_with_exact_values(kafka: KafkaHandle) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    data = synthetic.generate(3001, seed=11)
    train_topic, test_topic = fresh("train"), fresh("test")
    kafka.created.extend([train_topic, test_topic])

    report = produce_split(
        connection, train_topic, test_topic, data, train_rows=2000, progress=False)

    assert (report.train.records, report.test.records) == (2000, 1001)
    assert report.train.per_partition == {0: 2000}
    assert report.test.per_partition == {0: 501, 1: 500}
    assert kafka.end_offsets(train_topic) == {0: 2000}
    assert kafka.end_offsets(test_topic) == {0: 501, 1: 500}
    test_records = read_all(kafka, test_topic)
    # Round-robin by row index: partition p holds rows p, p + 2, ... in order.
    for partition, records in test_records.items():
        rows = range(2000 + partition, 3001, 2)
        labels = [int(record.key or b"") for record in records]
        assert labels == data.labels[rows].tolist()
        values = np.array([[float(x) for x in r.value.split(b",")] for r in records], np.float32)
        assert np.array_equal(values, data.features[rows])
    # Both classes in both partitions, in the data's proportion (not split by key hash).
    for records in test_records.values():
        share = sum(record.key == b"1" for record in records) / len(records)
        assert abs(share - data.labels[2000:].mean()) < 0.05


def test_writing_onto_a_topic_with_another_partition_count_fails_clearly(
    kafka: KafkaHandle,
) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    data = synthetic.generate(100, seed=12)
    train_topic, test_topic = fresh("train"), fresh("test")
    kafka.created.extend([train_topic, test_topic])
    produce_split(connection, train_topic, test_topic, data, train_rows=60, progress=False)

    with pytest.raises(TopicLayoutError, match=rf"{test_topic}.* 2 partition\(s\), but 3 were"):
        produce_split(connection, train_topic, test_topic, data, train_rows=60,
                      test_partitions=3, progress=False)
    assert kafka.end_offsets(train_topic) == {0: 60}  # nothing written by the failed run

    again = produce_split(connection, train_topic, test_topic, data, train_rows=60, progress=False)
    assert again.train.end_offsets == {0: 120}
    assert again.test.end_offsets == {0: 40, 1: 40}


def test_recreate_replaces_what_the_topics_held_and_their_layout(kafka: KafkaHandle) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    data = synthetic.generate(100, seed=14)
    train_topic, test_topic = fresh("train"), fresh("test")
    kafka.created.extend([train_topic, test_topic])
    produce_split(connection, train_topic, test_topic, data, train_rows=60, progress=False)

    report = produce_split(connection, train_topic, test_topic, data, train_rows=70,
                           test_partitions=3, progress=False, recreate=True)

    assert kafka.end_offsets(train_topic) == report.train.end_offsets == {0: 70}
    assert kafka.end_offsets(test_topic) == report.test.end_offsets == {0: 10, 1: 10, 2: 10}


def test_arbitrary_messages_including_malformed_ones_arrive_as_sent(kafka: KafkaHandle) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    messages, counts = corrupt(encode(synthetic.generate(200, seed=13)), 0.25, seed=3)
    topic = kafka.create_topic("bad", partitions=2)

    report = produce_messages(connection, topic, messages, partitions=2)

    assert report.per_partition == {0: 100, 1: 100}
    assert sum(counts.values()) == 50
    stored = read_all(kafka, topic)
    assert stored[0] == messages[0::2]
    assert stored[1] == messages[1::2]
