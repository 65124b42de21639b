"""How the replicas of a phase divide a topic's records: disjoint offset ranges that cover it.

One rule, for training workers and evaluators alike (`replica_ranges`):
- as many partitions as replicas or more: whole partitions, dealt round robin
  in id order (replica `i` reads the `i`-th, `(i + N)`-th, ... partition);
- fewer partitions than replicas: each partition is cut into contiguous
  offset slices, as equal as its records allow; replica `i` reads slice
  `i // P` of partition `i % P` (`P` partitions), one slice of one partition.

A training step's records are divided the same way (`batch_shares`): each
worker's share of the batch is proportional to the records it holds.

Together the replicas read every record of the bounds exactly once, and the
same bounds and count always give the same answer: replicas that agree on the
bounds agree on who reads what without talking to each other. Each replica
reads its ranges in the usual fixed order (partitions in id order, offsets in
order). Records written after the bounds were captured (an evaluation that
follows its topic) belong to the replica that reads the end of their
partition (`readers(...)[partition][-1]`).

No TensorFlow, no Kafka here.
"""

from __future__ import annotations

from collections.abc import Mapping

PartitionRanges = dict[int, tuple[int, int]]
"""Per partition, a `[start, stop)` offset range."""


def _slice_count(partitions: int, replicas: int, position: int) -> int:
    """How many replicas share the partition at `position` (in id order) when there are fewer
    partitions than replicas."""
    return replicas // partitions + (1 if position < replicas % partitions else 0)


def _cut(span: tuple[int, int], slices: int, which: int) -> tuple[int, int]:
    """Slice `which` of `slices` contiguous, near-equal slices of `[start, stop)`."""
    start, stop = span
    size = max(0, stop - start)
    return start + size * which // slices, start + size * (which + 1) // slices


def replica_ranges(bounds: Mapping[int, tuple[int, int]], replicas: int) -> list[PartitionRanges]:
    """The ranges each of `replicas` replicas reads, by replica index (see the module's rule)."""
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    partitions = sorted(bounds)
    shares: list[PartitionRanges] = [{} for _ in range(replicas)]
    if len(partitions) >= replicas:
        for position, partition in enumerate(partitions):
            shares[position % replicas][partition] = bounds[partition]
        return shares
    for index in range(replicas):
        position = index % len(partitions)
        partition = partitions[position]
        slices = _slice_count(len(partitions), replicas, position)
        shares[index][partition] = _cut(bounds[partition], slices, index // len(partitions))
    return shares


def readers(bounds: Mapping[int, tuple[int, int]], replicas: int) -> dict[int, list[int]]:
    """Per partition, the replicas that read it, in offset order (one when it is read whole;
    a higher replica index reads a later slice)."""
    found: dict[int, list[int]] = {partition: [] for partition in sorted(bounds)}
    for index, share in enumerate(replica_ranges(bounds, replicas)):
        for partition in share:
            found[partition].append(index)
    return found


def batch_shares(batch_size: int, records: list[int]) -> list[int]:
    """Records per step of each worker, in proportion to the records each holds (largest
    remainders first) and adding up to `batch_size`, so all run out of records at about the same
    step. A worker that holds records gets at least one, taken from the largest share (the sum
    exceeds a batch smaller than the number of such workers)."""
    total = sum(records)
    if total == 0:
        return [0 for _ in records]
    exact = [batch_size * count / total for count in records]
    shares = [int(value) for value in exact]
    by_remainder = sorted(range(len(records)), key=lambda i: (shares[i] - exact[i], i))
    for index in by_remainder[:batch_size - sum(shares)]:
        shares[index] += 1
    for index, count in enumerate(records):
        if count and not shares[index]:
            largest = max(range(len(shares)), key=lambda i: (shares[i], -i))
            if shares[largest] > 1:
                shares[largest] -= 1
            shares[index] = 1
    return shares
