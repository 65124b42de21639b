"""Kueue without a cluster: the operator's reading of a Workload, and the local manager's
webhook configurations and private `/etc`."""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from streamtrain_operator.kueue import waiting_message

from localparts import kueue as local_kueue
from localparts.errors import LocalPartError

PENDING = ("couldn't assign flavors to pod set main: insufficient unused quota for cpu in "
           "flavor default, 100m more needed")


def workload(*conditions: tuple[str, str, str]) -> dict[str, object]:
    """A Workload as the API server returns it, with (type, status, message) conditions."""
    return {"metadata": {"name": "job-susy-train-abcde"}, "status": {"conditions": [
        {"type": kind, "status": status, "reason": "R", "message": message}
        for kind, status, message in conditions]}}


def test_a_pending_workload_says_why_in_its_quota_reserved_condition() -> None:
    assert waiting_message(workload(("QuotaReserved", "False", PENDING))) == PENDING


def test_an_evicted_workload_says_it_was_preempted_until_kueue_says_more() -> None:
    preempted = "Preempted to accommodate a workload (UID: 1) due to prioritization"
    assert waiting_message(workload(("Evicted", "True", preempted),
                                    ("QuotaReserved", "True", "reserved"))) == preempted
    assert waiting_message(workload(("Evicted", "True", preempted),
                                    ("QuotaReserved", "False", PENDING))) == PENDING


def test_a_workload_that_says_nothing_yet_gives_no_message() -> None:
    assert waiting_message(None) == ""
    assert waiting_message({"metadata": {}}) == ""
    assert waiting_message(workload(("QuotaReserved", "True", "Quota reserved"),
                                    ("Admitted", "True", "admitted"))) == ""


MANIFESTS = """\
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: mutating-webhook-configuration
webhooks:
- admissionReviewVersions: [v1]
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /mutate-batch-v1-job}
  failurePolicy: Fail
  name: mjob.kb.io
  rules:
  - apiGroups: [batch]
    apiVersions: [v1]
    operations: [CREATE]
    resources: [jobs]
  sideEffects: None
- admissionReviewVersions: [v1]
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /mutate--v1-pod}
  failurePolicy: Fail
  name: mpod.kb.io
  rules:
  - apiGroups: ['']
    apiVersions: [v1]
    operations: [CREATE]
    resources: [pods]
  sideEffects: None
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: validating-webhook-configuration
webhooks:
- admissionReviewVersions: [v1]
  clientConfig:
    service: {name: webhook-service, namespace: system,
              path: /validate-kueue-x-k8s-io-v1beta2-clusterqueue}
  failurePolicy: Fail
  name: vclusterqueue.kb.io
  rules:
  - apiGroups: [kueue.x-k8s.io]
    apiVersions: [v1beta2]
    operations: [CREATE, UPDATE]
    resources: [clusterqueues]
  sideEffects: None
- admissionReviewVersions: [v1]
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /validate-apps-v1-deployment}
  failurePolicy: Fail
  name: vdeployment.kb.io
  rules:
  - apiGroups: [apps]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [deployments]
  sideEffects: None
"""


def test_webhooks_point_at_loopback_with_the_ca_and_only_what_kueue_manages_here() -> None:
    documents = local_kueue.webhook_configurations(MANIFESTS, 9443, b"PEM")
    assert [document["metadata"]["name"] for document in documents] == [
        "kueue-mutating-webhook-configuration", "kueue-validating-webhook-configuration"]
    kept = [webhook for document in documents for webhook in document["webhooks"]]
    assert [webhook["name"] for webhook in kept] == ["mjob.kb.io", "vclusterqueue.kb.io"]
    assert kept[0]["clientConfig"] == {
        "url": "https://127.0.0.1:9443/mutate-batch-v1-job",
        "caBundle": base64.b64encode(b"PEM").decode()}
    assert kept[1]["clientConfig"]["url"] == (
        "https://127.0.0.1:9443/validate-kueue-x-k8s-io-v1beta2-clusterqueue")
    assert kept[0]["failurePolicy"] == "Fail"


def test_the_configuration_binds_loopback_and_manages_only_jobs(tmp_path: Path) -> None:
    config = local_kueue.configuration(1, 2, 3, tmp_path)
    assert (config["apiVersion"], config["kind"]) == ("config.kueue.x-k8s.io/v1beta2",
                                                      "Configuration")
    assert config["health"]["healthProbeBindAddress"] == "127.0.0.1:1"
    assert config["metrics"]["bindAddress"] == "127.0.0.1:2"
    assert config["webhook"] == {"port": 3, "host": "127.0.0.1", "certDir": str(tmp_path)}
    assert config["internalCertManagement"] == {"enable": False}
    assert config["integrations"] == {"frameworks": ["batch/job"]}
    assert yaml.safe_load(yaml.safe_dump(config)) == config


def _as_nobody() -> list[str]:
    """A prefix that drops root, so the check covers a user without it."""
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.getuid() == 0 \
        else []


def test_a_user_without_root_sees_the_metrics_certificate_at_the_hard_coded_path() -> None:
    host_has_it = Path("/etc/kueue/metrics/certs/tls.crt").exists()
    with tempfile.TemporaryDirectory() as scratch:  # not under pytest's private tmp folder
        overlay = Path(scratch) / "etc"
        certs = overlay / local_kueue.METRICS_CERT_DIR
        certs.mkdir(parents=True)
        (certs / "tls.crt").write_text("a certificate")
        for path in (Path(scratch), *overlay.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        command = local_kueue.with_private_etc(overlay, [
            "sh", "-c", "id -u; cat /etc/kueue/metrics/certs/tls.crt; test -e /etc/passwd"])
        shown = subprocess.run([*_as_nobody(), *command], capture_output=True, text=True,
                               check=False, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == ["0", "a certificate"]  # root only inside its namespace
    assert Path("/etc/kueue/metrics/certs/tls.crt").exists() == host_has_it  # /etc untouched


def test_an_overlay_folder_that_overlayfs_cannot_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LocalPartError, match="may not contain"):
        local_kueue.with_private_etc(tmp_path / "a:b", ["true"])
