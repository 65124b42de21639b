"""Send malformed records, with why they were refused, to a dead-letter topic.

Each record keeps its original key and value; the reason (one of
`decode.BAD_REASONS`) travels in the `streamtrain.reason` header, the first
missing column of a `missing_field` record in `streamtrain.field`, and the
topic it came from in `streamtrain.source`, so a person or a repair job can
find, fix and replay it. Writing is at-least-once: a run that restarts may
send the same bad record again.
"""

from __future__ import annotations

from collections.abc import Iterable

from workload.data.decode import BadRecord
from workload.kafka.admin import ensure_topic
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import BatchProducer

REASON_HEADER = "streamtrain.reason"
"""Header with the reason a record was refused."""

FIELD_HEADER = "streamtrain.field"
"""Header with the first missing column (`missing_field` records only)."""

SOURCE_HEADER = "streamtrain.source"
"""Header with the topic the record was read from."""


def dead_letter_headers(reason: str, source_topic: str,
                        field: str | None) -> list[tuple[str, bytes]]:
    """The headers of a dead letter: its reason, the topic it came from, the missing column."""
    headers = [(REASON_HEADER, reason.encode()), (SOURCE_HEADER, source_topic.encode())]
    if field is not None:
        headers.append((FIELD_HEADER, field.encode()))
    return headers


def send_dead_letters(
    connection: KafkaConnection, topic: str, source_topic: str, records: Iterable[BadRecord]
) -> int:
    """Write `records` to `topic` (created with one partition if missing) and wait until the
    broker has them all.

    Returns how many were sent; raises `ProduceError` if any was refused. An empty
    key is sent as no key (the readers cannot tell the two apart).
    """
    batch = list(records)
    if not batch:
        return 0
    ensure_topic(connection, topic, 1)
    producer = BatchProducer(connection)
    for key, value, reason, field in batch:
        headers: list[tuple[str, str | bytes | None]] = list(
            dead_letter_headers(reason, source_topic, field))
        producer.send(topic, key or None, value, headers=headers)
    producer.flush(f"dead-letter topic {topic!r}")
    return len(batch)
