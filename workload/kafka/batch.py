"""A batch of Kafka records as the readers hand it over: keys, values and where it leaves off.

librdkafka returns records as a list of message objects; a batch keeps only
what decoding and committing need (two lists of bytes and, per partition,
the offset after its last record), taken in one pass per field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from confluent_kafka import Message


@dataclass(frozen=True)
class RecordBatch:
    """Records in the order read; a missing key or value is `b""` (the decoder's "empty")."""

    keys: list[bytes]
    values: list[bytes]
    positions: dict[int, int] = field(default_factory=dict)
    """Per partition in the batch: the offset after its last record (where reading resumes)."""

    def __len__(self) -> int:
        return len(self.values)


def batch_of(messages: Sequence[Message]) -> RecordBatch:
    """The batch of error-free `messages` (in the order given)."""
    positions: dict[int, int] = {}
    for message in messages:
        positions[message.partition() or 0] = (message.offset() or 0) + 1
    return RecordBatch(
        keys=[message.key() or b"" for message in messages],
        values=[message.value() or b"" for message in messages],
        positions=positions,
    )
