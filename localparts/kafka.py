"""A real Apache Kafka broker on 127.0.0.1: KRaft, one node, jars from Maven Central.

The broker is the one Strimzi runs, not a stand-in: Kafka 4.3.1 (Strimzi 1.2's
default) unless told otherwise. Kafka 3.9.2 is kept for the tensorflow-io
reader, whose bundled librdkafka 1.5.0 cannot read Kafka 4: Kafka 4.0 removed
old protocol versions (KIP-896: ListOffsets v0, Fetch v0-3, OffsetCommit v0-1,
...), so `IODataset.from_kafka` fails there ("failed to consume tail message:
Local: Required feature not supported by broker") and its consumer-group
datasets hang. Jars are resolved once by Maven into
``<cache>/kafka/<version>/lib``; each start formats a fresh data directory,
picks free ports, and waits until the broker logs that it has started and
accepts connections.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from localparts.cache import cache_root, require_tool, run
from localparts.errors import LocalPartError
from localparts.ports import LOOPBACK, free_port, port_open
from localparts.process import ServerProcess, spawn, wait_until

KAFKA_VERSION = "4.3.1"
"""Apache Kafka release (Scala 2.13 build) of the tests, the demo and the benchmarks."""

COMPAT_KAFKA_VERSION = "3.9.2"
"""The Kafka 3.x release kept for the tensorflow-io reader (3.9.2, not 3.9.1: CVE fixes)."""


@dataclass(frozen=True)
class Logging:
    """How one Kafka line logs: the slf4j backend jars to add and the config file they read."""

    backends: tuple[tuple[str, str, str], ...]
    config_name: str
    config_text: str
    jvm_flag: str


LOG4J1 = Logging(
    # Kafka 3.x declares only the slf4j 1.7 API; the backend is ours to add.
    backends=(("org.slf4j", "slf4j-reload4j", "1.7.36"),),
    config_name="log4j.properties",
    config_text="""log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.apache=WARN
log4j.logger.kafka.server.KafkaRaftServer=INFO
""",
    jvm_flag="-Dlog4j.configuration=file:{path}",
)

LOG4J2 = Logging(
    # Kafka 4.x logs through log4j2 behind the slf4j 1.7 API; again the backend is ours to add.
    backends=(("org.apache.logging.log4j", "log4j-slf4j-impl", "2.25.3"),
              ("org.apache.logging.log4j", "log4j-core", "2.25.3")),
    config_name="log4j2.properties",
    config_text="""status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.apache.name = org.apache
logger.apache.level = WARN
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = INFO
""",
    jvm_flag="-Dlog4j2.configurationFile=file:{path}",
)


def logging_of(version: str) -> Logging:
    """Kafka 4 moved from log4j 1 (reload4j) to log4j2."""
    return LOG4J2 if int(version.split(".")[0]) >= 4 else LOG4J1

START_TIMEOUT_S = 90.0
"""How long a cold broker start may take (JVM start, storage format, KRaft election)."""

JAVA_HINT = "apt-get install openjdk-17-jre-headless (Kafka 4.x needs Java 17 or newer)"
MAVEN_HINT = "apt-get install maven"

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.streamtrain.local</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{kafka}</version></dependency>
{backends}  </dependencies>
</project>
"""

READY_LINE = "Kafka Server started"


def install(version: str = KAFKA_VERSION) -> Path:
    """Resolve the broker's jars (cached); return the directory that holds them."""
    home = cache_root() / "kafka" / version
    lib = home / "lib"
    backends = logging_of(version).backends
    wanted = [f"kafka_2.13-{version}.jar",
              *(f"{artifact}-{release}.jar" for _, artifact, release in backends)]
    if all((lib / jar).exists() for jar in wanted):
        return lib
    require_tool("java", JAVA_HINT)
    mvn = require_tool("mvn", MAVEN_HINT)
    home.mkdir(parents=True, exist_ok=True)
    dependencies = "".join(
        f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{release}</version></dependency>\n"
        for group, artifact, release in backends)
    (home / "pom.xml").write_text(POM.format(kafka=version, backends=dependencies))
    partial = home / "lib.partial"
    shutil.rmtree(partial, ignore_errors=True)
    run([mvn, "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={partial}",
         "-DincludeScope=runtime"],
        cwd=home, what=f"resolving Apache Kafka {version} from Maven Central")
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    return lib


@dataclass
class KafkaBroker:
    """A running single-node broker and how to reach it."""

    process: ServerProcess
    bootstrap_servers: str
    data_dir: Path
    version: str = KAFKA_VERSION
    """The Apache Kafka release it runs."""
    listener_ports: dict[str, int] = field(default_factory=dict)
    """Port of each extra listener (e.g. `SASL_PLAINTEXT`), by listener name."""

    def address(self, listener: str) -> str:
        """`host:port` of an extra listener."""
        return f"{LOOPBACK}:{self.listener_ports[listener]}"

    def stop(self) -> None:
        """Stop the broker (its data directory is left for post-mortems)."""
        self.process.stop()


def server_properties(port: int, controller_port: int, log_dir: Path,
                      extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """KRaft combined-mode settings for one node on loopback, tuned for tests and demos."""
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{LOOPBACK}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # The default 3 s delay would slow every consumer-group join.
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.flush.interval.messages": "9223372036854775807",
    }
    properties.update(extra or {})
    return properties


def _jvm(data_dir: Path, version: str) -> list[str]:
    """The java command line (classpath and logging) every broker tool and the broker share."""
    lib = install(version)
    java = require_tool("java", JAVA_HINT)
    logging = logging_of(version)
    config = data_dir / logging.config_name
    if not config.exists():
        config.write_text(logging.config_text)
    return [java, "-Xms256m", "-Xmx1g", *KAFKA_GC_FLAGS, "-Djava.awt.headless=true",
            logging.jvm_flag.format(path=config), "-cp", f"{lib}/*"]


KAFKA_GC_FLAGS = ("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                  "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent")
"""The collector settings Kafka's own start scripts (`kafka-run-class.sh`, which Strimzi's
brokers run too) give a broker: short G1 pauses, so a pause does not stretch a request."""


def _launch(jvm: list[str], data_dir: Path, port: int, *other_ports: int) -> ServerProcess:
    """Start the broker on ``data_dir/server.properties``; wait until it serves on every port."""
    config = data_dir / "server.properties"
    log_path = data_dir / "broker.log"
    started_lines = log_path.read_text(errors="replace").count(READY_LINE) if log_path.exists() else 0
    process = spawn("kafka", [*jvm, "kafka.Kafka", str(config)], log_path)
    process.details = {"bootstrap_servers": f"{LOOPBACK}:{port}", "data_dir": str(data_dir)}

    def ready() -> bool:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        return text.count(READY_LINE) > started_lines and all(
            port_open(each) for each in (port, *other_ports))

    wait_until(process, ready, START_TIMEOUT_S, "starting the Kafka broker")
    return process


def _listener_properties(ports: Mapping[str, int], controller_port: int) -> dict[str, str]:
    """`listeners`, `advertised.listeners` and the protocol map for PLAINTEXT plus extra listeners
    (each named after its security protocol)."""
    served = ",".join(f"{name}://{LOOPBACK}:{port}" for name, port in ports.items())
    return {
        "listeners": f"{served},CONTROLLER://{LOOPBACK}:{controller_port}",
        "advertised.listeners": served,
        "listener.security.protocol.map": ",".join(
            ["CONTROLLER:PLAINTEXT", *(f"{name}:{name}" for name in ports)]),
    }


def start(data_dir: Path, *, version: str = KAFKA_VERSION,
          extra_properties: Mapping[str, str] | None = None,
          extra_listeners: Sequence[str] = (),
          scram_users: Mapping[str, str] | None = None,
          attempts: int = 3) -> KafkaBroker:
    """Format ``data_dir`` and start a broker there on free ports; wait until it serves.

    ``extra_listeners`` are security protocols (`SASL_PLAINTEXT`, `SSL`, `SASL_SSL`) served
    beside PLAINTEXT, each on a port of its own; ``scram_users`` (name -> password) get
    SCRAM-SHA-512 credentials when the storage is formatted (KRaft keeps them in its log).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    jvm = _jvm(data_dir, version)
    scram = [argument for name, password in (scram_users or {}).items()
             for argument in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")]
    last_error: LocalPartError | None = None
    for attempt in range(attempts):
        ports = {name: free_port() for name in ("PLAINTEXT", *extra_listeners)}
        controller_port = free_port()
        log_dir = data_dir / f"data-{attempt}"
        config = data_dir / "server.properties"
        properties = server_properties(ports["PLAINTEXT"], controller_port, log_dir, {
            **_listener_properties(ports, controller_port), **(extra_properties or {})})
        config.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
        cluster_id = run([*jvm, "kafka.tools.StorageTool", "random-uuid"],
                         what="generating a Kafka cluster id").strip().splitlines()[-1]
        run([*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), *scram],
            what="formatting Kafka storage")
        try:
            process = _launch(jvm, data_dir, *ports.values())
        except LocalPartError as error:
            last_error = error
            if "Address already in use" in (data_dir / "broker.log").read_text(errors="replace"):
                continue  # lost a race for the port: try other ports
            raise
        extra = {name: port for name, port in ports.items() if name != "PLAINTEXT"}
        return KafkaBroker(process, f"{LOOPBACK}:{ports['PLAINTEXT']}", data_dir, version, extra)
    assert last_error is not None
    raise last_error


def restart(broker: KafkaBroker, *, hard: bool = False) -> None:
    """Stop ``broker`` and start it again on the same ports and data (no reformat).

    For fault tests: clients see the broker go away and come back at the same
    address with every record and committed offset it had. ``hard`` kills it
    with SIGKILL (a crash: no clean shutdown, log recovery at start) instead
    of stopping it. ``broker.process`` is replaced by the new process.
    """
    if hard:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(broker.process.pid, signal.SIGKILL)
    broker.stop()
    port = int(broker.bootstrap_servers.rsplit(":", 1)[1])
    broker.process = _launch(_jvm(broker.data_dir, broker.version), broker.data_dir, port,
                             *broker.listener_ports.values())


def state_file() -> Path:
    """Where ``up`` remembers the broker for ``down`` and for other commands."""
    return cache_root() / "run" / "kafka.json"


def running() -> ServerProcess | None:
    """The broker started by ``up``, if it still runs."""
    server = ServerProcess.load(state_file())
    if server is None or not server.alive():
        return None
    return server


def up() -> ServerProcess:
    """Start a long-lived local broker (idempotent); its address is in the state file."""
    existing = running()
    if existing is not None:
        return existing
    data_dir = cache_root() / "run" / f"kafka-{uuid.uuid4().hex[:8]}"
    broker = start(data_dir)
    broker.process.save(state_file())
    return broker.process


def down() -> bool:
    """Stop the broker started by ``up``; ``False`` if none ran."""
    return ServerProcess.stop_saved(state_file())


def bootstrap_from_environment() -> str | None:
    """The local broker's address, for commands that were given none."""
    server = running()
    return server.details.get("bootstrap_servers") if server else os.environ.get("KAFKA_BOOTSTRAP")
