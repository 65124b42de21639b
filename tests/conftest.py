"""Fixtures that start and stop the real parts: a Kafka broker, a schema registry and a
Kubernetes control plane.

Servers are session-scoped (started once, stopped at the end); what a test
touches (topics, namespaces) is fresh per test so tests never see each
other's data.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.util
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis
import kubernetes
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from localparts import controlplane, kube_build, registry
from localparts import kafka as local_kafka
from localparts import kueue as local_kueue
from workload.kafka.bounds import end_offsets
from workload.kafka.connection import KafkaConnection

# Property tests judge what the code does, never how long an example takes: Hypothesis' default
# 200 ms deadline per example fails a loaded or slow machine (302 ms seen under a load of 20).
hypothesis.settings.register_profile("any-machine", deadline=None)
hypothesis.settings.load_profile("any-machine")

TENSORFLOW_IO_TESTS = "test_tensorflow_io_*.py"
"""The test modules of the `client: tensorflow-io` reader. tensorflow-io 0.37.1 loads only with
TensorFlow 2.16, so they run in the environment of its own pin set (`pip install -e
'.[dev-tfio]'`; `make test` runs them in <cache>/venv-tfio after the rest) with
`pytest --tensorflow-io`, which collects only them; a plain `pytest` collects all the others."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--tensorflow-io", action="store_true",
                     help=f"run only the tensorflow-io client's tests ({TENSORFLOW_IO_TESTS}), "
                          "in an environment with the workload-tfio extra")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--tensorflow-io") and importlib.util.find_spec("tensorflow_io") is None:
        raise pytest.UsageError(
            "--tensorflow-io runs the tensorflow-io client's tests, and this environment has no "
            "tensorflow_io: run them with <cache>/venv-tfio/bin/python (make test creates it) or "
            "in an environment with pip install -e '.[dev-tfio]'")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Each environment collects its own test modules (`TENSORFLOW_IO_TESTS`)."""
    if not collection_path.name.startswith("test_") or collection_path.suffix != ".py":
        return None
    tensorflow_io = fnmatch.fnmatch(collection_path.name, TENSORFLOW_IO_TESTS)
    if config.getoption("--tensorflow-io"):
        return not tensorflow_io
    return True if tensorflow_io else None


def pytest_report_header(config: pytest.Config) -> str:
    if config.getoption("--tensorflow-io"):
        return f"tensorflow-io client tests only ({TENSORFLOW_IO_TESTS})"
    return (f"{TENSORFLOW_IO_TESTS} left out: they run in the tensorflow-io set's environment "
            "(pytest --tensorflow-io, part of make test)")


@dataclass
class KafkaHandle:
    """A running broker for tests: its address, an admin client and topic helpers."""

    bootstrap_servers: str
    admin: KafkaAdminClient
    broker: local_kafka.KafkaBroker
    created: list[str] = field(default_factory=list)

    def create_topic(self, prefix: str = "t", partitions: int = 1) -> str:
        """A new topic with a unique name; deleted at the end of the session."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.admin.create_topics([NewTopic(name, partitions, 1)])
        self.created.append(name)
        return name

    def producer(self, **settings: object) -> KafkaProducer:
        """A producer bound to the broker."""
        return KafkaProducer(bootstrap_servers=self.bootstrap_servers, **settings)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Each partition's end offset (the count of records written to it)."""
        return end_offsets(KafkaConnection(self.bootstrap_servers), topic)

    def committed(self, group: str) -> dict[tuple[str, int], int]:
        """A consumer group's committed offsets, by (topic, partition)."""
        offsets = self.admin.list_group_offsets(group)[group]
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


_brokers_to_stop_at_exit: list[local_kafka.KafkaBroker] = []
_exit_status: list[int] = []


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> local_kafka.KafkaBroker:
    """A real Apache Kafka broker (KRaft, one node, Kafka 4.x) on 127.0.0.1, for the session.

    It is stopped only as this process exits (see `pytest_unconfigure`):
    tensorflow-io never frees its librdkafka handles, and when their broker
    goes away their threads log through a callback that no longer exists and
    crash the process.
    """
    broker = local_kafka.start(tmp_path_factory.mktemp("kafka"))
    _brokers_to_stop_at_exit.append(broker)
    return broker


@pytest.fixture(scope="session")
def kafka3_broker(tmp_path_factory: pytest.TempPathFactory) -> local_kafka.KafkaBroker:
    """A Kafka 3.x broker (`COMPAT_KAFKA_VERSION`), for the tensorflow-io client's tests; started
    only when a test asks for it, stopped like `kafka_broker`."""
    broker = local_kafka.start(tmp_path_factory.mktemp("kafka3"),
                               version=local_kafka.COMPAT_KAFKA_VERSION)
    _brokers_to_stop_at_exit.append(broker)
    return broker


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if (session.config.getoption("--tensorflow-io")
            and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = exitstatus = pytest.ExitCode.OK  # the arguments named none of them
    _exit_status.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the broker and leave at once, before leaked librdkafka threads see it go."""
    if not _brokers_to_stop_at_exit:
        return
    for broker in _brokers_to_stop_at_exit:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(broker.process.pid, signal.SIGTERM)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status[-1] if _exit_status else 1)


@contextlib.contextmanager
def _handle(broker: local_kafka.KafkaBroker) -> Iterator[KafkaHandle]:
    if not broker.process.alive():
        pytest.fail(f"the Kafka broker died; log tail:\n{broker.process.log()}")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        yield KafkaHandle(broker.bootstrap_servers, admin, broker)
    finally:
        admin.close()


@pytest.fixture(scope="session")
def kafka(kafka_broker: local_kafka.KafkaBroker) -> Iterator[KafkaHandle]:
    """The session's broker with an admin client and topic helpers."""
    with _handle(kafka_broker) as handle:
        yield handle


@pytest.fixture(scope="session")
def kafka3(kafka3_broker: local_kafka.KafkaBroker) -> Iterator[KafkaHandle]:
    """The Kafka 3.x broker with an admin client and topic helpers."""
    with _handle(kafka3_broker) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _broker_alive_after(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that used a broker fails with the broker's log tail if the broker crashed."""
    yield
    for uses, fixture in ((("kafka", "kafka_broker"), "kafka_broker"),
                          (("kafka3", "kafka3_broker"), "kafka3_broker")):
        if any(name in request.fixturenames for name in uses):
            broker: local_kafka.KafkaBroker = request.getfixturevalue(fixture)
            if not broker.process.alive():
                pytest.fail(f"the Kafka broker crashed; log tail:\n{broker.process.log()}")


@pytest.fixture(scope="session")
def schema_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry.Registry]:
    """A real schema registry (Apicurio Registry, in-memory storage) on 127.0.0.1, for the
    session; started only when a test asks for it (fetched on first use if `make parts` has
    not), stopped with SIGTERM at the end. Tests keep apart by subject names of their own."""
    started = registry.start(tmp_path_factory.mktemp("registry"))
    yield started
    started.stop()


@dataclass
class KubeCluster:
    """The session's control plane with API clients bound to its admin kubeconfig."""

    plane: controlplane.ControlPlane
    api: kubernetes.client.ApiClient

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (for kubectl, helm and subprocesses)."""
        return self.plane.kubeconfig

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    @property
    def batch(self) -> kubernetes.client.BatchV1Api:
        return kubernetes.client.BatchV1Api(self.api)

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    @property
    def apiextensions(self) -> kubernetes.client.ApiextensionsV1Api:
        return kubernetes.client.ApiextensionsV1Api(self.api)

    @property
    def rbac(self) -> kubernetes.client.RbacAuthorizationV1Api:
        return kubernetes.client.RbacAuthorizationV1Api(self.api)

    def kubectl(self, *arguments: str, check: bool = True,
                stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the project's kubectl against the cluster; fail the test with its stderr."""
        command = [str(kube_build.binary_dir() / "kubectl"), "--kubeconfig",
                   str(self.kubeconfig), *arguments]
        result = subprocess.run(command, capture_output=True, text=True, input=stdin,
                                timeout=120, check=False)
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(arguments)} failed:\n{result.stderr}")
        return result


@dataclass
class Kube:
    """The cluster plus a fresh namespace for one test."""

    cluster: KubeCluster
    namespace: str

    def __getattr__(self, name: str) -> object:
        return getattr(self.cluster, name)


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A real etcd + kube-apiserver + kube-controller-manager on 127.0.0.1, for the session."""
    plane = controlplane.start(tmp_path_factory.mktemp("controlplane"))
    api = kubernetes.config.new_client_from_config(config_file=str(plane.kubeconfig))
    yield KubeCluster(plane, api)
    api.close()
    plane.stop()


@pytest.fixture(scope="session")
def kueue(kube_cluster: KubeCluster,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_kueue.KueueManager]:
    """Kueue's manager (CRDs, webhooks) on the session's control plane, started the first time
    a test asks for it; its webhook configurations are removed before it stops."""
    manager = local_kueue.start(kube_cluster.kubeconfig, tmp_path_factory.mktemp("kueue"),
                                kube_build.binary_dir() / "kubectl")
    yield manager
    manager.stop()


@pytest.fixture
def kube(kube_cluster: KubeCluster, request: pytest.FixtureRequest) -> Iterator[Kube]:
    """The cluster and a namespace of this test's own, deleted afterwards."""
    controlplane.require_running(kube_cluster.plane)
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    kube_cluster.core.create_namespace({"metadata": {"name": name}})
    yield Kube(kube_cluster, name)
    kube_cluster.core.delete_namespace(name)
    dead = kube_cluster.plane.dead()
    if dead:
        pytest.fail("; ".join(f"{p.name} crashed; log tail:\n{p.log()}" for p in dead))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root folder."""
    return Path(__file__).resolve().parent.parent


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
