"""Putting manifests before the real API server: CRDs installed once, dry runs, Helm ownership."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.conftest import Kube, KubeCluster

STRIMZI_VERSION = "1.2.0"
STJ_CRD = "streamingtrainingjobs.streamtrain.dev"
PEERING_CRDS = ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")


def strimzi_crds_dir(repo_root: Path) -> Path:
    """Strimzi's CRDs (kafka.strimzi.io/v1), copied into the repository (see its README)."""
    return repo_root / "tests" / "data" / "strimzi-crds" / STRIMZI_VERSION


ESTABLISH_TIMEOUT_S = 60.0
"""Seconds a new CRD may take to be served."""


def wait_established(cluster: KubeCluster, names: list[str]) -> None:
    """Poll until every named CRD's `Established` condition is true."""
    deadline = time.monotonic() + ESTABLISH_TIMEOUT_S
    pending = list(names)
    while pending and time.monotonic() < deadline:
        crd = cluster.apiextensions.read_custom_resource_definition(pending[0])
        conditions = (crd.status.conditions if crd.status else None) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            pending.pop(0)
        else:
            time.sleep(0.2)
    if pending:
        pytest.fail(f"CRDs not established within {ESTABLISH_TIMEOUT_S:.0f} s: {pending}")


def crd_versions(folder: Path) -> dict[str, set[str]]:
    """The API versions each CRD in ``folder`` serves, by CRD name."""
    return {doc["metadata"]["name"]: {version["name"] for version in doc["spec"]["versions"]}
            for path in sorted(folder.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text())
            if doc and doc.get("kind") == "CustomResourceDefinition"}


def serving(cluster: KubeCluster, name: str, versions: set[str]) -> bool:
    """Whether CRD ``name`` exists, is established and serves ``versions``."""
    api: Any = cluster.apiextensions
    try:  # raw JSON: Strimzi's CRDs are megabytes, too slow to turn into client models
        response = api.read_custom_resource_definition(name, _preload_content=False)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return False
        raise
    crd = json.loads(response.data)
    served = {version["name"] for version in crd["spec"]["versions"] if version["served"]}
    conditions = (crd.get("status") or {}).get("conditions") or []
    established = any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
    return established and versions <= served and "deletionTimestamp" not in crd["metadata"]


def apply_crds(cluster: KubeCluster, folder: Path) -> None:
    """Apply the CRDs in ``folder`` unless already served (they are shared by the session)."""
    wanted = crd_versions(folder)
    if all(serving(cluster, name, versions) for name, versions in wanted.items()):
        return
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(folder))
    wait_established(cluster, list(wanted))


def dry_run(kube: Kube, manifests: str, *, namespace: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """A server-side apply of ``manifests`` that the API server validates but does not store."""
    arguments = ["apply", "--server-side", "--force-conflicts", "--dry-run=server",
                 "--validate=strict", "-f", "-"]
    if namespace:
        arguments[1:1] = ["--namespace", namespace]
    return kube.cluster.kubectl(*arguments, stdin=manifests, check=check)


def adopt_for_helm(kube: Kube, names: tuple[str, ...], release: str, namespace: str) -> None:
    """Mark existing cluster objects as the release's, as Helm requires before it takes them over.

    CRDs are shared by the whole test session (other tests apply them with
    kubectl); this is the documented way to hand such objects to a release.
    """
    for name in names:
        found = kube.cluster.kubectl("get", "crd", name, "--ignore-not-found", "-o", "name")
        if not found.stdout.strip():
            continue
        kube.cluster.kubectl("label", "--overwrite", "crd", name,
                             "app.kubernetes.io/managed-by=Helm")
        kube.cluster.kubectl("annotate", "--overwrite", "crd", name,
                             f"meta.helm.sh/release-name={release}",
                             f"meta.helm.sh/release-namespace={namespace}")


def applied_line(document: dict[str, Any]) -> str:
    """What kubectl prints for ``document`` after a server-side dry run."""
    api_version = document["apiVersion"]
    group = api_version.split("/")[0] if "/" in api_version else ""
    kind = document["kind"].lower() + (f".{group}" if group else "")
    return f"{kind}/{document['metadata']['name']} serverside-applied (server dry run)"


def require_lines(output: str, expected: list[str]) -> None:
    """Fail unless every expected fragment appears in kubectl's output."""
    missing = [line for line in expected if line not in output]
    if missing:
        pytest.fail(f"missing from kubectl output: {missing}\n{output}")
