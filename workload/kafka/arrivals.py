"""Since when records read from a consumer may have waited: what a transaction's age counts from.

A consumer's client fetches records in the background and queues them; the
application reads them later. A record read while the application waited for
it has just come in. A record that was already queued when asked for may have
come in at any time since the queue was last seen empty, for instance while
the application was committing a transaction, and has waited since then at
worst. Counting a transaction's age from there (`workload.kafka.transactions`)
keeps a record that came in during a commit from waiting a whole
`serve.maxLatencyMs` more: at 1,000 records/s on the local broker, commits
that took 100-300 ms under load otherwise added their time twice to the
records that came in meanwhile.

Times are `time.monotonic()` seconds.
"""

from __future__ import annotations


class Arrivals:
    """When the client's queue was last seen empty, and since when the records read last may
    have waited."""

    def __init__(self, now: float) -> None:
        self.empty_at = now
        """The last time a read found the client's queue empty."""
        self.since = now
        """Since when the records of the last read may have waited."""

    def emptied(self, at: float) -> None:
        """A read found nothing queued at `at` (or took all that was)."""
        self.empty_at = at

    def read(self, queued: bool, at: float) -> None:
        """Records were read at `at`: `queued` if they were there when asked for, else they came
        in while the read waited."""
        self.since = self.empty_at if queued else at
