"""Read, process and write exactly once: a consumer-group member and a transactional producer.

Kafka's transactions (KIP-98) make a read-process-write loop exactly once:
the records written and the input offsets they answer are committed in one
transaction, so a `read_committed` reader downstream sees each input
record's output once or not at all, whatever fails in between. KIP-447
(brokers 2.5+) fences a member that the consumer group has moved on from:
its offsets carry the group's generation, and a stale one is refused. So one
transactional producer per process serves whatever partitions the group
assigns it.

How the link is used (`workload.modes.serve`): `poll` records, `produce`
outputs (the first one begins a transaction), `consumed` the records
answered, `commit` when due (`send_offsets_to_transaction` with the offsets
after the last record answered per partition, then `commit_transaction`).

Errors, as librdkafka documents them (INTRODUCTION.md, "Transactional
Producer"):
- retriable (`KafkaError.retriable()`): the same call again, for up to
  `RETRY_FOR_S`; a broker restart is ridden out this way;
- abortable (`txn_requires_abort()`): `abort_transaction`, then every owned
  partition is rewound to the group's committed offsets, where the aborted
  outputs' inputs start, and the next record begins a new transaction;
- fatal, or no flag at all (a fenced producer: another process took this
  `transactional.id`): `TransactionFatal`, and the process exits to be
  restarted with a new producer.

Traps avoided:
- an abort right after a transaction's first produce can fail with
  INVALID_TXN_STATE (librdkafka#4849): the first output of each transaction
  asks for its delivery report, and an abort first waits for it;
- short transactions are slow (confluent-kafka-python#967): the caller
  commits every `serve.batchSize` records or once the first record may have
  waited `serve.maxLatencyMs` (`due`);
- rebalances: an open transaction is committed when partitions are revoked
  (its offsets are the group's last word on them) and aborted when they are
  lost (the group has moved on: they must not be committed). Records fetched
  in the same `consume` call as a rebalance are dropped and their partitions
  rewound, since they may belong to the assignment that ended.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from workload.kafka.arrivals import Arrivals
from workload.kafka.bounds import watermarks
from workload.kafka.connection import KafkaConnection
from workload.kafka.group_reader import GROUP_DEFAULTS

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "batch.size": 1 << 20,
    "queue.buffering.max.messages": 1_000_000,
    "compression.type": "lz4",
    "retry.backoff.ms": 20,
    "retry.backoff.max.ms": 40,
}
"""Producer settings unless the job sets them: batches of up to 10,000 records or 1 MiB, 5 ms to
fill one (a transaction waits for its records anyway at commit), lz4. A retried request waits
20 ms first, then 40 at most, not librdkafka's 100 doubling up to 1 s: the broker answers a
transaction's AddOffsetsToTxn with CONCURRENT_TRANSACTIONS until the previous one's commit
markers are written (transactions v1, which librdkafka speaks). With the default backoff a
commit right after a slow one took 100-170 ms more on the local broker; doubling from 20 ms,
`send_offsets_to_transaction` still took 100-263 ms 13 times in 25 s at 1,000 records/s right
after a busy spell (retries 20, 60, 140, 300 ms after the first ask, overshooting markers written
in 150): the single stalls that set the p99 of produce -> visible (178 ms there, 84-100 ms
with this cap). Both Kafka's Java client (KAFKA-5477) and librdkafka retry that
answer to AddPartitionsToTxn after 20 ms already."""

PRODUCER_OWNED: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "delivery.report.only.error": False,
    "transaction.timeout.ms": 60_000,
}
"""What the link depends on. The broker aborts a transaction left open this long (a replica
killed mid-transaction and not restarted); 60 s rides out a broker restart with a transaction
open."""

CONSUMER_DEFAULTS: dict[str, Any] = {**GROUP_DEFAULTS, "queued.max.messages.kbytes": 32768}
"""Consumer settings unless the job sets them: a group member's, reading ahead up to 32 MiB
rather than 8. A replica reads faster than a learner: with 8 MiB queued (about 45,000 tutorial
records, under a second of serving) the client had run dry 8 times in 28 reads of 200,000
records and one replica served 54,000-55,000 records/s; with 32 MiB, 55,000-75,000 in the
same runs, alternated on one broker (at most 24 MiB more resident memory)."""

CONSUMER_OWNED: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": False,
    "isolation.level": "read_committed",
}
"""Offsets move only in transactions; an input written by transactions is read once committed."""

RETRY_FOR_S = 60.0
"""Seconds a retriable transactional call is retried before the process gives up and exits."""

CALL_TIMEOUT_S = 30.0
"""Seconds one transactional call may block."""

HUNG_AFTER_S = CALL_TIMEOUT_S + 15.0
"""Seconds after which a transactional call that has not returned is taken as hung: librdkafka
does not always honour the timeout (`send_offsets_to_transaction` waits for a group
coordinator that a restarted broker's metadata dropped, librdkafka#5456 and #5511). The
process then exits to be restarted with a new producer, which fences the stuck one."""

FIRST_DELIVERY_WAIT_S = 15.0
"""Seconds an abort waits for its transaction's first delivery report (librdkafka#4849)."""

COMMITTED_TIMEOUT_S = 30.0
"""Seconds to wait for the group's committed offsets when rewinding."""

Result = TypeVar("Result")

Headers = list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None]
"""Kafka record headers: in order (a name may repeat), as consumed records hand them over."""


class TransactionFatal(RuntimeError):
    """The producer cannot go on (fenced by a newer instance, or a fatal error): exit, restart."""


class TransactionAborted(RuntimeError):
    """The open transaction had to be aborted; its inputs were rewound to be answered again."""


class ExactlyOnceLink:
    """One member of `group` reading `topic`, answering through one transactional producer."""

    def __init__(self, connection: KafkaConnection, topic: str, group: str,
                 transactional_id: str,
                 on_settled: Callable[[bool], None] | None = None,
                 transactional: bool = True) -> None:
        """`on_settled(committed)` is called as each transaction ends: `True` once committed,
        `False` once aborted (also when a rebalance commits or aborts it). `transactional`
        False is the benchmark's baseline only: the same loop at-least-once (outputs flushed,
        then the offsets committed by the consumer), to show what transactions cost."""
        self.transactional = transactional
        self.topic = topic
        self.group = group
        self.transactional_id = transactional_id
        self.owned: set[int] = set()
        """Partitions assigned to this member now."""
        self.positions: dict[int, int] = {}
        """Per partition answered in the open transaction: the offset after its last record."""
        self.pending = 0
        """Records answered in the open transaction (what `commit` makes visible)."""
        self.opened_at: float | None = None
        """`time.monotonic()` when the open transaction began (`None`: none is open)."""
        self.waiting_since: float | None = None
        """`time.monotonic()` since when the open transaction's first records may have waited
        (`None`: none is open; `workload.kafka.arrivals`): what `due` counts its age from."""
        self._arrivals = Arrivals(time.monotonic())
        self.rebalances = 0
        """Assignments, revokes and losses so far."""
        self.aborts = 0
        """Transactions aborted so far."""
        self._first_delivered = False
        self._produced = 0
        self._on_settled = on_settled
        self._reset_to_end = connection.settings.get("auto.offset.reset") in ("latest", "end")
        owned = {**PRODUCER_OWNED, "transactional.id": transactional_id}
        if not transactional:
            owned = {key: value for key, value in owned.items()
                     if not key.startswith("transaction")}
        self._producer = Producer(connection.librdkafka_config(owned, PRODUCER_DEFAULTS))
        if transactional:
            self._retry(lambda: self._producer.init_transactions(CALL_TIMEOUT_S),
                        "init_transactions")
        self._consumer = Consumer(connection.librdkafka_config(
            {**CONSUMER_OWNED, "group.id": group}, CONSUMER_DEFAULTS))
        self._consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked,
                                 on_lost=self._lost)

    # ------------------------------------------------------------ reading

    def poll(self, max_records: int, timeout_s: float, gather_s: float = 0.0) -> list[Message]:
        """Up to `max_records` records of owned partitions (possibly none), waiting at most
        `timeout_s` for the first one, then `gather_s` at most for more. A fatal consumer
        error raises `TransactionFatal`."""
        before = self.rebalances
        # The first record is waited for; the rest are what has arrived with it or comes within
        # `gather_s` (`consume` alone would wait the whole timeout for `max_records`, holding a
        # lone record back). What is queued already is asked for first, to tell records that
        # waited in the client's queue from records that have just come.
        asked = time.monotonic()
        first = self._consumer.poll(0)
        queued = first is not None
        if first is None:
            self._arrivals.emptied(asked)
            if timeout_s > 0:
                first = self._consumer.poll(timeout_s)
        if first is not None:
            self._arrivals.read(queued, time.monotonic())
        rest = (self._consumer.consume(num_messages=max_records - 1, timeout=gather_s)
                if first is not None and max_records > 1 else [])
        if len(rest) < max_records - 1:
            self._arrivals.emptied(time.monotonic())
        messages = [] if first is None else [first, *rest]
        good: list[Message] = []
        for message in messages:
            error = message.error()
            if error is None:
                good.append(message)
            elif error.fatal():
                raise TransactionFatal(f"consumer group {self.group!r} on topic {self.topic!r}: "
                                       f"{error.str()}")
            else:
                log.warning("consumer group %s: %s", self.group, error.str())
        if self.rebalances != before and good:
            # Some of these may have been fetched for the assignment that just ended.
            self._rewind(self.owned)
            return []
        return good

    def consumed(self, messages: Sequence[Message]) -> None:
        """`messages` have been answered in the open transaction: their offsets go with it."""
        for message in messages:
            self.positions[message.partition() or 0] = (message.offset() or 0) + 1
        self.pending += len(messages)

    # ------------------------------------------------------------ writing

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None, partition: int = -1) -> None:
        """Queue one record in the open transaction (beginning one if none is open).

        `TransactionAborted` when the producer's state asks for an abort (which is done).
        """
        if self.opened_at is None:
            self._begin()
        first = self._produced == 0
        while True:
            try:
                if first:
                    self._producer.produce(topic, value, key, partition=partition,
                                           headers=headers, on_delivery=self._delivered)
                else:
                    self._producer.produce(topic, value, key, partition=partition,
                                           headers=headers)
                self._produced += 1
                return
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as error:
                self._fail(error.args[0], "produce")

    def produce_all(self, topic: str, records: Iterable[tuple[bytes, bytes | None,
                                                              Headers | None, int]]) -> int:
        """Queue (value, key, headers, partition) records to `topic` in the open transaction
        (beginning one if none is open), as `produce` does one; how many were queued."""
        produce, queued = self._producer.produce, 0
        for value, key, headers, partition in records:
            if self.opened_at is None or self._produced == 0:
                self.produce(topic, value, key, headers, partition)
            else:
                try:
                    produce(topic, value, key, partition=partition, headers=headers)
                    self._produced += 1
                except (BufferError, KafkaException):
                    self.produce(topic, value, key, headers, partition)
            queued += 1
        return queued

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        self._first_delivered = True
        if error is not None:
            log.warning("transaction of %s: a delivery failed: %s", self.transactional_id,
                        error.str())

    def _begin(self) -> None:
        try:
            if self.transactional:
                self._producer.begin_transaction()
        except KafkaException as error:
            self._fail(error.args[0], "begin_transaction")
        self.opened_at = time.monotonic()
        self.waiting_since = min(self.opened_at, self._arrivals.since)
        self._first_delivered = False
        self._produced = 0

    def serve(self) -> None:
        """Serve pending delivery callbacks without waiting."""
        self._producer.poll(0)

    def due(self, max_records: int, max_latency_s: float) -> bool:
        """Whether the open transaction holds `max_records` records or its first records may
        have waited `max_latency_s` seconds (`waiting_since`)."""
        return self.waiting_since is not None and (
            self.pending >= max_records
            or time.monotonic() - self.waiting_since >= max_latency_s)

    def commit(self, rewind: bool = True) -> int:
        """Commit the open transaction with the offsets it answered; the records it made
        visible (0 when none was open). `TransactionAborted` when it had to be aborted (then,
        with `rewind`, owned partitions are rewound)."""
        if self.opened_at is None:
            return 0
        offsets = [TopicPartition(self.topic, partition, offset)
                   for partition, offset in sorted(self.positions.items())
                   if partition in self.owned]
        if not self.transactional:
            return self._commit_plainly(offsets)
        try:
            if offsets:
                self._retry(lambda: self._producer.send_offsets_to_transaction(
                    offsets, self._consumer.consumer_group_metadata(), CALL_TIMEOUT_S),
                    "send_offsets_to_transaction")
            self._retry(lambda: self._producer.commit_transaction(CALL_TIMEOUT_S),
                        "commit_transaction")
        except KafkaException as error:
            self._fail(error.args[0], "commit", rewind)
        committed = self.pending
        self._closed()
        if self._on_settled is not None:
            self._on_settled(True)
        return committed

    def _commit_plainly(self, offsets: list[TopicPartition]) -> int:
        """The baseline's commit: wait for the outputs, then commit the offsets."""
        self._producer.flush(CALL_TIMEOUT_S)
        if offsets:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        committed = self.pending
        self._closed()
        if self._on_settled is not None:
            self._on_settled(True)
        return committed

    def abort(self, why: str, rewind: bool = True) -> None:
        """Abort the open transaction and (with `rewind`) seek owned partitions back to the
        committed offsets, where the aborted records' inputs start."""
        self.aborts += 1
        log.warning("transaction of %s aborted (%s): its %d records are answered again",
                    self.transactional_id, why, self.pending)
        if self.opened_at is not None:
            self._await_first_delivery()
            try:
                self._retry(lambda: self._producer.abort_transaction(CALL_TIMEOUT_S),
                            "abort_transaction")
            except KafkaException as error:
                raise TransactionFatal(f"abort_transaction: {error.args[0].str()}") from None
        self._closed()
        if self._on_settled is not None:
            self._on_settled(False)
        if rewind:
            self._rewind(self.owned)

    def _await_first_delivery(self) -> None:
        if self._produced == 0:
            return
        deadline = time.monotonic() + FIRST_DELIVERY_WAIT_S
        while not self._first_delivered and time.monotonic() < deadline:
            self._producer.poll(0.05)

    def _closed(self) -> None:
        self.opened_at = None
        self.waiting_since = None
        self.pending = 0
        self.positions.clear()

    def _fail(self, error: KafkaError, call: str, rewind: bool = True) -> None:
        """An error that retrying did not cure: abort (abortable) or give up (anything else)."""
        if error.txn_requires_abort():
            self.abort(f"{call}: {error.str()}", rewind)
            raise TransactionAborted(f"{call}: {error.str()}")
        raise TransactionFatal(f"{call}: {error.str()}"
                               + (" (fenced by a newer producer with this transactional.id)"
                                  if error.code() == KafkaError._FENCED else ""))

    def _retry(self, call: Callable[[], Result], what: str) -> Result:
        """`call()`, again while it fails with a retriable error, for up to `RETRY_FOR_S`."""
        deadline = time.monotonic() + RETRY_FOR_S
        tries = 0
        while True:
            try:
                return self._bounded(call, what)
            except KafkaException as raised:
                error: KafkaError = raised.args[0]
                if not error.retriable() or time.monotonic() > deadline:
                    raise
                tries += 1
                log.log(logging.WARNING if tries == 1 else logging.DEBUG,
                        "%s of %s: %s; retrying", what, self.transactional_id, error.str())
                time.sleep(0.1)

    def _bounded(self, call: Callable[[], Result], what: str) -> Result:
        """`call()` in a thread of its own; `TransactionFatal` if it has not returned after
        `HUNG_AFTER_S` (the call releases the GIL while it waits, so this thread can tell)."""
        outcome: list[Result] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                outcome.append(call())
            except BaseException as error:  # handed to the caller's thread
                failure.append(error)

        worker = threading.Thread(target=run, name=f"kafka-{what}", daemon=True)
        worker.start()
        worker.join(HUNG_AFTER_S)
        if worker.is_alive():
            raise TransactionFatal(f"{what} of {self.transactional_id} has not returned after "
                                   f"{HUNG_AFTER_S:.0f} s (librdkafka#5456): restarting")
        if failure:
            raise failure[0]
        return outcome[0]

    # ------------------------------------------------------------ the group

    def _assigned(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.rebalances += 1
        self.owned |= {tp.partition for tp in partitions}

    def _revoked(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.rebalances += 1
        revoked = {tp.partition for tp in partitions}
        if self.opened_at is not None:
            try:
                # The group's last word on these partitions is this transaction.
                self.commit(rewind=False)
            except TransactionAborted:
                # Whoever owns the revoked ones next starts at the committed offsets; the ones
                # kept (a cooperative rebalance) are rewound there.
                self._rewind(self.owned - revoked)
        self.owned -= revoked

    def _lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.rebalances += 1
        log.warning("consumer group %s: partitions %s lost (session expired)", self.group,
                    sorted(tp.partition for tp in partitions))
        self.owned -= {tp.partition for tp in partitions}
        if self.opened_at is not None:
            with_lost = self.pending
            self.abort(f"partitions lost with {with_lost} records in the transaction",
                       rewind=False)

    def _rewind(self, partitions: set[int]) -> None:
        """Seek `partitions` to the group's committed offsets (or where a new group starts)."""
        if not partitions:
            return
        wanted = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        committed = self._consumer.committed(wanted, timeout=COMMITTED_TIMEOUT_S)
        for tp in committed:
            if tp.offset < 0:
                low, high = watermarks(self._consumer, TopicPartition(self.topic, tp.partition))
                tp.offset = high if self._reset_to_end else low
            try:
                self._consumer.seek(tp)
            except KafkaException as error:
                # Not fetching yet (just assigned): it starts at the committed offset anyway.
                log.info("rewind of partition %d to %d: %s", tp.partition, tp.offset,
                         error.args[0].str())

    # ------------------------------------------------------------ the end

    def close(self) -> int:
        """Commit what is open, leave the group, flush; the records the last commit made visible.
        A failure to commit on the way out is logged: the records are answered again by the
        partitions' next owner."""
        committed = 0
        try:
            committed = self.commit()
        except (TransactionAborted, TransactionFatal) as error:
            log.warning("closing %s: %s", self.transactional_id, error)
        self._consumer.close()
        self._producer.flush(CALL_TIMEOUT_S)
        return committed
