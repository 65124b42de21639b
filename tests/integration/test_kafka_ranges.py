"""Exact offset ranges through librdkafka on the real Kafka 4 broker: every partition, exact
ranges, one fixed order, loud failures."""

from __future__ import annotations

import pytest

from tests.conftest import KafkaHandle
from tests.integration.kafka_fill import fill
from workload.kafka.admin import TopicMissing
from workload.kafka.bounds import partition_bounds, record_count
from workload.kafka.connection import KafkaConnection
from workload.kafka.ranges import KafkaReadError, PartitionReader, read_ranges


def values_of(connection: KafkaConnection, topic: str, ranges: dict[int, tuple[int, int]],
              batch_records: int = 8192) -> list[bytes]:
    return [value for batch in read_ranges(connection, topic, ranges, batch_records)
            for value in batch.values]


@pytest.fixture(scope="module")
def three_partitions(kafka: KafkaHandle) -> str:
    topic = kafka.create_topic("ranges", partitions=3)
    fill(kafka, topic, partitions=3, per_partition=100)
    return topic


def test_bounds_are_captured_for_every_partition(kafka: KafkaHandle, three_partitions: str) -> None:
    bounds = partition_bounds(KafkaConnection(kafka.bootstrap_servers), three_partitions)
    assert bounds == {0: (0, 100), 1: (0, 100), 2: (0, 100)}
    assert record_count(bounds) == 300


def test_every_record_of_every_partition_once_partitions_in_order(
        kafka: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    bounds = partition_bounds(connection, three_partitions)
    runs = [values_of(connection, three_partitions, bounds, batch_records=16) for _ in range(2)]
    assert runs[0] == runs[1] == [f"{p},{i}".encode() for p in range(3) for i in range(100)]


def test_exactly_the_ranges_including_single_records(
        kafka: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    values = values_of(connection, three_partitions, {0: (10, 43), 1: (99, 100), 2: (0, 1)})
    assert values == [f"0,{i}".encode() for i in range(10, 43)] + [b"1,99", b"2,0"]


def test_batches_are_no_larger_than_asked_and_say_where_they_end(
        kafka: KafkaHandle, three_partitions: str) -> None:
    batches = list(read_ranges(KafkaConnection(kafka.bootstrap_servers), three_partitions,
                               {2: (0, 100)}, batch_records=32))
    assert all(len(batch) <= 32 for batch in batches)
    assert sum(map(len, batches)) == 100
    assert batches[-1].positions == {2: 100}
    assert batches[0].keys[:2] == [b"0", b"1"]


def test_consecutive_ranges_continue_without_losing_records_read_ahead(
        kafka: KafkaHandle, three_partitions: str) -> None:
    with PartitionReader(KafkaConnection(kafka.bootstrap_servers), three_partitions, 1, 0,
                         batch_records=64) as reader:
        first = [v for batch in reader.read(30) for v in batch.values]
        second = [v for batch in reader.read(31) for v in batch.values]
        rest = [v for batch in reader.read(100) for v in batch.values]
    assert first + second + rest == [f"1,{i}".encode() for i in range(100)]
    assert len(second) == 1 and reader.position == 100


def test_a_range_beyond_the_end_fails_instead_of_coming_back_short(
        kafka: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    with pytest.raises(KafkaReadError, match="partition 1 ends at offset 100, before 120"):
        values_of(connection, three_partitions, {1: (90, 120)})


def test_records_deleted_before_they_are_read_fail_naming_the_offset(kafka: KafkaHandle) -> None:
    topic = kafka.create_topic("deleted", partitions=1)
    fill(kafka, topic, partitions=1, per_partition=50)
    from kafka.structs import TopicPartition

    kafka.admin.delete_records({TopicPartition(topic, 0): 20})
    connection = KafkaConnection(kafka.bootstrap_servers)
    assert partition_bounds(connection, topic) == {0: (20, 50)}
    with pytest.raises(KafkaReadError, match="partition 0 at offset 0"):
        values_of(connection, topic, {0: (0, 50)})


def test_an_empty_topic_has_empty_bounds_and_a_missing_one_is_named(kafka: KafkaHandle) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    topic = kafka.create_topic("empty", partitions=2)
    assert partition_bounds(connection, topic) == {0: (0, 0), 1: (0, 0)}
    assert values_of(connection, topic, {0: (0, 0), 1: (0, 0)}) == []
    with pytest.raises(TopicMissing, match="'no-such-topic-here' does not exist"):
        partition_bounds(connection, "no-such-topic-here")


def test_a_stalled_partition_fails_with_the_broker_named(kafka: KafkaHandle) -> None:
    """A read that cannot get a record (here: nothing answers at the address) gives up."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with PartitionReader(KafkaConnection(address), "t", 0, 0,
                             stall_timeout_s=2.0) as reader, \
                pytest.raises(KafkaReadError, match="no record from topic 't' partition 0"):
            list(reader.read(10))
