"""A consumer-group member that reads batches and commits only what its caller has used.

What online learning reads through: the group assigns partitions (so a
second member, or a replacement pod, shares or takes over the topic), and
offsets move only when the caller says a batch is done (`enable.auto.commit`
off).

Where each partition resumes is the caller's truth, not the group's:
`positions` holds, for every partition this member (or the checkpoint it
resumed from, `resume_from`) has used records of, the offset after the last
one used. At each assignment a partition starts there; a partition never
used starts at the group's committed offset (or, for a new group, where
`auto.offset.reset` says). So a learner restarted from its checkpoint learns
again exactly the records its dead predecessor learned after that checkpoint
(even though they were committed), and a rebalance hands partitions back
where they were left, whether or not the last commit reached the broker.

Commits are the group's public cursor (lag, `kafka-consumer-groups`):
`done(batch)` commits asynchronously after each batch; before partitions are
taken away `before_revoke` lets the caller save its state, then they are
committed synchronously. `on_assign` tells the caller where every assigned
partition starts (a learner writes its first checkpoint there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from workload.kafka.batch import RecordBatch, batch_of
from workload.kafka.bounds import watermarks
from workload.kafka.connection import KafkaConnection

log = logging.getLogger(__name__)

GROUP_DEFAULTS = {
    "auto.offset.reset": "earliest",
    "fetch.wait.max.ms": 100,
    "queued.max.messages.kbytes": 8192,
}
"""librdkafka settings of a group member unless the job sets them: a new group starts at the
topic's first record (as the tutorial's datasets do); an idle fetch returns after 100 ms; at most
8 MiB of records wait in the client (about 48,000 tutorial records, seconds of learning; the
default 64 MiB, refilled at once after a broker comes back, showed as +50 MiB of resident memory
in a long run)."""

GROUP_OWNED = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": False,
}
"""Settings the member depends on: offsets move only through `done` and revokes."""

COMMITTED_TIMEOUT_S = 30.0
"""Seconds to wait for the group's committed offsets at an assignment."""

Positions = dict[int, int]
"""Per partition: the offset of the next record to use."""


class GroupReadError(RuntimeError):
    """The group cannot be read (a fatal client error); the message says why."""


class GroupReader:
    """A member of `group` on `topic`: `poll` batches, `done` each once it has been used."""

    def __init__(self, connection: KafkaConnection, topic: str, group: str, *,
                 resume_from: Mapping[int, int] | None = None,
                 before_revoke: Callable[[Positions], None] | None = None,
                 on_assign: Callable[[Positions], None] | None = None) -> None:
        self.topic = topic
        self.group = group
        self.positions: Positions = dict(resume_from or {})
        """Per partition ever used (here or by the checkpoint resumed from): where it resumes."""
        self.owned: set[int] = set()
        """Partitions assigned to this member now."""
        self.generations = 0
        """Assignments received so far (each rebalance that gives this member partitions)."""
        self._before_revoke = before_revoke
        self._on_assign = on_assign
        self._reset_to_end = connection.settings.get("auto.offset.reset") in ("latest", "end")
        self._consumer = Consumer(connection.librdkafka_config(
            {**GROUP_OWNED, "group.id": group}, GROUP_DEFAULTS))
        self._consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked,
                                 on_lost=self._lost)

    def poll(self, max_records: int, timeout_s: float) -> RecordBatch:
        """Up to `max_records` records (possibly none) waiting at most `timeout_s`."""
        messages = self._consumer.consume(num_messages=max_records, timeout=timeout_s)
        failures = [message for message in messages if message.error() is not None]
        for failure in failures:
            error: KafkaError = failure.error()  # type: ignore[assignment]
            if error.fatal():
                raise GroupReadError(f"consumer group {self.group!r} on topic {self.topic!r}: "
                                     f"{error.str()}")
            log.warning("consumer group %s: %s", self.group, error.str())
        return batch_of([m for m in messages if m.error() is None] if failures else messages)

    def done(self, batch: RecordBatch) -> None:
        """`batch` has been used: move past it and commit (asynchronously)."""
        owned = {p: offset for p, offset in batch.positions.items() if p in self.owned}
        if not owned:
            return
        self.positions.update(owned)
        self._commit(owned, asynchronous=True)

    def _commit(self, offsets: Mapping[int, int], asynchronous: bool) -> None:
        listed = [TopicPartition(self.topic, p, offset) for p, offset in offsets.items()]
        try:
            if asynchronous:
                self._consumer.commit(offsets=listed, asynchronous=True)
            else:
                self._consumer.commit(offsets=listed, asynchronous=False)
        except KafkaException as error:
            # The broker may be away; positions, not commits, say where reading resumes.
            log.warning("consumer group %s: commit of %s failed: %s", self.group,
                        dict(offsets), error)

    def _assigned(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.generations += 1
        fresh = [tp for tp in partitions if tp.partition not in self.positions]
        committed = consumer.committed(fresh, timeout=COMMITTED_TIMEOUT_S) if fresh else []
        for tp, known in zip(fresh, committed, strict=True):
            if known.offset >= 0:
                self.positions[tp.partition] = known.offset
            else:
                low, high = watermarks(consumer, TopicPartition(self.topic, tp.partition))
                self.positions[tp.partition] = high if self._reset_to_end else low
        for tp in partitions:
            tp.offset = self.positions[tp.partition]
        self.owned = {tp.partition for tp in partitions}
        consumer.assign(partitions)
        if self._on_assign is not None:
            self._on_assign(dict(self.positions))

    def _revoked(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if self._before_revoke is not None:
            self._before_revoke(dict(self.positions))
        owned = {tp.partition: self.positions[tp.partition]
                 for tp in partitions if tp.partition in self.positions}
        if owned:
            self._commit(owned, asynchronous=False)
        self._forget(consumer, partitions)

    def _lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.warning("consumer group %s: partitions %s lost (session expired)", self.group,
                    sorted(tp.partition for tp in partitions))
        self._forget(consumer, partitions)

    def _forget(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.owned -= {tp.partition for tp in partitions}
        consumer.unassign()

    def close(self) -> None:
        """Leave the group (a revoke: the caller saves, offsets are committed), close the client."""
        self._consumer.close()

    def __enter__(self) -> GroupReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
