"""The local broker copes with a taken port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from localparts import kafka, ports


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as listener:
        listener.bind((ports.LOOPBACK, 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def test_a_busy_port_makes_the_broker_take_another(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    offered = iter([taken_port])
    real_free_port = ports.free_port
    monkeypatch.setattr(kafka, "free_port", lambda: next(offered, None) or real_free_port())
    broker = kafka.start(tmp_path)
    try:
        port = int(broker.bootstrap_servers.rsplit(":", 1)[1])
        assert port != taken_port
        assert ports.port_open(port)
    finally:
        broker.stop()
