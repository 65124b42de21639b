"""Set-up and checks shared by the serving tests: a serving spec, and what a downstream
`read_committed` consumer sees on the output topic."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from tests.integration.modes_support import job_spec
from workload.kafka.admin import TopicMissing, topic_partitions
from workload.kafka.connection import KafkaConnection
from workload.spec import StreamingTrainingJobSpec


def serve_spec(bootstrap: str, output: Path, input_topic: str, output_topic: str,
               **serve: Any) -> StreamingTrainingJobSpec:
    """A job that serves `input_topic` into `output_topic` with the model in `output`; `serve`
    overrides serve settings (and `data`, `kafka`, `model`, `online`: those sections)."""
    settings = {"inputTopic": input_topic, "outputTopic": output_topic,
                "consumerGroup": f"{input_topic}-serve", "streamTimeoutMs": 3000, **serve}
    sections: dict[str, Any] = {name: settings.pop(name) for name in ("data", "kafka", "model", "online")
                                if name in settings}
    return job_spec(bootstrap, output, serve=settings, **sections)


@dataclass(frozen=True)
class Prediction:
    """One record of the output topic as a downstream consumer reads it."""

    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    value: dict[str, Any]
    partition: int
    """The output record's own partition."""

    @property
    def source(self) -> tuple[int, int]:
        """The input record it answers: (partition, offset)."""
        return int(self.value["partition"]), int(self.value["offset"])


def read_committed(bootstrap: str, topic: str, timeout_s: float = 60.0,
                   settle_s: float = 0.0) -> list[Any]:
    """Every committed record of `topic`, read with `isolation.level=read_committed` from the
    start to the end of each partition (open transactions must have ended first; with
    `settle_s`, the end is looked up again until it stays the same that long)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": False, "fetch.wait.max.ms": 50})
    deadline = time.monotonic() + timeout_s
    try:
        partitions = _partitions_once_made(bootstrap, topic, deadline)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[Any] = []
        ends = _ends(consumer, topic, partitions)
        stable_since = time.monotonic()
        while True:
            for message in consumer.consume(num_messages=10_000, timeout=0.2):
                if message.error() is None:
                    records.append(message)
            positions = {tp.partition: tp.offset for tp in consumer.position(
                [TopicPartition(topic, p) for p in partitions])}
            if all(positions[p] >= ends[p] for p in partitions):
                now_ends = _ends(consumer, topic, partitions)
                if now_ends != ends:
                    ends, stable_since = now_ends, time.monotonic()
                elif time.monotonic() - stable_since >= settle_s:
                    return records
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic!r}: read to {positions}, end {ends}, "
                                   f"in {timeout_s} s (a transaction left open?)")
    finally:
        consumer.close()


def _partitions_once_made(bootstrap: str, topic: str, deadline: float) -> list[int]:
    """The topic's partitions, once the topic exists (the server creates its output topic)."""
    while True:
        try:
            return topic_partitions(KafkaConnection(bootstrap), topic, timeout_s=5)
        except TopicMissing:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


NO_LEADER_YET = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                           KafkaError.UNKNOWN_TOPIC_OR_PART})
"""What a broker answers for a topic whose partitions have no leader yet."""


def _ends(consumer: Consumer, topic: str, partitions: list[int],
          attempts: int = 50) -> dict[int, int]:
    """Each partition's end offset; a topic made a moment ago may not have its leaders yet
    (`NOT_LEADER_FOR_PARTITION`, retriable): asked again, up to `attempts` times."""
    for attempt in range(attempts):
        try:
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in partitions}
        except KafkaException as error:
            if error.args[0].code() not in NO_LEADER_YET or attempt == attempts - 1:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def read_predictions(bootstrap: str, topic: str, timeout_s: float = 60.0,
                     settle_s: float = 0.0) -> list[Prediction]:
    """The output topic's committed predictions."""
    return [Prediction(message.key(), tuple(message.headers() or ()),
                       json.loads(message.value()), message.partition())
            for message in read_committed(bootstrap, topic, timeout_s, settle_s)]


def answered_twice(predictions: list[Prediction]) -> dict[tuple[int, int], int]:
    """Input records answered more than once, with how often."""
    counts = Counter(prediction.source for prediction in predictions)
    return {source: count for source, count in counts.items() if count > 1}


def produce_with_headers(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]],
                         partitions: int, start: int = 0) -> None:
    """Write `messages` round-robin over `partitions` (the topic is created if missing),
    message `i` with header `seq: i + start` (so a test can check headers are copied)."""
    from confluent_kafka import Message, Producer

    from workload.kafka.admin import ensure_topic

    ensure_topic(KafkaConnection(bootstrap), topic, partitions)
    failures: list[str] = []

    def delivered(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failures.append(error.str())

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                         "enable.idempotence": True, "delivery.report.only.error": True,
                         "on_delivery": delivered})
    for index, (key, value) in enumerate(messages):
        while True:
            try:
                producer.produce(topic, value, key, partition=(index + start) % partitions,
                                 headers=[("seq", str(index + start).encode())])
                break
            except BufferError:
                producer.poll(0.05)
    left = producer.flush(60)
    assert left == 0 and not failures, f"{left} records not delivered to {topic}: {failures[:3]}"
