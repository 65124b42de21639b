"""TensorFlow's tutorial datasets (tensorflow-io 0.37.1) on the local brokers: Kafka 4 refuses the
tutorial's reader as documented; Kafka 3.9 serves all of them. Run in the tensorflow-io set's
environment (`pytest --tensorflow-io`)."""

from __future__ import annotations

import pytest

from tests.conftest import KafkaHandle
from tests.integration.test_kafka_broker import write_rows

GROUP_SETTINGS = [
    "session.timeout.ms=7000",
    "max.poll.interval.ms=8000",
    "auto.offset.reset=earliest",
]


def test_the_tutorials_reader_fails_on_kafka_4_as_documented(kafka: KafkaHandle) -> None:
    """Why the default client is not tensorflow-io: its librdkafka 1.5.0 needs protocol
    versions Kafka 4.0 removed (KIP-896)."""
    import tensorflow as tf
    import tensorflow_io as tfio

    topic = kafka.create_topic("tutorial", 1)
    write_rows(kafka, topic, 10, 1)
    with pytest.raises(tf.errors.OpError, match="Required feature not supported by broker"):
        list(tfio.IODataset.from_kafka(topic, partition=0, servers=kafka.bootstrap_servers))


def test_tensorflow_io_reads_every_partition_with_from_kafka_on_kafka_3(
        kafka3: KafkaHandle) -> None:
    import tensorflow_io as tfio

    assert kafka3.broker.version.startswith("3.")
    topic = kafka3.create_topic("replay", 2)
    write_rows(kafka3, topic, 60, 2)
    seen = []
    for partition in range(2):
        dataset = tfio.IODataset.from_kafka(topic, partition=partition, start=0, stop=-1,
                                            servers=kafka3.bootstrap_servers)
        seen += [int(value.numpy().split(b",")[0]) for value, _key in dataset]
    assert sorted(seen) == list(range(60))


def test_tensorflow_io_group_dataset_commits_offsets_visible_to_the_admin_api(
    kafka3: KafkaHandle,
) -> None:
    import tensorflow_io as tfio

    topic = kafka3.create_topic("group", 2)
    write_rows(kafka3, topic, 40, 2)
    dataset = tfio.experimental.streaming.KafkaGroupIODataset(
        topics=[topic], group_id="it-group", servers=kafka3.bootstrap_servers,
        stream_timeout=3000, configuration=GROUP_SETTINGS)
    keys = [key.numpy() for _message, key in dataset]
    assert len(keys) == 40
    assert kafka3.committed("it-group") == {(topic, 0): 20, (topic, 1): 20}


def test_tensorflow_io_batch_dataset_yields_mini_batches(kafka3: KafkaHandle) -> None:
    import tensorflow_io as tfio

    topic = kafka3.create_topic("batches", 1)
    write_rows(kafka3, topic, 50, 1)
    dataset = tfio.experimental.streaming.KafkaBatchIODataset(
        topics=[topic], group_id="it-batches", servers=kafka3.bootstrap_servers,
        stream_timeout=3000, configuration=GROUP_SETTINGS)
    total = sum(sum(1 for _ in mini_batch) for mini_batch in dataset)
    assert total == 50
