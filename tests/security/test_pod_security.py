"""The pods the operator builds pass Pod Security's `restricted` level on a real API server.

The local kube-apiserver runs Pod Security admission (its default). A namespace
labelled `enforce=restricted` admits the trainer, evaluator and online pods as
`build_job_manifest` writes them, both created directly and created by the Job
controller; pods that break the level, and a Job whose template breaks it, are
refused, which shows the check is live rather than vacuous.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest
from streamtrain_operator.builders import KafkaAccess, Manifest, build_job_manifest
from streamtrain_operator.deployment import build_deployment_manifest

from tests.conftest import Kube
from tests.e2e.harness import eventually
from workload.contract import PHASE_MODES, Mode
from workload.spec import parse_spec

SPEC = parse_spec({
    "kafka": {"bootstrapServers": "kafka:9092"},
    "train": {"topic": "susy-train"},
    "evaluate": {"topic": "susy-test", "consumerGroup": "eval"},
    "online": {"topic": "susy-train", "consumerGroup": "online"},
    "serve": {"inputTopic": "susy-test", "outputTopic": "susy-predictions"},
    "model": {"output": {"path": "/models/susy", "volumeClaim": "susy-models"}},
})

ACCESS = KafkaAccess("kafka:9093", user_secret="trainer", username="trainer",
                     cluster_ca_secret="my-cluster-cluster-ca-cert")
"""Every volume the builder can add: the KafkaUser and cluster CA Secrets too."""


def job_manifest(kube: Kube, mode: Mode) -> Manifest:
    """The operator's Job for `mode`, without its owner (no StreamingTrainingJob exists here,
    and the garbage collector would delete a Job whose owner is missing)."""
    manifest = build_job_manifest("susy", kube.namespace, "0000-uid", mode, SPEC, ACCESS)
    del manifest["metadata"]["ownerReferences"]
    return manifest


def pod_of(job: Manifest) -> Manifest:
    """The Job's pod template as a standalone Pod."""
    template = job["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": job["metadata"]["name"], "labels": template["metadata"]["labels"]},
            "spec": copy.deepcopy(template["spec"])}


def core(kube: Kube) -> Any:
    """The core API (untyped: manifests here are plain dicts)."""
    return kube.cluster.core


def batch(kube: Kube) -> Any:
    """The batch API (untyped: manifests here are plain dicts)."""
    return kube.cluster.batch


def rejection(kube: Kube, pod: Manifest) -> str | None:
    """The API server's refusal of `pod`, or `None` when it is admitted."""
    try:
        core(kube).create_namespaced_pod(kube.namespace, pod)
    except kubernetes.client.ApiException as error:
        message: str = json.loads(str(error.body))["message"]
        return message
    return None


def _container(pod: Manifest) -> Manifest:
    container: Manifest = pod["spec"]["containers"][0]
    return container


def _privileged(pod: Manifest) -> None:
    context = _container(pod)["securityContext"]
    context["privileged"] = True
    context["allowPrivilegeEscalation"] = True  # validation refuses privileged without it


def _escalation_allowed(pod: Manifest) -> None:
    _container(pod)["securityContext"]["allowPrivilegeEscalation"] = True


def _capabilities_kept(pod: Manifest) -> None:
    del _container(pod)["securityContext"]["capabilities"]


def _root_user(pod: Manifest) -> None:
    for context in (pod["spec"]["securityContext"], _container(pod)["securityContext"]):
        context["runAsNonRoot"] = False
        context["runAsUser"] = 0


def _no_seccomp(pod: Manifest) -> None:
    del pod["spec"]["securityContext"]["seccompProfile"]
    del _container(pod)["securityContext"]["seccompProfile"]


def _host_path(pod: Manifest) -> None:
    pod["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/var/run"}})


BREAKS: dict[str, tuple[Callable[[Manifest], None], str]] = {
    "privileged": (_privileged, "privileged"),
    "privilege-escalation": (_escalation_allowed, "allowPrivilegeEscalation"),
    "capabilities-not-dropped": (_capabilities_kept, "capabilities"),
    "root-user": (_root_user, "runAsNonRoot"),
    "no-seccomp-profile": (_no_seccomp, "seccompProfile"),
    "host-path-volume": (_host_path, "hostPath"),
}
"""Ways to leave `restricted`, and the word Pod Security's refusal must use for each."""


@pytest.fixture
def restricted(kube: Kube) -> Kube:
    """The test's namespace, enforcing Pod Security's `restricted` level."""
    kube.cluster.core.patch_namespace(kube.namespace, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest"}}})
    return kube


@pytest.mark.parametrize("mode", PHASE_MODES)
def test_restricted_namespace_admits_the_operators_pod_of_each_mode(
        restricted: Kube, mode: Mode) -> None:
    pod = pod_of(job_manifest(restricted, mode))
    assert rejection(restricted, pod) is None
    created = core(restricted).read_namespaced_pod(pod["metadata"]["name"],
                                                          restricted.namespace)
    assert created.spec.containers[0].security_context.run_as_non_root is True


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_restricted_namespace_refuses_a_pod_that_breaks_the_level(
        restricted: Kube, name: str) -> None:
    pod = pod_of(job_manifest(restricted, "train"))
    pod["metadata"]["name"] = f"broken-{name}"
    breaks, named = BREAKS[name]
    breaks(pod)
    refused = rejection(restricted, pod)
    assert refused is not None, f"a pod with {name} was admitted"
    assert 'violates PodSecurity "restricted' in refused and named in refused


def _created_pods(kube: Kube, job: str) -> list[Any]:
    return list(core(kube).list_namespaced_pod(
        kube.namespace, label_selector=f"job-name={job}").items)


def _failed_creates_text(kube: Kube, job: str) -> str:
    return "; ".join(_failed_creates(kube, job))


def _failed_creates(kube: Kube, job: str) -> list[str]:
    events = core(kube).list_namespaced_event(
        kube.namespace, field_selector=f"involvedObject.name={job}").items
    return [str(event.message) for event in events if event.reason == "FailedCreate"]


def test_job_controller_creates_the_operators_pods_in_a_restricted_namespace(
        restricted: Kube) -> None:
    names = []
    for mode in PHASE_MODES:
        job = job_manifest(restricted, mode)
        batch(restricted).create_namespaced_job(restricted.namespace, job)
        names.append(job["metadata"]["name"])
    for name in names:
        eventually(functools.partial(_created_pods, restricted, name), 60,
                   f"a pod of Job {name}",
                   functools.partial(_failed_creates_text, restricted, name))
        assert not _failed_creates(restricted, name)


def test_the_replicaset_controller_creates_the_serving_pods_in_a_restricted_namespace(
        restricted: Kube) -> None:
    deployment = build_deployment_manifest("susy", restricted.namespace, "0000-uid", SPEC,
                                           ACCESS, replicas=2)
    del deployment["metadata"]["ownerReferences"]
    apps: Any = kubernetes.client.AppsV1Api(restricted.cluster.api)
    apps.create_namespaced_deployment(restricted.namespace, deployment)
    selector = ",".join(f"{key}={value}" for key, value in
                        deployment["spec"]["selector"]["matchLabels"].items())

    def serving_pods() -> list[Any]:
        return list(core(restricted).list_namespaced_pod(
            restricted.namespace, label_selector=selector).items)

    pods = eventually(lambda: len(serving_pods()) == 2 and serving_pods(), 60,
                      "the two serving pods")
    assert all(pod.spec.containers[0].security_context.run_as_non_root for pod in pods)


def test_job_controller_cannot_create_a_non_restricted_pod(restricted: Kube) -> None:
    job = job_manifest(restricted, "train")
    job["metadata"]["name"] = "privileged-train"
    _privileged({"spec": job["spec"]["template"]["spec"]})
    batch(restricted).create_namespaced_job(restricted.namespace, job)
    refused = eventually(lambda: _failed_creates(restricted, "privileged-train"), 60,
                         "the Job controller's FailedCreate event")
    assert 'violates PodSecurity "restricted' in refused[0]
    assert not _created_pods(restricted, "privileged-train")
