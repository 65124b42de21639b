"""Kafka into tf.data on the real broker: every partition, exact offset ranges, loud failures."""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.conftest import KafkaHandle  # noqa: E402
from workload.data.decode import decode_batch_tensors  # noqa: E402
from workload.data.kafka_input import (  # noqa: E402
    NEXT_RECORDS,
    KafkaInputError,
    batch_stream,
    partition_offsets,
    record_count,
    replay_dataset,
)
from workload.kafka_connection import KafkaConnection  # noqa: E402
from workload.spec import DataSpec  # noqa: E402


def fill(kafka: KafkaHandle, topic: str, partitions: int, per_partition: int) -> None:
    """Write `per_partition` records `p,i` (key `i % 2`) to each partition, `i` at offset `i`.

    One request in flight: a retried request (common just after a topic is created) must not
    overtake the next one, or offsets would not match `i`.
    """
    producer = kafka.producer(linger_ms=5, acks="all", max_in_flight_requests_per_connection=1)
    for partition in range(partitions):
        for index in range(per_partition):
            producer.send(topic, key=str(index % 2).encode(),
                          value=f"{partition},{index}".encode(), partition=partition)
    producer.flush()
    producer.close()


def read_values(dataset: tf.data.Dataset) -> list[bytes]:
    return [value for _, values in dataset for value in values.numpy()]


@pytest.fixture(scope="module")
def three_partitions(kafka: KafkaHandle) -> str:
    topic = kafka.create_topic("input", partitions=3)
    fill(kafka, topic, partitions=3, per_partition=100)
    return topic


def test_offsets_are_captured_for_every_partition(
        kafka: KafkaHandle, three_partitions: str) -> None:
    offsets = partition_offsets(KafkaConnection(kafka.bootstrap_servers), three_partitions)
    assert offsets == {0: (0, 100), 1: (0, 100), 2: (0, 100)}
    assert record_count(offsets) == 300


def test_replay_reads_every_record_of_every_partition_once(
        kafka: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    offsets = partition_offsets(connection, three_partitions)
    values = read_values(replay_dataset(connection, three_partitions, offsets, read_batch=16))
    assert sorted(values) == sorted(f"{p},{i}".encode() for p in range(3) for i in range(100))


def test_replay_reads_exactly_the_offset_ranges_including_single_records(
        kafka: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    ranges = {0: (10, 43), 1: (99, 100), 2: (5, 6)}
    values = read_values(replay_dataset(connection, three_partitions, ranges, read_batch=8))
    expected = [f"0,{i}".encode() for i in range(10, 43)] + [b"1,99", b"2,5"]
    assert sorted(values) == sorted(expected)


def test_batches_are_no_larger_than_the_read_batch(
        kafka: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    dataset = replay_dataset(connection, three_partitions, {0: (0, 100)}, read_batch=32)
    sizes = [int(values.shape[0]) for _, values in dataset]
    assert sizes == [32, 32, 32, 4]


def test_replay_feeds_batch_decoding(kafka: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    data = DataSpec.model_validate({"features": 2})
    offsets = partition_offsets(connection, three_partitions)
    decoded = replay_dataset(connection, three_partitions, offsets, read_batch=64).map(
        lambda keys, values: decode_batch_tensors(keys, values, data))
    rows = sum(int(features.shape[0]) for features, _, _ in decoded)
    labels = sum(float(tf.reduce_sum(labels)) for _, labels, _ in decoded)
    assert rows == 300 and labels == 150


def test_a_range_beyond_the_records_fails_instead_of_shortening_the_epoch(
        kafka: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    dataset = replay_dataset(connection, three_partitions, {1: (90, 120)}, read_batch=64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="short read"):
        read_values(dataset)


def test_an_empty_topic_is_an_error(kafka: KafkaHandle) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    topic = kafka.create_topic("empty", partitions=2)
    offsets = partition_offsets(connection, topic)
    assert offsets == {0: (0, 0), 1: (0, 0)}
    with pytest.raises(KafkaInputError, match="no records"):
        replay_dataset(connection, topic, offsets)


def test_a_missing_topic_is_an_error(kafka: KafkaHandle) -> None:
    with pytest.raises(KafkaInputError, match="does not exist"):
        partition_offsets(KafkaConnection(kafka.bootstrap_servers), "no-such-topic-here")


def test_batch_stream_reads_all_partitions_of_a_consumer_group(
        kafka: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    stream = batch_stream(connection, three_partitions, "cg-input-test",
                          stream_timeout_ms=2000, message_poll_timeout_ms=2000)
    values: list[bytes] = []
    for mini in stream:
        for batch_values, _ in mini.batch(1000):
            values.extend(batch_values.numpy())
    assert len(values) == 300 and len(set(values)) == 300


def test_replay_order_is_the_same_on_every_run_partition_chunks_in_turn(
        kafka: KafkaHandle) -> None:
    topic = kafka.create_topic("order", partitions=2)
    fill(kafka, topic, partitions=2, per_partition=2500)
    connection = KafkaConnection(kafka.bootstrap_servers)
    offsets = partition_offsets(connection, topic)
    runs = [read_values(replay_dataset(connection, topic, offsets)) for _ in range(2)]
    chunks = [(start, min(start + NEXT_RECORDS, 2500)) for start in range(0, 2500, NEXT_RECORDS)]
    expected = [f"{partition},{index}".encode() for first, stop in chunks
                for partition in range(2) for index in range(first, stop)]
    assert runs[0] == runs[1] == expected
