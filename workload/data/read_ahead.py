"""Take an iterator's items in a thread of its own, a few ahead of the caller.

Train mode reads the next batch of records while it decodes this one:
librdkafka's and TensorFlow's work release the GIL, so the two overlap.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def read_ahead(batches: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`batches`, taken by a thread of its own up to `depth` ahead. An error of the reader is
    raised here; leaving early stops the reader (and closes it, if it is a generator)."""
    ready: queue.Queue[tuple[str, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                ready.put(item, timeout=0.1)
                return True
        return False

    def pump() -> None:
        try:
            for batch in batches:
                if not put(("batch", batch)):
                    break
            else:
                put(("end", None))
        except BaseException as error:  # handed to the consumer, raised there
            put(("error", error))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # a generator's readers close here, in the thread that ran them

    thread = threading.Thread(target=pump, name="kafka-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
