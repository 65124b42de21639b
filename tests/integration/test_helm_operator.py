"""The operator runs as the chart configures it: its command, settings, RBAC and probe endpoint.

No kubelet runs here, so the test plays its part for the operator pod: it
runs the Deployment's command with the Deployment's environment, as the
chart's ServiceAccount (a token from the TokenRequest API), and probes the
endpoint the liveness and readiness probes name. Only the bind address is
changed, to keep the endpoints on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localparts import helm
from localparts.ports import free_port
from tests.conftest import Kube
from tests.integration.cluster_manifests import (
    PEERING_CRDS,
    STJ_CRD,
    adopt_for_helm,
    wait_established,
)

START_TIMEOUT_S = 60.0
"""Seconds the operator may take to answer its liveness probe and to write a first status."""


def poll(condition: Any, timeout_s: float, what: str, process: subprocess.Popen[bytes],
         log: Path) -> Any:
    """Poll ``condition`` until truthy; fail with the operator's log if it dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(f"the operator exited ({process.returncode}) while waiting for {what}:\n"
                        f"{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-4000:]}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


def service_account_kubeconfig(kube: Kube, account: str, path: Path) -> Path:
    """The admin kubeconfig with its credentials replaced by a token of ``account``."""
    core: Any = kube.cluster.core  # the client's stubs want model objects, not dicts
    token = core.create_namespaced_service_account_token(
        account, kube.namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    config = yaml.safe_load(kube.cluster.kubeconfig.read_text())
    config["users"] = [{"name": user["name"], "user": {"token": token}}
                       for user in config["users"]]
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def chart_release(kube: Kube, health_port: int, metrics_port: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The chart installed for this namespace only; yields the operator's ServiceAccount and
    the Deployment's pod template spec, and uninstalls the release at the end."""
    namespace = kube.namespace
    release = f"run-{namespace[-6:]}"
    account = f"{release}-streamtrain-operator"
    adopt_for_helm(kube, (STJ_CRD, *PEERING_CRDS), release, namespace)
    completed = helm.helm(
        "install", release, helm.CHART_DIR, "--namespace", namespace,
        "--set", "watch.clusterWide=false", "--set", f"watch.namespaces={{{namespace}}}",
        "--set", f"health.port={health_port}", "--set", f"metrics.port={metrics_port}",
        kubeconfig=kube.cluster.kubeconfig)
    assert completed.returncode == 0, completed.stderr
    try:
        wait_established(kube.cluster, [STJ_CRD])
        deployment = json.loads(kube.cluster.kubectl(
            "get", "deployment", account, "-n", namespace, "-o", "json").stdout)
        yield account, deployment["spec"]["template"]["spec"]
    finally:
        helm.helm("uninstall", release, "--namespace", namespace,
                  kubeconfig=kube.cluster.kubeconfig)


@pytest.fixture
def chart_operator(kube: Kube, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path,
                                                                  dict[str, Any]]]:
    """The chart installed for this namespace only, and its operator running as its pod would."""
    with chart_release(kube, free_port(), free_port()) as (account, pod):
        container = pod["containers"][0]
        env = {item["name"]: item["value"] for item in container["env"]}
        env |= {"KUBECONFIG": str(service_account_kubeconfig(kube, account, tmp_path / "sa.yaml")),
                "STREAMTRAIN_OPERATOR_BIND_ADDRESS": "127.0.0.1",
                "PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
        log = tmp_path / "operator.log"
        command = [str(Path(sys.executable).parent / container["command"][0])]
        with log.open("wb") as sink:
            process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                       cwd=tmp_path)
        try:
            yield process, log, container
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_it_should_answer_the_probes_and_run_jobs_with_only_the_charts_grants(
    kube: Kube, repo_root: Path,
    chart_operator: tuple[subprocess.Popen[bytes], Path, dict[str, Any]],
) -> None:
    process, log, container = chart_operator
    probe = container["livenessProbe"]["httpGet"]
    assert probe == container["readinessProbe"]["httpGet"]
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == probe["port"])
    poll(lambda: http_ok(f"http://127.0.0.1:{port}{probe['path']}"), START_TIMEOUT_S,
         "the liveness endpoint", process, log)
    metrics = next(p["containerPort"] for p in container["ports"] if p["name"] == "metrics")
    assert http_ok(f"http://127.0.0.1:{metrics}/metrics")

    job = yaml.safe_load((repo_root / "examples" / "04-online-forever" / "job.yaml").read_text())
    kube.cluster.kubectl("apply", "--server-side", "-n", kube.namespace, "-f", "-",
                         stdin=yaml.safe_dump(job))

    def status_phase() -> str | None:
        custom: Any = kube.cluster.custom
        found = custom.get_namespaced_custom_object(
            "streamtrain.dev", "v1alpha1", kube.namespace, "streamingtrainingjobs",
            job["metadata"]["name"])
        phase: str | None = (found.get("status") or {}).get("phase")
        return phase

    phase = poll(status_phase, START_TIMEOUT_S, "the operator to write the job's status",
                 process, log)
    assert phase in {"Pending", "Online"}
    text = log.read_text(errors="replace")
    assert "Forbidden" not in text and " 403" not in text, text[-4000:]
