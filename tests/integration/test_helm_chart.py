"""The operator chart against the real API server: dry runs, install, upgrade, uninstall."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from localparts import helm
from tests.conftest import Kube
from tests.integration.cluster_manifests import (
    PEERING_CRDS,
    STJ_CRD,
    adopt_for_helm,
    applied_line,
    dry_run,
    require_lines,
    wait_established,
)

NOT_DRY_RUNNABLE = {"ServiceMonitor", "ClusterKopfPeering", "KopfPeering"}
"""Kinds whose CRDs are not installed before the dry run (Prometheus Operator's, or the
chart's own peering CRDs that a dry run does not create)."""


def rendered_documents(values: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    text = helm.template(values, release="dry", namespace=namespace)
    return [doc for doc in yaml.safe_load_all(text)
            if doc and doc["kind"] not in NOT_DRY_RUNNABLE]


def can_i(kube: Kube, service_account: str, verb: str, resource: str, namespace: str) -> bool:
    """Whether the API server's RBAC authorizer lets the operator's ServiceAccount do this.

    ``resource`` may name a subresource after a slash (``jobs.batch/status``).
    """
    resource, _, subresource = resource.partition("/")
    extra = [f"--subresource={subresource}"] if subresource else []
    result = kube.cluster.kubectl(
        "auth", "can-i", verb, resource, *extra, "--namespace", namespace,
        f"--as=system:serviceaccount:{kube.namespace}:{service_account}", check=False,
    )
    return result.stdout.strip() == "yes"


def run_helm(kube: Kube, *arguments: str) -> str:
    completed = helm.helm(*arguments, kubeconfig=kube.cluster.kubeconfig)
    if completed.returncode != 0:
        pytest.fail(f"helm {' '.join(arguments)} failed:\n{completed.stderr}")
    return completed.stdout


def get_json(kube: Kube, *arguments: str) -> dict[str, Any]:
    result = kube.cluster.kubectl("get", *arguments, "-o", "json")
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def exists(kube: Kube, *arguments: str) -> bool:
    result = kube.cluster.kubectl("get", *arguments, "--ignore-not-found", "-o", "name")
    return bool(result.stdout.strip())


@pytest.mark.parametrize(
    "switches",
    [
        {},
        {"watch": {"clusterWide": False}},
        {"peering": {"enabled": True}, "replicaCount": 2, "networkPolicy": {"enabled": True},
         "podDisruptionBudget": {"enabled": True},
         "metrics": {"serviceMonitor": {"enabled": True}}},
        {"crds": {"enabled": False}, "rbac": {"create": False},
         "serviceAccount": {"create": False, "name": "default"}, "metrics": {"enabled": False}},
    ],
    ids=["defaults", "namespaced", "everything-on", "minimal"],
)
def test_it_should_pass_a_server_side_dry_run(kube: Kube, switches: dict[str, Any]) -> None:
    values = json.loads(json.dumps(switches))
    if values.get("watch", {}).get("clusterWide") is False:
        values["watch"]["namespaces"] = [kube.namespace]
    documents = rendered_documents(values, kube.namespace)
    assert documents
    result = dry_run(kube, "---\n".join(yaml.safe_dump(doc) for doc in documents),
                     namespace=kube.namespace)
    require_lines(result.stdout, [applied_line(doc) for doc in documents])


def test_it_should_fail_the_dry_run_of_a_broken_manifest(kube: Kube) -> None:
    documents = rendered_documents({}, kube.namespace)
    deployment = next(doc for doc in documents if doc["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["runAsNonroot"] = True
    result = dry_run(kube, yaml.safe_dump(deployment), namespace=kube.namespace, check=False)
    assert result.returncode != 0
    assert "runAsNonroot" in result.stderr


def test_it_should_install_upgrade_and_uninstall_with_helm(kube: Kube) -> None:
    namespace = kube.namespace
    release = f"op-{namespace[-6:]}"
    account = f"{release}-streamtrain-operator"
    adopt_for_helm(kube, (STJ_CRD, *PEERING_CRDS), release, namespace)

    # install: cluster-wide, one replica, the CRD kept on uninstall
    notes = run_helm(kube, "install", release, str(helm.CHART_DIR), "--namespace", namespace)
    assert "kubectl get stj" in notes and "kubectl apply" in notes
    wait_established(kube.cluster, [STJ_CRD])
    crd = get_json(kube, "crd", STJ_CRD)
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    deployment = get_json(kube, "deployment", account, "-n", namespace)
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert exists(kube, "serviceaccount", account, "-n", namespace)
    assert exists(kube, "clusterrole", account) and exists(kube, "clusterrolebinding", account)
    assert can_i(kube, account, "patch", "streamingtrainingjobs.streamtrain.dev/status", namespace)
    assert can_i(kube, account, "create", "jobs.batch", "default"), "cluster-wide reaches all"
    assert not can_i(kube, account, "get", "secrets", namespace), "least privilege: no Secrets"
    for verb in ("update", "patch"):
        assert not can_i(kube, account, verb, "streamingtrainingjobs.streamtrain.dev", namespace)

    # upgrade: only this namespace, two replicas with peering
    run_helm(kube, "upgrade", release, str(helm.CHART_DIR), "--namespace", namespace,
             "--set", "watch.clusterWide=false", "--set", f"watch.namespaces={{{namespace}}}",
             "--set", "peering.enabled=true", "--set", "replicaCount=2")
    status = json.loads(run_helm(kube, "status", release, "--namespace", namespace,
                                 "--output", "json"))
    assert status["version"] == 2 and status["info"]["status"] == "deployed"
    deployment = get_json(kube, "deployment", account, "-n", namespace)
    assert deployment["spec"]["replicas"] == 2
    env = {item["name"]: item.get("value") for item in
           deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["STREAMTRAIN_OPERATOR_NAMESPACES"] == namespace
    assert env["STREAMTRAIN_OPERATOR_PEERING"] == "streamtrain"
    assert not exists(kube, "clusterrolebinding", account), "the cluster-wide grant is gone"
    assert not exists(kube, "clusterrole", account)
    assert exists(kube, "role", account, "-n", namespace)
    assert can_i(kube, account, "create", "jobs.batch", namespace)
    assert not can_i(kube, account, "create", "jobs.batch", "default")
    wait_established(kube.cluster, list(PEERING_CRDS))
    assert exists(kube, "kopfpeerings.kopf.dev", "streamtrain", "-n", namespace)
    assert can_i(kube, account, "patch", "kopfpeerings.kopf.dev", namespace)

    # a second release for another team's namespace: the CRD belongs to the first one
    other = f"{namespace}-b"
    kube.cluster.kubectl("create", "namespace", other)
    try:
        second = ["install", f"{release}-b", str(helm.CHART_DIR), "--namespace", other,
                  "--set", "watch.clusterWide=false", "--set", f"watch.namespaces={{{other}}}"]
        refused = helm.helm(*second, kubeconfig=kube.cluster.kubeconfig)
        assert refused.returncode != 0 and "invalid ownership metadata" in refused.stderr
        run_helm(kube, *second, "--set", "crds.enabled=false")
        assert exists(kube, "role", f"{release}-b-streamtrain-operator", "-n", other)
        run_helm(kube, "uninstall", f"{release}-b", "--namespace", other, "--wait")
    finally:
        kube.cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)

    # uninstall: the operator goes, the CRD and so every job stays
    run_helm(kube, "uninstall", release, "--namespace", namespace, "--wait")
    assert not exists(kube, "deployment", account, "-n", namespace)
    assert not exists(kube, "role", account, "-n", namespace)
    assert not exists(kube, "clusterrole", account)
    assert exists(kube, "crd", STJ_CRD)

    # reinstall under another name: the kept CRD still names the old release until it is
    # handed over, as the chart's README says (Uninstall)
    renamed = ["install", f"{release}-new", str(helm.CHART_DIR), "--namespace", namespace]
    refused = helm.helm(*renamed, kubeconfig=kube.cluster.kubeconfig)
    assert refused.returncode != 0 and "invalid ownership metadata" in refused.stderr
    assert f'current value is "{release}"' in refused.stderr
    kube.cluster.kubectl("annotate", "crd", "-l", f"app.kubernetes.io/instance={release}",
                         "--overwrite", f"meta.helm.sh/release-name={release}-new",
                         f"meta.helm.sh/release-namespace={namespace}")
    run_helm(kube, *renamed)
    crd = get_json(kube, "crd", STJ_CRD)
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == f"{release}-new"
    assert crd["metadata"]["labels"]["app.kubernetes.io/instance"] == f"{release}-new"
    assert exists(kube, "deployment", f"{release}-new-streamtrain-operator", "-n", namespace)
    run_helm(kube, "uninstall", f"{release}-new", "--namespace", namespace, "--wait")
    assert exists(kube, "crd", STJ_CRD)


def test_it_should_apply_the_plain_install_manifest_through_kustomize(
    kube: Kube, repo_root: Path, tmp_path: Path,
) -> None:
    overlay = repo_root / "gitops" / "kustomize" / "overlays" / "example"
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": kube.namespace,
        "resources": [os.path.relpath(overlay, tmp_path)],  # kustomize wants relative roots
    }))
    rendered = kube.cluster.kubectl("kustomize", str(tmp_path)).stdout
    documents = [doc for doc in yaml.safe_load_all(rendered) if doc]
    deployment = next(doc for doc in documents if doc["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/mirror/streamtrain-operator:0.1.0"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["STREAMTRAIN_OPERATOR_WORKLOAD_IMAGE"] == (
        "registry.example.com/mirror/streamtrain-workload:0.1.0")
    assert container["resources"]["limits"]["memory"] == "512Mi"
    result = dry_run(kube, rendered)
    require_lines(result.stdout, [applied_line(doc) for doc in documents
                                  if doc["kind"] != "Namespace"])


def operator_pod(namespace: str) -> dict[str, Any]:
    """A Pod made from the chart's operator pod template, as the Deployment would create it."""
    deployment = next(doc for doc in rendered_documents({}, namespace)
                      if doc["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    spec = {**template["spec"], "serviceAccountName": "default"}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "operator", "labels": template["metadata"]["labels"]},
            "spec": spec}


def test_it_should_admit_the_operator_pod_under_the_restricted_pod_security_level(
    kube: Kube,
) -> None:
    kube.cluster.kubectl("label", "namespace", kube.namespace,
                         "pod-security.kubernetes.io/enforce=restricted")
    deadline = time.monotonic() + 30
    while not exists(kube, "serviceaccount", "default", "-n", kube.namespace):
        assert time.monotonic() < deadline, "the controller manager made no default ServiceAccount"
        time.sleep(0.2)
    pod = operator_pod(kube.namespace)
    admitted = dry_run(kube, yaml.safe_dump(pod), namespace=kube.namespace)
    assert "pod/operator serverside-applied (server dry run)" in admitted.stdout

    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    refused = dry_run(kube, yaml.safe_dump(pod), namespace=kube.namespace, check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr
