"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager.

No scheduler and no kubelet: pods stay Pending unless a test-only agent plays
the kubelet. The controller manager makes Jobs create Pods, gives every
namespace its `default` ServiceAccount and runs garbage collection, so
ownerReferences behave as in a real cluster.

Security is real too: the API server serves TLS with a CA generated per
start, authorizes with RBAC, and the admin is a client certificate in
`system:masters`. Pod Security admission is on (the API server's default),
so a namespace labelled `pod-security.kubernetes.io/enforce=restricted`
rejects pods that are not restricted.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localparts import kube_build
from localparts.cache import cache_root, require_tool, run
from localparts.errors import LocalPartError
from localparts.ports import LOOPBACK, free_port
from localparts.process import ServerProcess, spawn, wait_until

START_TIMEOUT_S = 120.0
"""How long each server may take to get ready (the API server installs its CRD and RBAC bootstrap)."""

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
OPENSSL_HINT = "apt-get install openssl"


@dataclass
class ControlPlane:
    """The running servers and what clients need: the kubeconfig and the API URL."""

    etcd: ServerProcess
    apiserver: ServerProcess
    controller_manager: ServerProcess
    kubeconfig: Path
    server_url: str
    workdir: Path

    def processes(self) -> list[ServerProcess]:
        """Servers in start order."""
        return [self.etcd, self.apiserver, self.controller_manager]

    def stop(self) -> None:
        """Stop the servers, newest first."""
        for process in reversed(self.processes()):
            process.stop()

    def dead(self) -> list[ServerProcess]:
        """Servers that are no longer running."""
        return [process for process in self.processes() if not process.alive()]


def _openssl(*arguments: str | Path, cwd: Path) -> None:
    openssl = require_tool("openssl", OPENSSL_HINT)
    run([openssl, *arguments], cwd=cwd, what="generating control plane certificates")


def write_certificates(pki: Path) -> None:
    """A CA, the API server's serving certificate, an admin client certificate, SA keys."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
             "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=streamtrain-local-ca", cwd=pki)
    san = ("subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
           "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
           "DNS:kubernetes.default.svc.cluster.local")
    (pki / "server.ext").write_text(san + "\nextendedKeyUsage=serverAuth\n")
    (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject, extensions in (
        ("apiserver", "/CN=kube-apiserver", "server.ext"),
        ("admin", "/O=system:masters/CN=streamtrain-admin", "client.ext"),
    ):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", "-subj", subject, cwd=pki)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "30", "-out", f"{name}.crt",
                 "-extfile", extensions, cwd=pki)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def kubeconfig_text(server_url: str, pki: Path) -> str:
    """A kubeconfig for the admin, usable by kubectl and the Python clients."""
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "streamtrain-local", "cluster": {
            "server": server_url, "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": "admin", "user": {
            "client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")}}],
        "contexts": [{"name": "streamtrain-local", "context": {
            "cluster": "streamtrain-local", "user": "admin", "namespace": "default"}}],
        "current-context": "streamtrain-local",
    }, indent=2)


def _admin_context(pki: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return context


def _get_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start(workdir: Path, version: str = kube_build.KUBERNETES_VERSION) -> ControlPlane:
    """Start etcd, kube-apiserver and kube-controller-manager in ``workdir``; wait for each."""
    binaries = kube_build.build(version)
    workdir.mkdir(parents=True, exist_ok=True)
    pki = workdir / "pki"
    write_certificates(pki)
    logs = workdir / "logs"

    etcd_port, etcd_peer_port = free_port(), free_port()
    etcd_url = f"http://{LOOPBACK}:{etcd_port}"
    etcd = spawn("etcd", [
        str(binaries / "etcd"), "--name", "default", "--data-dir", str(workdir / "etcd"),
        "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
        "--listen-peer-urls", f"http://{LOOPBACK}:{etcd_peer_port}",
        "--initial-advertise-peer-urls", f"http://{LOOPBACK}:{etcd_peer_port}",
        "--initial-cluster", f"default=http://{LOOPBACK}:{etcd_peer_port}",
        "--unsafe-no-fsync", "--log-level", "warn",
    ], logs / "etcd.log")
    started = [etcd]
    try:
        wait_until(etcd, lambda: _get_ok(f"{etcd_url}/health"), START_TIMEOUT_S, "starting etcd")

        api_port = free_port()
        server_url = f"https://{LOOPBACK}:{api_port}"
        apiserver = spawn("kube-apiserver", [
            str(binaries / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            f"--cert-dir={workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--secure-port={api_port}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--allow-privileged=true",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={server_url}/",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--endpoint-reconciler-type=none",
            "--v=1",
        ], logs / "kube-apiserver.log")
        started.append(apiserver)
        admin = _admin_context(pki)
        wait_until(apiserver, lambda: _get_ok(f"{server_url}/readyz", admin),
                   START_TIMEOUT_S, "starting kube-apiserver")

        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(kubeconfig_text(server_url, pki))
        controller_manager = spawn("kube-controller-manager", [
            str(binaries / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--controllers=*",
            "--leader-elect=false",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={free_port()}",
            "--use-service-account-credentials=false",
            "--v=1",
        ], logs / "kube-controller-manager.log")
        started.append(controller_manager)
        default_account = f"{server_url}/api/v1/namespaces/default/serviceaccounts/default"
        wait_until(controller_manager, lambda: _get_ok(default_account, admin),
                   START_TIMEOUT_S, "kube-controller-manager creating the default ServiceAccount")
    except BaseException:
        for process in reversed(started):
            process.stop()
        raise
    for process in started:
        process.details = {"kubeconfig": str(kubeconfig), "server": server_url,
                           "workdir": str(workdir)}
    return ControlPlane(etcd, apiserver, controller_manager, kubeconfig, server_url, workdir)


def state_file() -> Path:
    """Where ``up`` remembers the control plane for ``down``."""
    return cache_root() / "run" / "controlplane.json"


def up() -> Path:
    """Start a long-lived local control plane (idempotent); return its kubeconfig."""
    existing = [ServerProcess(**entry) for entry in _load_state()]
    if existing and all(process.alive() for process in existing):
        return Path(existing[0].details["kubeconfig"])
    down()
    plane = start(cache_root() / "run" / f"controlplane-{uuid.uuid4().hex[:8]}")
    state_file().write_text(json.dumps([vars(process) for process in plane.processes()], indent=2))
    return plane.kubeconfig


def _load_state() -> list[dict[str, Any]]:
    path = state_file()
    if not path.exists():
        return []
    entries: list[dict[str, Any]] = json.loads(path.read_text())
    return entries


def down() -> bool:
    """Stop the control plane started by ``up``; ``False`` if none ran."""
    entries = _load_state()
    for entry in reversed(entries):
        ServerProcess(**entry).stop()
    state_file().unlink(missing_ok=True)
    return bool(entries)


def require_running(plane: ControlPlane) -> None:
    """Raise with each dead server's log tail (for test failures)."""
    dead = plane.dead()
    if dead:
        raise LocalPartError("; ".join(f"{p.name} died; log tail:\n{p.log()}" for p in dead))
