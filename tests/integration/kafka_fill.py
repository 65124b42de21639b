"""Filling test topics with records whose offsets are known: `p,i` at offset `i` of partition `p`."""

from __future__ import annotations

from tests.conftest import KafkaHandle


def fill(kafka: KafkaHandle, topic: str, partitions: int, per_partition: int,
         first: int = 0) -> None:
    """Write records `p,i` (key `i % 2`) for `i` in `first..first+per_partition-1` to each
    partition, through kafka-python (a client other than the one that reads them).

    One request in flight: a retried request (common just after a topic is created) must not
    overtake the next one, or offsets would not match `i`.
    """
    producer = kafka.producer(linger_ms=5, acks="all", max_in_flight_requests_per_connection=1)
    for partition in range(partitions):
        for index in range(first, first + per_partition):
            producer.send(topic, key=str(index % 2).encode(),
                          value=f"{partition},{index}".encode(), partition=partition)
    producer.flush()
    producer.close()
