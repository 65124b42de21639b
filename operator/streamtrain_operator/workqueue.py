"""A work queue of jobs to reconcile: each key at most once in line, never twice at a time.

What client-go's work queue does, in a few lines: events only say "look at
this job again"; however many arrive while a job waits its turn, it is
reconciled once, and an event that arrives while it is being reconciled
queues it once more for afterwards. `add_after` schedules a look at a time
(a TTL that expires, a progress deadline, a retry) instead of a timer per
job. Workers take keys with `get` and hand them back with `done`.

Keys added with `first=True` (a job that is new or whose spec changed: it
has no pods until its pass runs) are handed out before the others (the
children's events of running jobs, which mostly record counts), so a burst
of applied jobs does not wait behind the events of the jobs before it.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)


class WorkQueue(Generic[Key]):
    """Keys to process, deduplicated, with delayed additions; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ready: deque[Key] = deque()
        self._first: deque[Key] = deque()
        self._queued: set[Key] = set()
        self._busy: set[Key] = set()
        self._again: set[Key] = set()
        self._later: list[tuple[float, int, Key]] = []
        self._order = itertools.count()
        self._closed = False
        self._changed = threading.Condition()

    def add(self, key: Key, first: bool = False) -> None:
        """Queue `key` (again after its current pass, if one runs); no-op if it waits already
        (`first`: ahead of the keys added without it)."""
        with self._changed:
            if key in self._busy:
                self._again.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                (self._first if first else self._ready).append(key)
                self._changed.notify()
            elif first and key in self._ready:
                self._ready.remove(key)
                self._first.append(key)

    def add_after(self, key: Key, delay_s: float) -> None:
        """Queue `key` once `delay_s` seconds have passed."""
        if delay_s <= 0:
            self.add(key)
            return
        with self._changed:
            heapq.heappush(self._later, (self._clock() + delay_s, next(self._order), key))
            self._changed.notify()

    def get(self, timeout_s: float | None = None) -> Key | None:
        """The next key to process (marked busy), or `None` when closed or after `timeout_s`."""
        deadline = None if timeout_s is None else self._clock() + timeout_s
        with self._changed:
            while True:
                self._promote_due()
                if self._closed:
                    return None
                if self._first or self._ready:
                    key = (self._first or self._ready).popleft()
                    self._queued.discard(key)
                    self._busy.add(key)
                    return key
                wait = self._next_wait(deadline)
                if wait is not None and wait <= 0:
                    return None
                self._changed.wait(wait)

    def done(self, key: Key) -> None:
        """Hand back a key taken with `get`; it is queued again if an `add` came meanwhile."""
        with self._changed:
            self._busy.discard(key)
            if key in self._again:
                self._again.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._ready.append(key)
                    self._changed.notify()

    def close(self) -> None:
        """Wake every waiting `get` with `None`; nothing is handed out afterwards."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def __len__(self) -> int:
        """Keys waiting now (not the delayed ones)."""
        with self._changed:
            return len(self._first) + len(self._ready)

    def _promote_due(self) -> None:
        now = self._clock()
        while self._later and self._later[0][0] <= now:
            _, _, key = heapq.heappop(self._later)
            if key in self._busy:
                self._again.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)

    def _next_wait(self, deadline: float | None) -> float | None:
        """Seconds until something may be due (a delayed key or the caller's deadline)."""
        candidates = [moment - self._clock() for moment in (
            self._later[0][0] if self._later else None, deadline) if moment is not None]
        return min(candidates) if candidates else None
