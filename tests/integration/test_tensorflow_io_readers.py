"""tensorflow-io's readers (`client: tensorflow-io`) on a real Kafka 3.x broker: every
partition, exact offset ranges, loud failures; on Kafka 4, a fast and clear refusal."""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.conftest import KafkaHandle  # noqa: E402
from tests.integration.kafka_fill import fill  # noqa: E402
from workload.kafka.bounds import partition_bounds  # noqa: E402
from workload.kafka.connection import KafkaConnection  # noqa: E402
from workload.kafka.probe import tensorflow_io_refusal  # noqa: E402
from workload.kafka.ranges import KafkaReadError  # noqa: E402
from workload.kafka.tfio import batch_stream, replay_dataset  # noqa: E402
from workload.modes.train_data import decoded_batches  # noqa: E402
from workload.spec import DataSpec  # noqa: E402


def read_values(dataset: tf.data.Dataset) -> list[bytes]:
    return [value for _, values in dataset for value in values.numpy()]


@pytest.fixture(scope="module")
def three_partitions(kafka3: KafkaHandle) -> str:
    topic = kafka3.create_topic("input", partitions=3)
    fill(kafka3, topic, partitions=3, per_partition=100)
    return topic


def test_kafka_4_is_refused_at_once_naming_the_reason_and_the_fix(kafka: KafkaHandle) -> None:
    refusal = tensorflow_io_refusal(KafkaConnection(kafka.bootstrap_servers))
    assert refusal is not None
    assert f"Kafka at {kafka.bootstrap_servers} is version 4.0 or newer" in refusal
    assert "KIP-896" in refusal and "spec.kafka.client: librdkafka" in refusal


def test_kafka_3_is_not_refused(kafka3: KafkaHandle) -> None:
    assert tensorflow_io_refusal(KafkaConnection(kafka3.bootstrap_servers)) is None


def test_replay_reads_every_record_of_every_partition_once(
        kafka3: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka3.bootstrap_servers)
    offsets = partition_bounds(connection, three_partitions)
    values = read_values(replay_dataset(connection, three_partitions, offsets, read_batch=16))
    assert sorted(values) == sorted(f"{p},{i}".encode() for p in range(3) for i in range(100))


def test_replay_reads_exactly_the_offset_ranges_including_single_records(
        kafka3: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka3.bootstrap_servers)
    ranges = {0: (10, 43), 1: (99, 100), 2: (5, 6)}
    values = read_values(replay_dataset(connection, three_partitions, ranges, read_batch=8))
    expected = [f"0,{i}".encode() for i in range(10, 43)] + [b"1,99", b"2,5"]
    assert sorted(values) == sorted(expected)


def test_batches_are_no_larger_than_the_read_batch(
        kafka3: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka3.bootstrap_servers)
    dataset = replay_dataset(connection, three_partitions, {0: (0, 100)}, read_batch=32)
    sizes = [int(values.shape[0]) for _, values in dataset]
    assert sizes == [32, 32, 32, 4]


def test_replay_feeds_batch_decoding(kafka3: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka3.bootstrap_servers)
    data = DataSpec.model_validate({"features": 2})
    offsets = partition_bounds(connection, three_partitions)
    decoded = [batch for _, _, batch in decoded_batches(connection, three_partitions, offsets,
                                                        data, "tensorflow-io")]
    assert sum(len(batch.labels) for batch in decoded) == 300
    assert sum(float(batch.labels.sum()) for batch in decoded) == 150


def test_a_range_beyond_the_records_fails_instead_of_shortening_the_epoch(
        kafka3: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka3.bootstrap_servers)
    dataset = replay_dataset(connection, three_partitions, {1: (90, 120)}, read_batch=64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="short read"):
        read_values(dataset)


def test_an_empty_topic_is_an_error(kafka3: KafkaHandle) -> None:
    connection = KafkaConnection(kafka3.bootstrap_servers)
    topic = kafka3.create_topic("empty", partitions=2)
    offsets = partition_bounds(connection, topic)
    assert offsets == {0: (0, 0), 1: (0, 0)}
    with pytest.raises(KafkaReadError, match="no records"):
        replay_dataset(connection, topic, offsets)


def test_batch_stream_reads_all_partitions_of_a_consumer_group(
        kafka3: KafkaHandle, three_partitions: str) -> None:
    connection = KafkaConnection(kafka3.bootstrap_servers)
    stream = batch_stream(connection, three_partitions, "cg-input-test",
                          stream_timeout_ms=2000, message_poll_timeout_ms=2000)
    values: list[bytes] = []
    for mini in stream:
        for batch_values, _ in mini.batch(1000):
            values.extend(batch_values.numpy())
    assert len(values) == 300 and len(set(values)) == 300


def test_replay_order_is_the_same_on_every_run_partitions_in_turn(
        kafka3: KafkaHandle) -> None:
    """The order the librdkafka reader gives too: partitions in id order, offsets in order."""
    topic = kafka3.create_topic("order", partitions=2)
    fill(kafka3, topic, partitions=2, per_partition=2500)
    connection = KafkaConnection(kafka3.bootstrap_servers)
    offsets = partition_bounds(connection, topic)
    runs = [read_values(replay_dataset(connection, topic, offsets)) for _ in range(2)]
    expected = [f"{partition},{index}".encode() for partition in range(2)
                for index in range(2500)]
    assert runs[0] == runs[1] == expected
