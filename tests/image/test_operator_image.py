"""The operator image: its command, what it leaves out, and a job reconciled against the real
control plane as the chart's ServiceAccount, the way the chart's pod runs it."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from localparts import containers, image
from localparts.ports import free_port
from tests.conftest import Kube
from tests.image.conftest import Image, source_modules
from tests.image.service_address import SERVICE_HOST, SERVICE_PORT, ServiceRelay
from tests.integration.test_helm_operator import chart_release

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where a pod finds its ServiceAccount token, CA certificate and namespace."""

RECONCILE_TIMEOUT_S = 90.0
"""Seconds for the operator in its image to start, log in and write a job's first status."""


def test_it_should_answer_help(operator_image: Image) -> None:
    completed = operator_image.run("streamtrain-operator", "--help")
    assert completed.returncode == 0, completed.stderr
    assert "usage: streamtrain-operator" in completed.stdout


def test_it_should_hold_neither_tensorflow_nor_the_local_parts(operator_image: Image) -> None:
    for module in ("tensorflow", "localparts"):
        completed = operator_image.run("python3", "-c", f"import {module}")
        assert completed.returncode == 1, f"{module} is in the operator image"
        assert f"No module named '{module}'" in completed.stderr
    imports = operator_image.run("python3", "-c", "import kopf, kubernetes, streamtrain_operator.handlers")
    assert imports.returncode == 0, imports.stderr


def test_it_should_hold_every_operator_module_at_the_pinned_versions(
    operator_image: Image, repo_root: Path,
) -> None:
    pinned = image.pins("operator")
    found = operator_image.probe("streamtrain_operator", sorted(pinned))
    assert found["modules"] == source_modules(repo_root / "operator" / "streamtrain_operator",
                                              "streamtrain_operator")
    assert found["versions"] == pinned


def test_it_should_run_as_65532_with_only_tmp_writable(operator_image: Image) -> None:
    completed = operator_image.run("sh", "-c", "id -u; touch /tmp/ok && echo tmp; touch /opt/x")
    assert completed.stdout.split() == ["65532", "tmp"]
    assert "Read-only file system" in completed.stderr


def _service_account_files(kube: Kube, account: str, folder: Path) -> Path:
    """What the kubelet projects into a pod: a token of `account`, the cluster CA, the namespace."""
    core: Any = kube.cluster.core
    token = core.create_namespaced_service_account_token(
        account, kube.namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    config = yaml.safe_load(kube.cluster.kubeconfig.read_text())
    folder.mkdir()
    (folder / "token").write_text(token)
    (folder / "ca.crt").write_bytes(Path(config["clusters"][0]["cluster"]["certificate-authority"])
                                    .read_bytes())
    (folder / "namespace").write_text(kube.namespace)
    return folder


def _phase(kube: Kube, name: str) -> str | None:
    custom: Any = kube.cluster.custom
    found = custom.get_namespaced_custom_object("streamtrain.dev", "v1alpha1", kube.namespace,
                                                "streamingtrainingjobs", name)
    phase: str | None = (found.get("status") or {}).get("phase")
    return phase


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def test_it_should_reconcile_a_job_as_the_charts_service_account(
    operator_image: Image, kube: Kube, repo_root: Path, tmp_path: Path,
) -> None:
    with chart_release(kube, free_port(), free_port()) as (account, pod):
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        user = f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
        server = urlparse(yaml.safe_load(kube.cluster.kubeconfig.read_text())
                          ["clusters"][0]["cluster"]["server"])
        relay = ServiceRelay(str(server.hostname), int(server.port or 443))
        env = {item["name"]: item["value"] for item in container["env"]}
        env |= {"STREAMTRAIN_OPERATOR_BIND_ADDRESS": "127.0.0.1",
                # The name, not the relay's address: the serving certificate names it.
                "KUBERNETES_SERVICE_HOST": SERVICE_HOST,
                "KUBERNETES_SERVICE_PORT": str(SERVICE_PORT)}
        tokens = _service_account_files(kube, account, tmp_path / "serviceaccount")
        name = f"operator-{uuid.uuid4().hex[:8]}"
        argv = containers.run_command(
            operator_image.name, container["command"], name=name, env=env, user=user,
            mounts=[containers.Mount(tokens, SERVICE_ACCOUNT_DIR, read_only=True)],
            hosts={SERVICE_HOST: relay.address})
        log = tmp_path / "operator.log"
        with relay, log.open("wb") as sink:
            started = time.monotonic()
            process = subprocess.Popen(argv, env=containers.environment(), stdout=sink,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                job = yaml.safe_load((repo_root / "examples" / "04-online-forever" / "job.yaml")
                                     .read_text())
                kube.cluster.kubectl("apply", "--server-side", "-n", kube.namespace, "-f", "-",
                                     stdin=yaml.safe_dump(job))
                probe = container["livenessProbe"]["httpGet"]
                port = next(port["containerPort"] for port in container["ports"]
                            if port["name"] == probe["port"])
                deadline = time.monotonic() + RECONCILE_TIMEOUT_S
                phase, alive, ready_s, status_s = None, False, None, None
                while time.monotonic() < deadline and process.poll() is None:
                    phase = _phase(kube, job["metadata"]["name"])
                    alive = alive or _answers(f"http://127.0.0.1:{port}{probe['path']}")
                    now = time.monotonic() - started
                    ready_s = ready_s if ready_s is not None or not alive else now
                    status_s = status_s if status_s is not None or not phase else now
                    if phase and alive:
                        break
                    time.sleep(0.5)
                # The probes share the path: live is ready. Seconds from `podman run` (within
                # the 0.5 s polling), container creation included.
                print(f"\noperator image: ready {_seconds(ready_s)}, first job status "
                      f"{_seconds(status_s)} after podman run")
                text = "\n".join(line for line in log.read_text(errors="replace").splitlines()
                                 if "GET /healthz" not in line)  # the probes' access log
                assert phase in {"Pending", "Online"}, f"no status written:\n{text[-4000:]}"
                assert alive, f"the liveness probe got no answer:\n{text[-4000:]}"
                assert "Forbidden" not in text and " 403" not in text, text[-4000:]
            finally:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
                containers.remove(name)
    if process.returncode not in (0, -15, 143):
        pytest.fail(f"the operator exited {process.returncode}:\n{log.read_text()[-4000:]}")
