"""Through the operator: a KafkaUser whose Secret holds the right password trains over SCRAM, one
with a wrong password fails the job with a condition that says so, and neither password shows
up in the job's status, its events, the child Jobs, the pods' status or any log.

Both jobs run side by side in a namespace that enforces Pod Security's `restricted` level; the
operator and the pods run as local processes (`KubeletAgent` plays the kubelet).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Kube
from tests.e2e.harness import (
    Jobs,
    OperatorProcess,
    StrimziObjects,
    eventually,
    install_streamtrain_crd,
    install_strimzi_crds,
    remove_strimzi_crds,
)
from tests.e2e.kubelet_agent import KubeletAgent
from tests.security.conftest import ScramKafka

STRIMZI_RELEASE = "1.2.0"
FINISH_TIMEOUT_S = 180.0
USERS = {"trainer": "right", "trainer-stale": "wrong"}
"""KafkaUser name -> which password its Secret holds (both log in as the SCRAM user `trainer`)."""


@dataclass
class Operated:
    """What serves the test's namespace: the operator, the kubelet agent, Strimzi's API version."""

    operator: OperatorProcess
    agent: KubeletAgent
    strimzi_version: str


@pytest.fixture
def operated(kube: Kube, tmp_path: Path) -> Iterator[Operated]:
    """A restricted namespace with the CRDs, the operator and the kubelet agent serving it."""
    kube.cluster.core.patch_namespace(kube.namespace, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}})
    install_streamtrain_crd(kube.cluster.api)
    version = install_strimzi_crds(kube.cluster.api, STRIMZI_RELEASE)
    operator = OperatorProcess(kube.cluster.kubeconfig, kube.namespace,
                               tmp_path / "operator.log").start()
    agent = KubeletAgent(kube.cluster.api, kube.namespace, tmp_path / "pods").start()
    yield Operated(operator, agent, version)
    agent.stop()
    operator.stop()
    remove_strimzi_crds(kube.cluster.api)


def _serialised(api: Any, objects: Any) -> str:
    """API objects as the JSON the API server holds."""
    return json.dumps(api.sanitize_for_serialization(objects))


def test_kafka_user_secrets_drive_scram_through_the_operator_without_leaking(
        kube: Kube, scram_kafka: ScramKafka,
        operated: Operated) -> None:
    operator, agent = operated.operator, operated.agent
    core: Any = kube.cluster.core
    strimzi = StrimziObjects(kube.cluster.api, kube.namespace, operated.strimzi_version)
    strimzi.cluster("scram", scram_kafka.broker.scram_servers, authentication="scram-sha-512")
    passwords = {"right": scram_kafka.password, "wrong": scram_kafka.wrong_password}
    jobs = Jobs(kube.cluster.api, kube.namespace)
    for user, which in USERS.items():
        strimzi.scram_user(user, scram_kafka.username)
        core.create_namespaced_secret(kube.namespace, {  # as Strimzi's User Operator writes it
            "metadata": {"name": user}, "stringData": {"password": passwords[which]}})
        jobs.create(which, {
            "kafka": {"clusterRef": {"name": "my-cluster", "listener": "scram"},
                      "userRef": {"name": user}},
            "train": {"topic": scram_kafka.train_topic, "epochs": 1},
            "runPolicy": {"backoffLimit": 0}})

    def diagnose() -> str:
        return (f"{jobs.status('right')}\n{jobs.status('wrong')}\n{operator.tail()}\n"
                f"{agent.logs()}")
    def finished() -> bool:
        return all(jobs.phase(name) in ("Succeeded", "Failed") for name in ("right", "wrong"))
    eventually(finished, FINISH_TIMEOUT_S, "both jobs to finish", diagnose)

    assert jobs.phase("right") == "Succeeded", diagnose()
    assert jobs.status("right")["bootstrapServers"] == scram_kafka.broker.scram_servers
    assert jobs.phase("wrong") == "Failed", diagnose()
    failed = jobs.condition("wrong", "Failed")
    assert failed is not None
    assert "refused the SCRAM-SHA-512 login of user 'trainer'" in failed["message"]

    api = kube.cluster.api
    traces = "\n".join([
        json.dumps([jobs.get(name) for name in ("right", "wrong")]),
        _serialised(api, core.list_namespaced_event(kube.namespace).items),
        _serialised(api, kube.cluster.batch.list_namespaced_job(kube.namespace).items),
        _serialised(api, core.list_namespaced_pod(kube.namespace).items),
        operator.tail(100_000),
        *(log.read_text(errors="replace") for log in agent.workdir.glob("*/container.log")),
    ])
    assert "refused the SCRAM-SHA-512 login" in traces  # the search reaches the failure's words
    for password in passwords.values():
        assert password not in traces
