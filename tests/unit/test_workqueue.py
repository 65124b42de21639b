"""The work queue: each job once in line, never twice at a time, delayed looks without timers."""

from __future__ import annotations

import threading

from streamtrain_operator.workqueue import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_added_many_times_while_waiting_is_handed_out_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "a"):
        queue.add(key)
    assert [queue.get(0), queue.get(0), queue.get(0)] == ["a", "b", None]


def test_a_key_added_while_busy_comes_back_once_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert queue.get(0) == "a"
    queue.add("a")
    queue.add("a")
    assert queue.get(0) is None  # never handed out twice at a time
    queue.done("a")
    assert queue.get(0) == "a"
    queue.done("a")
    assert queue.get(0) is None


def test_delayed_keys_come_due_in_time_order() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add_after("late", 10)
    queue.add_after("soon", 5)
    assert queue.get(0) is None
    clock.now = 6
    assert queue.get(0) == "soon"
    clock.now = 10
    assert queue.get(0) == "late"


def test_close_wakes_a_waiting_worker() -> None:
    queue: WorkQueue[str] = WorkQueue()
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(queue.get()))
    worker.start()
    queue.close()
    worker.join(timeout=5)
    assert got == [None] and not worker.is_alive()


def test_new_jobs_go_ahead_of_the_events_of_running_ones() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for running in ("a", "b"):
        queue.add(running)
    queue.add("new", first=True)
    queue.add("b", first=True)  # its spec changed while it waited
    queue.add("a")
    assert [queue.get(0), queue.get(0), queue.get(0), queue.get(0)] == ["new", "b", "a", None]
