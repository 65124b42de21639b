"""Fail fast, and clearly, when the broker refuses the job's credentials: SASL login or TLS.

A pod whose KafkaUser Secret is wrong would otherwise hang until its deadline:
kafka-python retries a refused SASL login forever (each attempt is logged at
ERROR by `kafka.conn`, the call that wanted metadata never returns), and
tensorflow-io's librdkafka keeps retrying a TLS handshake the broker rejects.
One bounded metadata request before a mode starts turns either into a failed
report that names the address and what to check, never a password or key.

TLS failures surface as `ssl.SSLError` out of kafka-python's first version
probe: a client certificate the broker does not trust (signed by another CA,
or none at all) arrives as the broker's TLS alert, with TLS 1.2 during the
handshake and with TLS 1.3 at the first read after it (the client believes
the handshake done until then; the alert is still read, not lost to the
connection reset); a broker certificate the cluster CA does not verify, or a
key that does not match its certificate, fails on the client's side before any
request. Without SASL or TLS settings nothing is checked; a broker that does
not answer in time (down, slow, wrong listener) is left to the mode's own error
handling.
"""

from __future__ import annotations

import logging
import ssl
import time

from kafka import KafkaClient
from kafka.errors import KafkaError, SaslAuthenticationFailedError

from workload.kafka_connection import KafkaConnection

LOGIN_TIMEOUT_S = 15.0
"""Seconds to wait for the broker's first metadata answer (a refusal arrives in well under one)."""

VERSION_PROBE_S = 2.0
"""Seconds kafka-python's start-up version probe may take (its default); a TLS refusal is raised
there in well under one, and a broker that gives no answer by then is left to the mode."""

POLL_MS = 100
"""Milliseconds per network poll while waiting."""

TLS_PROTOCOLS = ("SSL", "SASL_SSL")
"""Security protocols whose handshake is checked (`security.protocol`, any case)."""

USER_HINT = "check the KafkaUser named in spec.kafka.userRef and its Secret's"
CA_HINT = "check the cluster CA Secret (ca.crt) the job mounts and the bootstrap address"

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
    """Why the broker refuses this connection's SASL login or TLS credentials, or `None`.

    `None` also when there is nothing to check (no SASL, no TLS) or no answer came in time.
    """
    settings = connection.settings
    tls = settings.get("security.protocol", "").upper() in TLS_PROTOCOLS
    if "sasl.username" not in settings and not tls:
        return None
    watcher = _RefusalSeen()
    kafka_log = logging.getLogger("kafka.conn")
    kafka_log.addHandler(watcher)
    try:
        _ask_for_metadata(connection, timeout_s, watcher)
    except ssl.SSLError as error:
        return tls_refusal(connection, error)
    except (FileNotFoundError, PermissionError) as error:
        return (f"Kafka at {connection.bootstrap_servers}: cannot read the TLS files the "
                f"connection names ({error.strerror}): {USER_HINT} user.crt/user.key, and the "
                "cluster CA Secret (ca.crt)")
    except KafkaError:
        pass  # no answer in time: the mode reports an unreachable broker its own way
    finally:
        kafka_log.removeHandler(watcher)
    if not watcher.refused:
        return None
    mechanism = settings.get("sasl.mechanism", "SASL")
    return (f"Kafka at {connection.bootstrap_servers} refused the {mechanism} login of user "
            f"{settings['sasl.username']!r} (authentication failed): {USER_HINT} password")


def _ask_for_metadata(connection: KafkaConnection, timeout_s: float,
                      watcher: _RefusalSeen) -> None:
    """One metadata request, polled until answered, refused or `timeout_s` passes."""
    probe_ms = int(min(timeout_s, VERSION_PROBE_S) * 1000)
    client = KafkaClient(**connection.kafka_python_settings(),
                         api_version_auto_timeout_ms=probe_ms)
    try:
        answered = client.cluster.request_update()
        deadline = time.monotonic() + timeout_s
        while not answered.is_done and not watcher.refused and time.monotonic() < deadline:
            client.poll(timeout_ms=POLL_MS, future=answered)
    finally:
        client.close()


def tls_refusal(connection: KafkaConnection, error: ssl.SSLError) -> str:
    """The message for a failed TLS handshake: whose certificate failed, and what to check.

    Built from OpenSSL's reason code only (e.g. `SSLV3_ALERT_CERTIFICATE_UNKNOWN`), which
    never carries certificate or key contents.
    """
    where = f"Kafka at {connection.bootstrap_servers}"
    reason = getattr(error, "reason", None) or _openssl_text(error)
    has_certificate = "ssl.certificate.location" in connection.settings
    if isinstance(error, ssl.SSLCertVerificationError):
        return (f"{where} presented a certificate the configured cluster CA does not verify "
                f"({error.verify_message}): {CA_HINT}")
    alert = reason.split("ALERT_", 1)[1].replace("_", " ").lower() if "ALERT_" in reason else ""
    if "certificate" in alert or "unknown ca" in alert:
        if not has_certificate:
            return (f"{where} requires a TLS client certificate and the connection sends none "
                    f"(TLS alert: {alert}): the listener wants a KafkaUser of type tls; "
                    f"{USER_HINT} user.crt/user.key")
        return (f"{where} rejected the TLS client certificate (TLS alert: {alert}): "
                f"{USER_HINT} user.crt/user.key (signed by the clients CA the broker trusts)")
    if has_certificate and reason in ("KEY_VALUES_MISMATCH", "PEM lib"):
        return (f"{where}: the TLS client certificate and key cannot be used ({reason}): "
                f"{USER_HINT} user.crt/user.key (a matching PEM pair)")
    return f"{where}: TLS handshake failed ({reason}): {USER_HINT} user.crt/user.key, and {CA_HINT}"


def _openssl_text(error: ssl.SSLError) -> str:
    """OpenSSL's short text for an error without a reason code (`[SSL] PEM lib (_ssl.c:1)`)."""
    text = str(error.strerror or error)
    return text.split("] ", 1)[-1].split(" (_ssl.c", 1)[0]
