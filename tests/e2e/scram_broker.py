"""A second local broker with a SCRAM-SHA-512 listener, for the KafkaUser end-to-end test.

Same jars and settings as `localparts.kafka`, plus a `SASL_PLAINTEXT` listener
and one SCRAM user created when the storage is formatted (KRaft keeps SCRAM
credentials in its metadata log). The plain listener stays for the test's
own admin and producer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localparts import kafka as local_kafka
from localparts.process import ServerProcess

MECHANISM = "SCRAM-SHA-512"
LISTENER = "SASL_PLAINTEXT"


@dataclass
class ScramBroker:
    """The running broker: a plain address (admin) and a SCRAM address (the job)."""

    broker: local_kafka.KafkaBroker

    @property
    def plain_servers(self) -> str:
        return self.broker.bootstrap_servers

    @property
    def scram_servers(self) -> str:
        return self.broker.address(LISTENER)

    @property
    def process(self) -> ServerProcess:
        return self.broker.process

    def stop(self) -> None:
        self.broker.stop()


def start(data_dir: Path, username: str, password: str) -> ScramBroker:
    """Format and start the broker with `username` able to log in with `password`."""
    return ScramBroker(local_kafka.start(
        data_dir,
        extra_listeners=[LISTENER],
        extra_properties={
            "sasl.enabled.mechanisms": MECHANISM,
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        },
        scram_users={username: password},
    ))
