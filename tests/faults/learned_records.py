"""Which records an online learner learned, and how often within one consumer-group generation.

The learner logs a fingerprint of every record it learns with the time of its
batch (`tests/integration/online_child.py`). Matched against the records
produced (every value unique), the log shows records lost (never learned)
and records learned more than once. A record learned again is legitimate
when a group generation ended between the two learnings: offsets are
committed some time after records are read, so a new generation resumes from
the last commit and reads a few records again (Kafka's at-least-once group
semantics). Learned twice with no generation boundary between is a defect.

Boundaries come from two places: the events a fault scenario causes (a member
joins or leaves, the broker restarts), and the group's own generation records,
which the group coordinator writes to `__consumer_offsets` whenever a
rebalance completes. The latter also catch rebalances nobody asked for, such
as the learner's rejoin some seconds after a broker restart.
"""

from __future__ import annotations

import struct
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from kafka import KafkaConsumer, TopicPartition

OFFSETS_TOPIC = "__consumer_offsets"
GROUP_METADATA_KEY_VERSION = 2
"""`__consumer_offsets` key version of a group's metadata (0 and 1 are offset commits)."""


@dataclass(frozen=True)
class LearnedRecords:
    """What the learner's per-record log shows, against the records produced."""

    produced: int
    produced_distinct: int
    learnings: int
    learned_distinct: int
    missing: int
    """Produced records never learned."""
    foreign: int
    """Learned records that were never produced (would mean a broken log)."""
    twice_within_generation: int
    """Records learned twice with no generation boundary between the two learnings."""
    again_across_generations: Counter[str]
    """Learnings of a record again after a boundary, by the cause of the first boundary
    between them."""


def learned_records(produced: npt.NDArray[np.uint64], learned: npt.NDArray[np.void],
                    boundaries: list[tuple[float, str]]) -> LearnedRecords:
    """Match the learned log with the produced records; classify each repeated learning by
    whether a boundary `(time, cause)` lies after the record's previous learning and before it."""
    rows = learned[np.lexsort((learned["seconds"], learned["fingerprint"]))]
    prints, seconds = rows["fingerprint"], rows["seconds"]
    repeat = prints[1:] == prints[:-1]
    earlier, later, repeated = seconds[:-1][repeat], seconds[1:][repeat], prints[1:][repeat]
    ordered = sorted(boundaries)
    times = np.array([when for when, _ in ordered], dtype=np.float64)
    first_after = np.searchsorted(times, earlier, side="right")
    between = np.searchsorted(times, later, side="left") - first_after
    distinct = np.unique(prints)
    return LearnedRecords(
        produced=len(produced), produced_distinct=len(np.unique(produced)),
        learnings=len(rows), learned_distinct=len(distinct),
        missing=len(np.setdiff1d(produced, distinct)),
        foreign=len(np.setdiff1d(distinct, produced)),
        twice_within_generation=len(np.unique(repeated[between == 0])),
        again_across_generations=Counter(ordered[int(i)][1] for i in first_after[between > 0]))


def group_generations(bootstrap: str, group: str, timeout_s: float = 30) -> list[tuple[int, float]]:
    """`(generation, time.monotonic() at which it began)` of every generation of `group` the
    coordinator recorded, oldest first (read from `__consumer_offsets`)."""
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                           exclude_internal_topics=False)
    try:
        partitions = [TopicPartition(OFFSETS_TOPIC, p)
                      for p in sorted(reader.partitions_for_topic(OFFSETS_TOPIC) or ())]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        ends = reader.end_offsets(partitions)
        wall_to_monotonic = time.monotonic() - time.time()
        generations = []
        deadline = time.monotonic() + timeout_s
        while any(reader.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {OFFSETS_TOPIC} took over {timeout_s} s")
            for records in reader.poll(timeout_ms=500).values():
                for record in records:
                    generation = generation_record(record.key, record.value, group)
                    if generation is not None:
                        generations.append((generation, record.timestamp / 1000 + wall_to_monotonic))
    finally:
        reader.close()
    return sorted(generations, key=lambda item: item[1])


def generation_record(key: bytes | None, value: bytes | None, group: str) -> int | None:
    """The generation in a `__consumer_offsets` record of `group`'s metadata, else None.

    Key: int16 version (2), string group. Value: int16 version, protocol type
    (a string: int16 length, or from version 4 a compact string: varint length + 1),
    int32 generation, then fields not needed here. A tombstone (no value) has none.
    """
    if key is None or value is None or len(key) < 4:
        return None
    key_version, name_length = struct.unpack_from(">hh", key)
    if key_version != GROUP_METADATA_KEY_VERSION or key[4:4 + name_length] != group.encode():
        return None
    (value_version,) = struct.unpack_from(">h", value)
    if value_version >= 4:
        length, at = _uvarint(value, 2)
        at += max(length - 1, 0)
    else:
        (length,) = struct.unpack_from(">h", value, 2)
        at = 4 + max(length, 0)
    (generation,) = struct.unpack_from(">i", value, at)
    return int(generation)


def _uvarint(data: bytes, at: int) -> tuple[int, int]:
    """An unsigned varint at `at`: its value and the offset after it."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
