"""Every example is accepted by the real API server, with our CRD and Strimzi's installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from localparts import kueue_build
from tests.conftest import Kube, KubeCluster
from tests.integration.cluster_manifests import (
    applied_line,
    apply_crds,
    dry_run,
    require_lines,
    strimzi_crds_dir,
)


@pytest.fixture(scope="module")
def module_crds(kube_cluster: KubeCluster, repo_root: Path) -> KubeCluster:
    """The StreamingTrainingJob CRD, Strimzi's and Kueue's CRDs, served for this module's
    tests."""
    apply_crds(kube_cluster, repo_root / "crds")
    apply_crds(kube_cluster, strimzi_crds_dir(repo_root))
    apply_crds(kube_cluster, kueue_build.crd_dir())
    return kube_cluster


@pytest.fixture
def crds_installed(module_crds: KubeCluster, kube: Kube) -> Kube:
    """A fresh namespace in a cluster that serves the CRDs the examples use."""
    return kube


def example_folders(repo_root: Path) -> list[Path]:
    return sorted(path for path in (repo_root / "examples").iterdir() if path.is_dir())


def test_it_should_accept_every_example_in_a_server_side_dry_run(
    crds_installed: Kube, repo_root: Path,
) -> None:
    folders = example_folders(repo_root)
    assert len(folders) >= 4
    applied = 0
    for folder in folders:
        for manifest in sorted(folder.glob("*.yaml")):
            text = manifest.read_text()
            documents = [doc for doc in yaml.safe_load_all(text) if doc]
            result = dry_run(crds_installed, text, namespace=crds_installed.namespace)
            require_lines(result.stdout, [applied_line(doc) for doc in documents])
            applied += len(documents)
    assert applied >= 17  # every example's claim included


def test_it_should_reject_an_example_job_with_a_mistyped_field(
    crds_installed: Kube, repo_root: Path,
) -> None:
    path = repo_root / "examples" / "02-strimzi-cluster-ref" / "job.yaml"
    job = yaml.safe_load(path.read_text())
    job["spec"]["train"]["epochz"] = 3
    result = dry_run(crds_installed, yaml.safe_dump(job), namespace=crds_installed.namespace,
                     check=False)
    assert result.returncode != 0
    assert ".spec.train.epochz: field not declared in schema" in result.stderr


def test_it_should_reject_an_example_job_that_breaks_a_cross_field_rule(
    crds_installed: Kube, repo_root: Path,
) -> None:
    job = yaml.safe_load((repo_root / "examples" / "04-online-forever" / "job.yaml").read_text())
    del job["spec"]["online"]
    result = dry_run(crds_installed, yaml.safe_dump(job), namespace=crds_installed.namespace,
                     check=False)
    assert result.returncode != 0
    assert "set at least one of train, evaluate, online and serve" in result.stderr


def test_it_should_keep_the_online_example_online_only_with_plain_kubectl_apply(
    crds_installed: Kube, repo_root: Path,
) -> None:
    text = (repo_root / "examples" / "04-online-forever" / "job.yaml").read_text()
    name = yaml.safe_load(text)["metadata"]["name"]
    namespace = crds_installed.namespace
    crds_installed.cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=text)
    custom: Any = crds_installed.cluster.custom
    spec = custom.get_namespaced_custom_object(
        "streamtrain.dev", "v1alpha1", namespace, "streamingtrainingjobs", name)["spec"]
    assert "train" not in spec and "evaluate" not in spec
    assert spec["online"]["streamTimeoutMs"] == -1
