"""The read-ahead thread: same items in the same order, the reader's errors raised, early exits clean."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workload.data.read_ahead import read_ahead


def test_items_come_in_order_and_an_error_of_the_reader_is_raised_to_the_caller() -> None:
    assert list(read_ahead(iter(range(100)), depth=3)) == list(range(100))

    def failing() -> Iterator[int]:
        yield 1
        raise RuntimeError("broker gone")

    taken = []
    with pytest.raises(RuntimeError, match="broker gone"):
        for item in read_ahead(failing()):
            taken.append(item)
    assert taken == [1]


def test_leaving_early_stops_and_closes_the_reader() -> None:
    closed = []

    def reader() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.append(True)

    ahead = read_ahead(reader(), depth=2)
    assert next(ahead) == 0
    ahead.close()
    assert closed == [True]
