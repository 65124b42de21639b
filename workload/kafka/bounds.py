"""Partition bounds: where each partition of a topic starts and ends, captured at one moment.

A bounded phase (train, evaluate) reads exactly the records between these
offsets, however the topic grows meanwhile. Bounds are librdkafka's
watermarks: the low one moves when retention deletes records, the high one
(the end offset) is one past the last record written.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from workload.kafka.admin import METADATA_TIMEOUT_S, topic_partitions
from workload.kafka.connection import KafkaConnection

RETRY_S = 0.1
"""Seconds between attempts while a partition has no leader."""

HEALING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
           KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TRANSPORT, KafkaError._TIMED_OUT}
"""Errors of a watermark request that heal by themselves (librdkafka marks few as retriable)."""

PartitionOffsets = dict[int, tuple[int, int]]
"""Per partition: (first offset to read, end offset = one past the last record)."""


def partition_bounds(connection: KafkaConnection, topic: str,
                     timeout_s: float = METADATA_TIMEOUT_S) -> PartitionOffsets:
    """Each partition's (low watermark, end offset) now; `TopicMissing` if there is no topic."""
    partitions = topic_partitions(connection, topic, timeout_s)
    consumer = Consumer(connection.librdkafka_config(owned={"group.id": "streamtrain-bounds",
                                                             "enable.auto.commit": False}))
    try:
        return {partition: watermarks(consumer, TopicPartition(topic, partition), timeout_s)
                for partition in partitions}
    finally:
        consumer.close()


def watermarks(consumer: Consumer, partition: TopicPartition,
               timeout_s: float = METADATA_TIMEOUT_S) -> tuple[int, int]:
    """(low, high) watermark of one partition, asked of its leader now; errors that heal (a
    leader still being elected, just after a topic is created or a broker restarts) are
    retried within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=timeout_s,
                                                       cached=False)
            return int(low), int(high)
        except KafkaException as error:
            code = error.args[0].code()
            if ((code not in HEALING and not error.args[0].retriable())
                    or time.monotonic() > deadline):
                raise
            time.sleep(RETRY_S)


def end_offsets(connection: KafkaConnection, topic: str) -> dict[int, int]:
    """Each partition's end offset now."""
    return {p: end for p, (_, end) in partition_bounds(connection, topic).items()}


def record_count(offsets: Mapping[int, tuple[int, int]]) -> int:
    """Records in the offset ranges."""
    return sum(max(0, stop - start) for start, stop in offsets.values())
