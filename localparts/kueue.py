"""Kueue's manager against the local control plane: its CRDs, webhooks on 127.0.0.1, no root.

In a cluster, Kueue's webhooks are reached through a Service and its
certificates are made by its own rotator for that Service's DNS name. Here
the API server has no Service network, so:

- a CA and a serving certificate for ``IP:127.0.0.1`` are made per start,
  internal certificate management is off, and the module's webhook
  configurations are rewritten to ``url: https://127.0.0.1:<port><path>``
  with that CA as ``caBundle``. Only the webhooks of what this Kueue manages
  are kept (its own kinds and ``batch/v1`` Jobs, the one framework enabled):
  the others would send every Pod, Deployment or StatefulSet of the cluster
  to a path nothing serves, and fail them;
- with internal certificate management off, Kueue v0.17.0's main.go reads
  its metrics server certificate from the hard-coded
  ``/etc/kueue/metrics/certs/tls.crt`` and ``tls.key`` and exits without
  them. Nothing is written to ``/etc``: the manager runs in a private mount
  namespace of an unprivileged user namespace (``unshare --user
  --map-root-user --mount``) where a read-only overlay puts this start's
  ``kueue/metrics/certs`` over the host's ``/etc``. Any user can start it
  where the kernel allows unprivileged user namespaces (Linux >= 5.11 for
  overlayfs inside them; some distributions restrict them, e.g. Ubuntu's
  ``kernel.apparmor_restrict_unprivileged_userns``);
- ``VisibilityOnDemand`` is turned off (its API server wants
  ``/visibility/tls.crt``), and so is leader election (one replica);
- the start ends once the controller manager's garbage collector watches
  Kueue's kinds (`wait_for_garbage_collection`), as in a cluster where Kueue
  was installed earlier.

The manager talks to the API server as the admin of the local control plane.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localparts import kueue_build
from localparts.cache import require_tool, run
from localparts.errors import LocalPartError
from localparts.ports import LOOPBACK, free_port
from localparts.process import ServerProcess, spawn, wait_until

NAMESPACE = "kueue-system"
"""The namespace Kueue's configuration names (it keeps nothing there when run like this)."""

START_TIMEOUT_S = 120.0
"""How long the manager may take to serve its webhooks and report ready."""

FRAMEWORKS = ("batch/job",)
"""The job kinds this Kueue manages: the child Jobs of a StreamingTrainingJob."""

WEBHOOK_GROUPS = frozenset({"batch", "kueue.x-k8s.io"})
"""API groups whose webhooks are installed: Jobs and Kueue's own kinds."""

WEBHOOK_PREFIX = "kueue-"
"""Prefix of the installed webhook configurations' names (as Kueue's kustomization names them)."""

METRICS_CERT_DIR = "kueue/metrics/certs"
"""Where under ``/etc`` Kueue v0.17.0 reads its metrics certificate (hard-coded in main.go)."""

OVERLAY_SCRIPT = 'mount -t overlay overlay -o "lowerdir=$1:/etc" /etc && shift && exec "$@"'
"""Run inside the private mount namespace: lay ``$1`` over ``/etc`` (read-only), then exec
the manager."""

GC_PROBE = "streamtrain-garbage-collection-probe"
"""A WorkloadPriorityClass whose owner does not exist: gone once the garbage collector watches
Kueue's kinds."""

GC_TIMEOUT_S = 120.0
"""How long the garbage collector may take to notice Kueue's CRDs (it looks for new kinds every
30 s)."""

OPENSSL_HINT = "apt-get install openssl"
UNSHARE_HINT = "apt-get install util-linux"


@dataclass
class KueueManager:
    """A running Kueue manager and what it installed in the cluster."""

    process: ServerProcess
    kubeconfig: Path
    kubectl: Path
    webhook_configurations: list[tuple[str, str]] = field(default_factory=list)
    """(kind, name) of each webhook configuration it serves."""

    def alive(self) -> bool:
        """Whether the manager still runs."""
        return self.process.alive()

    def log(self) -> str:
        """The tail of the manager's log."""
        return self.process.log()

    def stop(self) -> None:
        """Remove its webhook configurations (nothing calls a stopped webhook), then stop it."""
        for kind, name in self.webhook_configurations:
            run([self.kubectl, "--kubeconfig", self.kubeconfig, "delete", kind, name,
                 "--ignore-not-found"], what=f"deleting {kind} {name}")
        self.webhook_configurations.clear()
        self.process.stop()


def _openssl(*arguments: str | Path, cwd: Path) -> None:
    openssl = require_tool("openssl", OPENSSL_HINT)
    run([openssl, *arguments], cwd=cwd, what="generating Kueue's certificates")


def write_certificates(pki: Path) -> None:
    """A CA and a serving certificate for 127.0.0.1 (``tls.crt``/``tls.key``), for the webhook
    and the metrics server."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
             "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=streamtrain-local-kueue-ca",
             cwd=pki)
    (pki / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr",
             "-subj", "/CN=kueue-webhook", cwd=pki)
    _openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "30", "-out", "tls.crt", "-extfile", "server.ext",
             cwd=pki)


def configuration(health_port: int, metrics_port: int, webhook_port: int,
                  cert_dir: Path) -> dict[str, Any]:
    """Kueue's ``config.kueue.x-k8s.io/v1beta2`` Configuration for one local manager."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"{LOOPBACK}:{health_port}"},
        "metrics": {"bindAddress": f"{LOOPBACK}:{metrics_port}"},
        "webhook": {"port": webhook_port, "host": LOOPBACK, "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "integrations": {"frameworks": list(FRAMEWORKS)},
    }


def _kept(webhook: dict[str, Any]) -> bool:
    groups = {group for rule in webhook.get("rules") or [] for group in rule["apiGroups"]}
    return bool(groups) and groups <= WEBHOOK_GROUPS


def webhook_configurations(manifests: str, port: int, ca_pem: bytes) -> list[dict[str, Any]]:
    """Kueue's webhook configurations pointed at ``https://127.0.0.1:<port>`` with ``ca_pem``,
    only the webhooks of ``WEBHOOK_GROUPS``, names prefixed with ``WEBHOOK_PREFIX``."""
    bundle = base64.b64encode(ca_pem).decode()
    documents: list[dict[str, Any]] = []
    for document in yaml.safe_load_all(manifests):
        if not document:
            continue
        document["metadata"]["name"] = WEBHOOK_PREFIX + document["metadata"]["name"]
        kept = [webhook for webhook in document.get("webhooks") or [] if _kept(webhook)]
        for webhook in kept:
            path = webhook["clientConfig"]["service"]["path"]
            webhook["clientConfig"] = {"url": f"https://{LOOPBACK}:{port}{path}",
                                       "caBundle": bundle}
        document["webhooks"] = kept
        documents.append(document)
    return documents


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _apply(kubectl: Path, kubeconfig: Path, manifests: Path, what: str) -> None:
    """Server-side apply of a manifest file or a folder of them (Kueue's CRDs are too large
    for client-side apply's annotation)."""
    run([kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "--force-conflicts",
         "-f", manifests], what=what)


def _written(path: Path, documents: Iterable[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(list(documents)))
    return path


def install_crds(kubectl: Path, kubeconfig: Path,
                 version: str = kueue_build.KUEUE_VERSION) -> None:
    """Kueue's CRDs from the module, applied and established."""
    crds = kueue_build.crd_dir(version)
    _apply(kubectl, kubeconfig, crds, f"applying Kueue {version}'s CRDs")
    names = [yaml.safe_load(path.read_text())["metadata"]["name"]
             for path in sorted(crds.glob("*.yaml"))]
    run([kubectl, "--kubeconfig", kubeconfig, "wait", "--for=condition=Established",
         "--timeout=60s", *(f"crd/{name}" for name in names)],
        what="waiting for Kueue's CRDs to be established")


def with_private_etc(overlay: Path, command: list[str]) -> list[str]:
    """``command`` run where ``/etc`` shows ``overlay``'s files over the host's, read-only, in a
    mount namespace of its own: nothing is written to the host's ``/etc``, and no root is
    needed (an unprivileged user namespace maps the caller to root inside it)."""
    if any(character in str(overlay) for character in ":,"):
        raise LocalPartError(f"{overlay}: an overlay folder may not contain ':' or ','; "
                             "set STREAMTRAIN_CACHE or the work folder to a plainer path")
    unshare = require_tool("unshare", UNSHARE_HINT)
    return [unshare, "--user", "--map-root-user", "--mount", "sh", "-c", OVERLAY_SCRIPT,
            "private-etc", str(overlay), *command]


def wait_for_garbage_collection(kubectl: Path, kubeconfig: Path, workdir: Path) -> None:
    """Wait until kube-controller-manager's garbage collector watches Kueue's kinds.

    It looks for new CRDs every 30 s. Until then a Job deleted in the foreground goes at once,
    leaving its Workload behind, and Kueue (which finds a Job's Workload by the Job's name)
    takes that stale Workload for a new Job of the same name. A cluster whose Kueue was
    installed earlier never meets this; a control plane started with the tests does.
    """
    absent_owner = {"apiVersion": "v1", "kind": "Namespace", "name": f"{GC_PROBE}-owner",
                    "uid": "00000000-0000-0000-0000-000000000000"}
    probe = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "WorkloadPriorityClass",
             "metadata": {"name": GC_PROBE, "ownerReferences": [absent_owner]}, "value": 0}
    _apply(kubectl, kubeconfig, _written(workdir / "gc-probe.yaml", [probe]),
           "creating the garbage collection probe")
    run([kubectl, "--kubeconfig", kubeconfig, "wait", "--for=delete",
         f"--timeout={GC_TIMEOUT_S:.0f}s", f"workloadpriorityclass/{GC_PROBE}"],
        what="waiting for the garbage collector to watch Kueue's kinds")


def manager_command(binary: Path, config: Path, overlay: Path) -> list[str]:
    """The manager's command line, where ``overlay/kueue/metrics/certs`` is
    ``/etc/kueue/metrics/certs``."""
    return with_private_etc(overlay, [str(binary), f"--config={config}",
                                      "--feature-gates=VisibilityOnDemand=false"])


def start(kubeconfig: Path, workdir: Path, kubectl: Path,
          version: str = kueue_build.KUEUE_VERSION) -> KueueManager:
    """Install Kueue's CRDs, start its manager in ``workdir`` against the cluster of
    ``kubeconfig``, and, once it serves, its webhook configurations; wait until ready."""
    binary = kueue_build.build(version)
    workdir.mkdir(parents=True, exist_ok=True)
    pki = workdir / "pki"
    write_certificates(pki)
    overlay = workdir / "etc"
    metrics_certs = overlay / METRICS_CERT_DIR
    metrics_certs.mkdir(parents=True, exist_ok=True)
    for name in ("tls.crt", "tls.key"):
        (metrics_certs / name).write_bytes((pki / name).read_bytes())

    install_crds(kubectl, kubeconfig, version)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    _apply(kubectl, kubeconfig, _written(workdir / "namespace.yaml", [namespace]),
           f"creating namespace {NAMESPACE}")

    health_port, webhook_port = free_port(), free_port()
    config = workdir / "config.yaml"
    config.write_text(json.dumps(configuration(health_port, free_port(), webhook_port, pki),
                                 indent=2))
    process = spawn("kueue", manager_command(binary, config, overlay), workdir / "kueue.log",
                    env={"KUBECONFIG": str(kubeconfig)})
    manager = KueueManager(process, kubeconfig, kubectl)
    try:
        wait_until(process, lambda: _ready(f"http://{LOOPBACK}:{health_port}/readyz"),
                   START_TIMEOUT_S, "starting Kueue's manager")
        configurations = webhook_configurations(
            kueue_build.webhook_manifests(version).read_text(), webhook_port,
            (pki / "ca.crt").read_bytes())
        manager.webhook_configurations = [(document["kind"], document["metadata"]["name"])
                                          for document in configurations]
        _apply(kubectl, kubeconfig, _written(workdir / "webhooks.yaml", configurations),
               "installing Kueue's webhook configurations")
        wait_for_garbage_collection(kubectl, kubeconfig, workdir)
    except BaseException:
        manager.stop()
        raise
    return manager
