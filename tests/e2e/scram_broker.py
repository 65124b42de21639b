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
from localparts.cache import require_tool, run
from localparts.ports import LOOPBACK, free_port, port_open
from localparts.process import ServerProcess, spawn, wait_until

MECHANISM = "SCRAM-SHA-512"


@dataclass
class ScramBroker:
    """The running broker: a plain address (admin) and a SCRAM address (the job)."""

    process: ServerProcess
    plain_servers: str
    scram_servers: str

    def stop(self) -> None:
        self.process.stop()


def start(data_dir: Path, username: str, password: str) -> ScramBroker:
    """Format and start the broker with `username` able to log in with `password`."""
    lib = local_kafka.install()
    java = require_tool("java", local_kafka.JAVA_HINT)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "log4j.properties").write_text(local_kafka.LOG4J_CONFIG)
    jvm = [java, "-Xms128m", "-Xmx512m", "-Djava.awt.headless=true",
           f"-Dlog4j.configuration=file:{data_dir / 'log4j.properties'}", "-cp", f"{lib}/*"]
    port, scram_port, controller_port = free_port(), free_port(), free_port()
    properties = local_kafka.server_properties(port, controller_port, data_dir / "data", {
        "listeners": (f"PLAINTEXT://{LOOPBACK}:{port},SASL_PLAINTEXT://{LOOPBACK}:{scram_port},"
                      f"CONTROLLER://{LOOPBACK}:{controller_port}"),
        "advertised.listeners": (f"PLAINTEXT://{LOOPBACK}:{port},"
                                 f"SASL_PLAINTEXT://{LOOPBACK}:{scram_port}"),
        "listener.security.protocol.map": ("CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
                                           "SASL_PLAINTEXT:SASL_PLAINTEXT"),
        "sasl.enabled.mechanisms": MECHANISM,
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
    })
    config = data_dir / "server.properties"
    config.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
    cluster_id = run([*jvm, "kafka.tools.StorageTool", "random-uuid"],
                     what="generating a Kafka cluster id").strip().splitlines()[-1]
    run([*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config),
         "--add-scram", f"{MECHANISM}=[name={username},password={password}]"],
        what="formatting Kafka storage with a SCRAM user")
    log = data_dir / "broker.log"
    process = spawn("kafka-scram", [*jvm, "kafka.Kafka", str(config)], log)

    def ready() -> bool:
        text = log.read_text(errors="replace") if log.exists() else ""
        return local_kafka.READY_LINE in text and port_open(scram_port)
    try:
        wait_until(process, ready, local_kafka.START_TIMEOUT_S, "starting the SCRAM broker")
    except BaseException:
        process.stop()
        raise
    return ScramBroker(process, f"{LOOPBACK}:{port}", f"{LOOPBACK}:{scram_port}")
