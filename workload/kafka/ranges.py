"""Read exact offset ranges of a topic's partitions, in batches, through librdkafka.

What train replays every epoch and evaluate scores exactly once: the records
of `[start, stop)` per partition, nothing before, nothing after, nothing
missing. Each partition is read in offset order by a consumer of its own
(assigned, never subscribed: no group, no rebalance, no commit), partitions
one after another in id order, so every read of the same ranges yields the
same records in the same order (a resumed trainer relies on it).

Records come from `consume(num_messages=...)` in large batches, so there is
no Python call per record beyond taking its key and value. Consecutive
ranges of one partition continue where the last one stopped (records
already fetched past a range's end are kept for the next), without a seek.

A range that cannot be read as promised fails, naming the partition and the
offsets, instead of coming back short:
- records deleted before they were read (retention) fail at once: the
  consumer's `auto.offset.reset` is `error`;
- a partition that ends before `stop` (truncated) fails at its end;
- no record for `stall_timeout_s` (broker down, network) fails with the
  last error librdkafka reported.
Offsets a range holds without a record (transaction markers, compaction)
are skipped: the range is done once the partition's position reaches `stop`.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Mapping

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from workload.kafka.batch import RecordBatch, batch_of
from workload.kafka.bounds import watermarks
from workload.kafka.connection import KafkaConnection

DEFAULT_BATCH_RECORDS = 8192
"""Records per batch handed to decoding."""

STALL_TIMEOUT_S = 30.0
"""Seconds without a record (while the range is not done) before the read fails."""

POLL_S = 0.5
"""Seconds one `consume` call may wait for records."""

READER_DEFAULTS = {
    "fetch.wait.max.ms": 10,
    "max.partition.fetch.bytes": 8 << 20,
}
"""librdkafka settings of a range reader unless the job sets them: the broker answers a fetch
that finds too little data after 10 ms instead of 500, and a fetch brings up to 8 MiB of one
partition (librdkafka's default, 1 MiB, is about 6,000 tutorial records)."""

READER_OWNED = {
    "group.id": "streamtrain-range-reader",
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
    "auto.offset.reset": "error",
}
"""Settings a range reader depends on: never commit (the group id is never joined, only
required by the client), report a partition's end, and fail on offsets that are gone."""


class KafkaReadError(RuntimeError):
    """A range could not be read as its offsets promised; the message says where and why."""


class PartitionReader:
    """One partition of a topic, read forward from `start` by a consumer of its own."""

    def __init__(self, connection: KafkaConnection, topic: str, partition: int, start: int,
                 *, batch_records: int = DEFAULT_BATCH_RECORDS,
                 stall_timeout_s: float = STALL_TIMEOUT_S) -> None:
        self.topic = topic
        self.partition = partition
        self.position = start
        """The offset the next record read comes from (or after, where offsets have gaps)."""
        self._batch_records = batch_records
        self._stall_timeout_s = stall_timeout_s
        self._pending: list[Message] = []
        self._consumer = Consumer(connection.librdkafka_config(READER_OWNED, READER_DEFAULTS))
        self._consumer.assign([TopicPartition(topic, partition, start)])

    def read(self, stop: int) -> Iterator[RecordBatch]:
        """Batches of the records from `position` up to `stop` (exclusive), in offset order."""
        last_record = time.monotonic()
        last_error: KafkaError | None = None
        while self.position < stop:
            messages, ended_at = self._take(stop)
            good = self._within(messages, stop)
            if good:
                last_record = time.monotonic()
                self.position = (good[-1].offset() or 0) + 1
                yield batch_of(good)
            if ended_at is not None and self.position < stop:
                end = max(ended_at, self._end_now())  # the end reported may be an old one
                if end < stop:
                    raise KafkaReadError(
                        f"topic {self.topic!r} partition {self.partition} ends at offset "
                        f"{end}, before {stop}: records {end}..{stop - 1} are missing")
                if ended_at >= stop:
                    self.position = stop  # only markers (no records) were left in the range
            elif not good and time.monotonic() - last_record > self._stall_timeout_s:
                cause = f": {last_error.str()}" if last_error is not None else ""
                raise KafkaReadError(
                    f"no record from topic {self.topic!r} partition {self.partition} at offset "
                    f"{self.position} for {self._stall_timeout_s:.0f} s{cause}")
            if messages and messages[-1].error() is not None:
                last_error = messages[-1].error()

    def _take(self, stop: int) -> tuple[list[Message], int | None]:
        """Records fetched (kept ones first) and the offset where the partition ended, if seen."""
        if self._pending:
            pending, self._pending = self._pending, []
            return pending, None
        wanted = min(self._batch_records, max(stop - self.position, 1))
        messages = self._consumer.consume(num_messages=wanted, timeout=POLL_S)
        failures = [message for message in messages if message.error() is not None]
        if not failures:
            return messages, None
        ended_at = None
        for failure in failures:
            error = failure.error()
            assert error is not None
            if error.code() == KafkaError._PARTITION_EOF:
                ended_at = failure.offset()
            elif error.code() == KafkaError._AUTO_OFFSET_RESET or error.fatal():
                raise KafkaReadError(
                    f"topic {self.topic!r} partition {self.partition} at offset {self.position}: "
                    f"{error.str()} (records deleted by retention before they were read?)")
        return [message for message in messages if message.error() is None], ended_at

    def _end_now(self) -> int:
        """The partition's end offset, asked of the broker now."""
        _, high = watermarks(self._consumer, TopicPartition(self.topic, self.partition),
                             self._stall_timeout_s)
        return high

    def _within(self, messages: list[Message], stop: int) -> list[Message]:
        """The records before `stop`; those at or after it are kept for the next range."""
        if not messages or (messages[-1].offset() or 0) < stop:
            return messages
        cut = bisect.bisect_left(messages, stop, key=lambda message: message.offset() or 0)
        self._pending = messages[cut:]
        return messages[:cut]

    def close(self) -> None:
        """Drop the consumer (it never joined a group, so nothing is committed)."""
        self._consumer.close()

    def __enter__(self) -> PartitionReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def read_ranges(connection: KafkaConnection, topic: str, ranges: Mapping[int, tuple[int, int]],
                batch_records: int = DEFAULT_BATCH_RECORDS) -> Iterator[RecordBatch]:
    """Batches of every record in `ranges` (per partition `[start, stop)`), partitions in id
    order, each in offset order: the same ranges always yield the same sequence."""
    for partition, (start, stop) in sorted(ranges.items()):
        if stop <= start:
            continue
        with PartitionReader(connection, topic, partition, start,
                             batch_records=batch_records) as reader:
            yield from reader.read(stop)
