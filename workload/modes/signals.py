"""Turn SIGTERM into a stop request, so a mode can finish its current step and report.

Kubernetes sends SIGTERM when it stops a pod, then SIGKILL after the grace
period. A mode that runs for a long time (online learning, an evaluation
that follows its topic) checks the event between steps instead of dying
mid-step, writes its final state, and exits cleanly.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def stop_on_sigterm(stop: threading.Event) -> Iterator[threading.Event]:
    """Set `stop` on SIGTERM while inside the block (main thread only; the old handler returns)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
