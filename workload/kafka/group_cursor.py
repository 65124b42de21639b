"""A consumer group's committed offsets on one topic, moved only when the work behind them is safe.

The evaluator commits offsets itself, after its ledger is saved, instead of
letting a consumer commit them as records are read. This module is that
commit, plus the topic's current bounds: partitions are assigned by hand (no
group membership, no rebalances) and auto-commit is off, so the group's
offsets are exactly what the code says, and `kafka-consumer-groups
--describe` shows them with their lag.
"""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition

from workload.kafka.admin import METADATA_TIMEOUT_S, topic_partitions
from workload.kafka.bounds import PartitionOffsets, watermarks
from workload.kafka.connection import KafkaConnection


class GroupCursor:
    """A consumer group's position on a topic: read the topic's bounds, commit offsets."""

    def __init__(self, connection: KafkaConnection, topic: str, consumer_group: str) -> None:
        self.topic = topic
        self.consumer_group = consumer_group
        self.partitions = topic_partitions(connection, topic)
        self._consumer = Consumer(connection.librdkafka_config(owned={
            "group.id": consumer_group, "enable.auto.commit": False,
            "enable.auto.offset.store": False}))

    def _each(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, partition) for partition in self.partitions]

    def bounds(self) -> PartitionOffsets:
        """Each partition's first and next-to-be-written offsets (`[start, end)`)."""
        return {tp.partition: watermarks(self._consumer, tp) for tp in self._each()}

    def end_offsets(self) -> dict[int, int]:
        """Each partition's end offset now."""
        return {partition: end for partition, (_, end) in self.bounds().items()}

    def commit(self, offsets: dict[int, int]) -> None:
        """Commit `offsets` (per partition, the next offset to read) for the group; waits for
        the coordinator's answer."""
        self._consumer.commit(offsets=[TopicPartition(self.topic, partition, offset)
                                       for partition, offset in offsets.items()],
                              asynchronous=False)

    def committed(self) -> dict[int, int | None]:
        """The group's committed offset per partition (`None` where it never committed)."""
        found = self._consumer.committed(self._each(), timeout=METADATA_TIMEOUT_S)
        return {tp.partition: tp.offset if tp.offset >= 0 else None for tp in found}

    def close(self) -> None:
        """Leave without committing anything more."""
        self._consumer.close()

    def __enter__(self) -> GroupCursor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
