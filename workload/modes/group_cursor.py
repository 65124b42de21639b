"""A consumer group's committed offsets on one topic, moved only when the work behind them is safe.

The evaluator commits offsets itself, after its ledger is saved, instead of
letting a consumer commit them as records are read. This module is that
commit, plus the topic's current bounds, through kafka-python: it assigns
partitions by hand (no group membership, no rebalances) and commits with
`enable_auto_commit` off, so the group's offsets are exactly what the code
says, and `kafka-consumer-groups --describe` shows them with their lag.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from workload.kafka_connection import KafkaConnection

METADATA_TIMEOUT_S = 30.0
"""How long to wait for the topic's partitions to be known before giving up."""


class TopicMissing(LookupError):
    """The topic does not exist (or has no partitions) on the cluster."""


class GroupCursor:
    """A consumer group's position on a topic: read the topic's bounds, commit offsets."""

    def __init__(self, connection: KafkaConnection, topic: str, consumer_group: str) -> None:
        self.topic = topic
        self.consumer_group = consumer_group
        self._consumer = KafkaConsumer(
            group_id=consumer_group,
            enable_auto_commit=False,
            **connection.kafka_python_settings(),
        )
        try:
            self.partitions = self._find_partitions()
        except BaseException:
            self._consumer.close(autocommit=False)
            raise
        self._consumer.assign(self.partitions)

    def _find_partitions(self) -> list[TopicPartition]:
        deadline = time.monotonic() + METADATA_TIMEOUT_S
        while True:
            found = self._consumer.partitions_for_topic(self.topic)
            if found:
                return [TopicPartition(self.topic, p) for p in sorted(found)]
            if time.monotonic() > deadline:
                raise TopicMissing(f"topic {self.topic!r} does not exist")
            time.sleep(0.5)

    def bounds(self) -> dict[int, tuple[int, int]]:
        """Each partition's first and next-to-be-written offsets (`[start, end)`)."""
        starts = self._consumer.beginning_offsets(self.partitions)
        ends = self._consumer.end_offsets(self.partitions)
        return {tp.partition: (int(starts[tp]), int(ends[tp])) for tp in self.partitions}

    def end_offsets(self) -> dict[int, int]:
        """Each partition's end offset now."""
        ends = self._consumer.end_offsets(self.partitions)
        return {tp.partition: int(ends[tp]) for tp in self.partitions}

    def commit(self, offsets: dict[int, int]) -> None:
        """Commit `offsets` (per partition, the next offset to read) for the group."""
        self._consumer.commit({
            TopicPartition(self.topic, partition): OffsetAndMetadata(offset, "", -1)
            for partition, offset in offsets.items()
        })

    def committed(self) -> dict[int, int | None]:
        """The group's committed offset per partition (`None` where it never committed)."""
        return {tp.partition: self._consumer.committed(tp) for tp in self.partitions}

    def close(self) -> None:
        """Leave without committing anything more."""
        self._consumer.close(autocommit=False)

    def __enter__(self) -> GroupCursor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
