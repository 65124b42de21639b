"""Fail fast, and clearly, when the broker refuses the job's SASL login.

kafka-python retries a refused SASL login forever: each attempt is logged at
ERROR by `kafka.conn` and the call that wanted metadata never returns, so a
pod whose KafkaUser password is wrong would hang until its deadline. One
bounded metadata request before a mode starts turns a refused login into a
failed report that names the address, the mechanism and the user (never the
password). Without SASL settings nothing is checked, and a broker that does
not answer in time is left to the mode's own error handling.
"""

from __future__ import annotations

import logging
import time

from kafka import KafkaClient
from kafka.errors import SaslAuthenticationFailedError

from workload.kafka_connection import KafkaConnection

LOGIN_TIMEOUT_S = 15.0
"""Seconds to wait for the broker's first metadata answer (a refusal arrives in well under one)."""

POLL_MS = 100
"""Milliseconds per network poll while waiting."""

_REFUSALS = (SaslAuthenticationFailedError,)


class _RefusalSeen(logging.Handler):
    """Notices kafka-python's log record of a refused login (it keeps no other trace of it)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.refused = False

    def emit(self, record: logging.LogRecord) -> None:
        arguments = record.args if isinstance(record.args, tuple) else ()
        if (any(isinstance(argument, _REFUSALS) for argument in arguments)
                or "AuthenticationFailed" in record.getMessage()):
            self.refused = True


def login_refusal(connection: KafkaConnection,
                  timeout_s: float = LOGIN_TIMEOUT_S) -> str | None:
    """Why the broker refuses this connection's SASL login, or `None` (accepted, or no SASL)."""
    settings = connection.settings
    if "sasl.username" not in settings:
        return None
    watcher = _RefusalSeen()
    kafka_log = logging.getLogger("kafka.conn")
    kafka_log.addHandler(watcher)
    client = KafkaClient(**connection.kafka_python_settings())
    try:
        answered = client.cluster.request_update()
        deadline = time.monotonic() + timeout_s
        while not answered.is_done and not watcher.refused and time.monotonic() < deadline:
            client.poll(timeout_ms=POLL_MS, future=answered)
    finally:
        client.close()
        kafka_log.removeHandler(watcher)
    if not watcher.refused:
        return None
    mechanism = settings.get("sasl.mechanism", "SASL")
    return (f"Kafka at {connection.bootstrap_servers} refused the {mechanism} login of user "
            f"{settings['sasl.username']!r} (authentication failed): check the KafkaUser "
            "named in spec.kafka.userRef and its Secret's password")
