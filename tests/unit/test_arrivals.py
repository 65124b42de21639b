"""A transaction's age counts from when its first records may have begun to wait."""

from __future__ import annotations

from workload.kafka.arrivals import Arrivals


def test_a_record_waited_for_counts_from_when_it_was_read() -> None:
    arrivals = Arrivals(now=10.0)
    arrivals.emptied(at=10.5)
    arrivals.read(queued=False, at=10.8)
    assert arrivals.since == 10.8


def test_a_record_already_queued_counts_from_when_the_queue_was_last_seen_empty() -> None:
    arrivals = Arrivals(now=10.0)
    arrivals.read(queued=False, at=10.2)  # a read that took all there was ...
    arrivals.emptied(at=10.25)
    # ... then a commit from 10.3 to 10.6, during which records came in and were queued
    arrivals.read(queued=True, at=10.6)
    assert arrivals.since == 10.25


def test_a_read_that_left_records_queued_keeps_the_older_time() -> None:
    arrivals = Arrivals(now=10.0)
    arrivals.emptied(at=10.1)
    arrivals.read(queued=True, at=12.0)  # a backlog: a full read, more left queued
    arrivals.read(queued=True, at=12.4)
    assert arrivals.since == 10.1
