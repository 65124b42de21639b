"""How the workload reaches Kafka: an address plus librdkafka settings, typed until the last moment.

The operator resolves the address (from a Strimzi `Kafka` status or the
spec) and mounts the `KafkaUser` Secret; a pod builds its `KafkaConnection`
from the environment. Settings stay a mapping until a client is made:
`librdkafka_config()` is confluent-kafka's configuration dict,
`librdkafka_pairs()` the `key=value` strings tensorflow-io wants, and
`kafka_python_settings()` kafka-python's keyword arguments.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workload.contract import BOOTSTRAP_ENV, CLUSTER_CA_ENV, CREDENTIALS_ENV, SASL_USERNAME_ENV
from workload.spec import KafkaSpec

__all__ = ["BOOTSTRAP_ENV", "CLUSTER_CA_ENV", "CREDENTIALS_ENV", "SASL_USERNAME_ENV",
           "KafkaConnection", "connection_for", "credential_settings"]


LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
"""Where librdkafka's own log lines go (instead of straight to stderr)."""


@dataclass(frozen=True)
class KafkaConnection:
    """A Kafka address and the librdkafka settings to use with it."""

    bootstrap_servers: str
    settings: Mapping[str, str] = field(default_factory=dict)

    def librdkafka_config(self, owned: Mapping[str, Any] | None = None,
                          defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """confluent-kafka's configuration: `defaults`, overridden by the job's settings,
        overridden by `owned` (what the calling code depends on, e.g. manual commits)."""
        return {"bootstrap.servers": self.bootstrap_servers, "logger": LIBRDKAFKA_LOG,
                **(defaults or {}), **self.settings, **(owned or {})}

    def librdkafka_pairs(self, extra: Mapping[str, str] | None = None) -> list[str]:
        """`key=value` strings for tensorflow-io's `configuration` argument."""
        merged = {**self.settings, **(extra or {})}
        return [f"{key}={value}" for key, value in merged.items()]

    def kafka_python_settings(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (admin, producer, consumer)."""
        translated: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers}
        protocol = self.settings.get("security.protocol")
        if protocol:
            translated["security_protocol"] = protocol.upper()
        if "sasl.mechanism" in self.settings:
            translated["sasl_mechanism"] = self.settings["sasl.mechanism"]
        if "sasl.username" in self.settings:
            translated["sasl_plain_username"] = self.settings["sasl.username"]
            translated["sasl_plain_password"] = self.settings["sasl.password"]
        if "ssl.ca.location" in self.settings:
            translated["ssl_cafile"] = self.settings["ssl.ca.location"]
        if "ssl.certificate.location" in self.settings:
            translated["ssl_certfile"] = self.settings["ssl.certificate.location"]
            translated["ssl_keyfile"] = self.settings["ssl.key.location"]
        return translated

    def __repr__(self) -> str:
        """Secrets masked: a connection printed or logged by accident leaks no password."""
        return f"KafkaConnection({self.bootstrap_servers!r}, {self.redacted()!r})"

    def redacted(self) -> dict[str, str]:
        """The settings with secrets masked, for logs."""
        return {
            key: ("***" if "password" in key or key.endswith(".pem") else value)
            for key, value in self.settings.items()
        }


def credential_settings(credentials: Path, username: str | None,
                        cluster_ca: Path | None) -> dict[str, str]:
    """librdkafka settings from a mounted Strimzi KafkaUser Secret (SCRAM or TLS)."""
    settings: dict[str, str] = {}
    ca_file = cluster_ca / "ca.crt" if cluster_ca is not None else None
    tls = ca_file is not None and ca_file.exists()
    if ca_file is not None and tls:
        settings["ssl.ca.location"] = str(ca_file)
    if (credentials / "password").exists():
        settings["security.protocol"] = "SASL_SSL" if tls else "SASL_PLAINTEXT"
        settings["sasl.mechanism"] = "SCRAM-SHA-512"
        settings["sasl.username"] = username or ""
        settings["sasl.password"] = (credentials / "password").read_text().strip()
    elif (credentials / "user.crt").exists():
        settings["security.protocol"] = "SSL"
        settings["ssl.certificate.location"] = str(credentials / "user.crt")
        settings["ssl.key.location"] = str(credentials / "user.key")
    return settings


def connection_for(kafka: KafkaSpec, environ: Mapping[str, str] | None = None) -> KafkaConnection:
    """The connection a pod (or a local run) uses: spec settings plus mounted credentials.

    The address comes from the environment (the operator resolves `clusterRef`)
    or, for a local run, from the spec's `bootstrapServers`.
    """
    env = os.environ if environ is None else environ
    bootstrap = env.get(BOOTSTRAP_ENV) or kafka.bootstrap_servers
    if not bootstrap:
        raise ValueError(
            f"no Kafka address: spec.kafka.clusterRef needs the operator to set {BOOTSTRAP_ENV}"
        )
    settings = dict(kafka.config)
    credentials = env.get(CREDENTIALS_ENV)
    if credentials:
        ca = env.get(CLUSTER_CA_ENV)
        settings.update(credential_settings(
            Path(credentials), env.get(SASL_USERNAME_ENV), Path(ca) if ca else None))
    return KafkaConnection(bootstrap, settings)
