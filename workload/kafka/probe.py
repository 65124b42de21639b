"""Before a phase reads anything: can this pod reach its brokers, and will they let it in?

One bounded metadata request through librdkafka, the client the phases use,
turns every way a connection can fail into one sentence that names the
address, what was tried and what to check, instead of a phase that hangs
until its deadline or dies with a traceback:
- nothing answers at the address (refused, unresolvable, silent) within
  `PROBE_TIMEOUT_S`;
- the broker refuses the SASL login (a wrong password);
- a TLS handshake fails: the broker's certificate is not verified by the
  cluster CA, the broker rejects the client certificate (or wants one and
  gets none), or the client's certificate and key do not belong together.
Messages are built from librdkafka's error text, which never carries key
material or passwords.

For `client: tensorflow-io` it first checks that this environment has that
client at all (`tensorflow_io_missing`): tensorflow-io 0.37.1 loads only
beside TensorFlow 2.16, so the default install (TensorFlow 2.21) leaves it
out and it comes in a set of its own (the `workload-tfio` extra and image).
Then it asks the broker which protocol versions it serves
(`tensorflow_io_refusal`): tensorflow-io bundles librdkafka 1.5.0, which
needs versions Kafka 4.0 removed (KIP-896), and would otherwise hang in a
consumer group or fail deep inside a read.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import random
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from workload.kafka.connection import KafkaConnection

PROBE_TIMEOUT_S = 15.0
"""Seconds to wait for the brokers' first metadata answer (a refusal arrives in well under one;
a broker that is starting gets this long to come up)."""

POLL_S = 0.5
"""Seconds per metadata attempt while waiting."""

USER_HINT = "check the KafkaUser named in spec.kafka.userRef and its Secret's"
CA_HINT = "check the cluster CA Secret (ca.crt) the job mounts and the bootstrap address"
ADDRESS_HINT = ("check spec.kafka.bootstrapServers (or the listener of spec.kafka.clusterRef) "
                "and that the brokers are up and reachable from the pod")

UNREACHABLE = "cannot reach Kafka"
"""How the sentence for brokers that never answered starts (the other refusals name a login, a
certificate or the client): `workload.runner` tells the two apart by it."""

DECISIVE = {KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED}
"""Errors a retry will not heal: the probe reports them at once (as it does a TLS alert from
the broker, which librdkafka reports as a transport error)."""


def decisive(error: KafkaError) -> bool:
    """Whether `error` is a refusal (a retry will not heal it) rather than a broker not there."""
    return error.code() in DECISIVE or _tls_alert(error.str()) is not None


def _tls_alert(text: str) -> str | None:
    """The TLS alert in an OpenSSL error text (`... ssl/tls alert bad certificate: ...`)."""
    lowered = text.lower()
    if "ssl routines" not in lowered or " alert " not in lowered:
        return None
    return lowered.split(" alert ", 1)[1].split(":", 1)[0].strip()


def _without_context(text: str) -> str:
    """librdkafka's error text without the broker prefix and the `(after ..ms in state ..)`."""
    text = text.split("/bootstrap: ", 1)[-1]
    return text.split(" (after ", 1)[0]


def connection_refusal(connection: KafkaConnection, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the brokers cannot be used through `connection`, or `None` once a metadata request
    succeeds (within `timeout_s`)."""
    errors: list[KafkaError] = []
    try:
        admin = AdminClient(connection.librdkafka_config(
            owned={"error_cb": errors.append, "log_level": 0},
            defaults={"reconnect.backoff.max.ms": 1000}))
    except KafkaException as error:
        return _configuration_refusal(connection, error.args[0])
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=POLL_S)
            return None
        except KafkaException as error:
            errors.append(error.args[0])
        admin.poll(0)
        refused = [error for error in errors if decisive(error)]
        if refused:
            return explain_refusal(connection, refused[-1])
        if time.monotonic() >= deadline:
            return _unreachable(connection, errors, timeout_s)


def _unreachable(connection: KafkaConnection, errors: list[KafkaError], waited_s: float) -> str:
    causes = [_without_context(error.str()) for error in errors
              if error.code() not in (KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN)
              and "Failed to get metadata" not in error.str()]
    cause = f" (last error: {causes[-1]})" if causes else " (no answer)"
    return (f"{UNREACHABLE} at {connection.bootstrap_servers}: connecting and asking for "
            f"metadata failed for {waited_s:.0f} s{cause}; {ADDRESS_HINT}")


def explain_refusal(connection: KafkaConnection, error: KafkaError) -> str:
    """One sentence for a refusal (see `decisive`): what failed, and what to check."""
    where = f"Kafka at {connection.bootstrap_servers}"
    text = _without_context(error.str())
    settings = connection.settings
    alert = _tls_alert(text)
    if error.code() != KafkaError._SSL and alert is None:
        mechanism = settings.get("sasl.mechanism", "SASL")
        user = settings.get("sasl.username", "")
        return (f"{where} refused the {mechanism} login of user {user!r} (authentication "
                f"failed): {USER_HINT} password")
    has_certificate = "ssl.certificate.location" in settings
    if "verif" in text.lower() and alert is None:
        return (f"{where} presented a certificate the configured cluster CA does not verify "
                f"({text}): {CA_HINT}")
    if alert is not None and ("certificate" in alert or "unknown ca" in alert):
        if not has_certificate:
            return (f"{where} requires a TLS client certificate and the connection sends none "
                    f"(TLS alert: {alert}): the listener wants a KafkaUser of type tls; "
                    f"{USER_HINT} user.crt/user.key")
        return (f"{where} rejected the TLS client certificate (TLS alert: {alert}): "
                f"{USER_HINT} user.crt/user.key (signed by the clients CA the broker trusts)")
    return f"{where}: TLS handshake failed ({text}): {USER_HINT} user.crt/user.key, and {CA_HINT}"


def _configuration_refusal(connection: KafkaConnection, error: KafkaError) -> str:
    """A client that cannot even be created: unreadable or mismatched TLS files."""
    where = f"Kafka at {connection.bootstrap_servers}"
    text = error.str()
    if "mismatch" in text.lower():
        return (f"{where}: the TLS client certificate and key cannot be used "
                f"(KEY_VALUES_MISMATCH): {USER_HINT} user.crt/user.key (a matching PEM pair)")
    if "ssl." in text:
        return (f"{where}: cannot use the TLS files the connection names ({text}): "
                f"{USER_HINT} user.crt/user.key, and the cluster CA Secret (ca.crt)")
    return f"{where}: the client settings are not usable ({text})"


TENSORFLOW_IO_IMAGE = "ghcr.io/streamtrain/streamtrain-workload-tfio"
"""The released image that holds the tensorflow-io client (the Dockerfile's `workload-tfio` target),
tagged with the project's version."""

TENSORFLOW_IO_EXTRA = "workload-tfio"
"""The extra of `pyproject.toml` that installs the tensorflow-io client's pin set."""


def tensorflow_io_missing() -> str | None:
    """Why this environment cannot run `client: tensorflow-io`, as one sentence naming where the
    client is, or `None`.

    The default install has no tensorflow-io (it needs TensorFlow 2.16); an environment where it
    was installed on top of a newer TensorFlow has it, but its native library fails to load on
    first use (an undefined symbol), so the library is loaded here, before anything is read.
    """
    if importlib.util.find_spec("tensorflow_io") is None:
        problem = "this environment does not have it"
    else:
        try:
            core_ops = importlib.import_module("tensorflow_io.python.ops").core_ops
            core_ops.io_kafka_readable_init  # noqa: B018 - the native library loads on first use
        except Exception as error:  # an undefined symbol surfaces as one of TF's own errors
            problem = f"it does not load here ({str(error).splitlines()[0][:200]})"
        else:
            return None
    try:
        tag = importlib.metadata.version("streamtrain")
    except importlib.metadata.PackageNotFoundError:
        tag = "latest"
    return (f"spec.kafka.client tensorflow-io needs tensorflow-io 0.37.1 and {problem}: run the "
            f"job in the image {TENSORFLOW_IO_IMAGE}:{tag} (spec.trainer.image and "
            f"spec.evaluator.image), or install streamtrain[{TENSORFLOW_IO_EXTRA}] "
            "(TensorFlow 2.16) in an environment of its own")


TENSORFLOW_IO_NEEDS = {2: ("ListOffsets", 0), 1: ("Fetch", 3)}
"""Request versions tensorflow-io's librdkafka 1.5.0 needs that Kafka 4.0 removed (KIP-896), by
API key: a broker whose oldest version of either is newer cannot serve that client."""


def tensorflow_io_refusal(connection: KafkaConnection,
                          timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why tensorflow-io's bundled librdkafka 1.5.0 cannot read these brokers, or `None`.

    Asks a broker for the protocol versions it serves (ApiVersions, through
    kafka-python, which reports them), since librdkafka 1.5.0 itself fails in
    obscure ways on Kafka 4: an offset lookup error, or a group that never
    delivers a record.
    """
    from kafka import KafkaAdminClient

    # kafka-python draws from Python's global random numbers (to pick brokers): a check must
    # not change what a seeded run does next.
    randomness = random.getstate()
    admin = KafkaAdminClient(**connection.kafka_python_settings(),
                             request_timeout_ms=int(timeout_s * 1000))
    try:
        served = {int(key): versions for key, versions in admin.api_versions().items()}
    finally:
        admin.close()
        random.setstate(randomness)
    removed = [f"{name} v{version}" for key, (name, version) in TENSORFLOW_IO_NEEDS.items()
               if key in served and served[key][0] > version]
    if not removed:
        return None
    return (f"Kafka at {connection.bootstrap_servers} is version 4.0 or newer: it no longer "
            f"serves {' and '.join(removed)} (removed by KIP-896), which tensorflow-io's "
            "bundled librdkafka 1.5.0 needs, so spec.kafka.client tensorflow-io cannot read it; "
            "set spec.kafka.client: librdkafka (the default), which reads Kafka 4")
