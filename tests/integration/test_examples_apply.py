"""Every example is accepted by the real API server, with the project's and Strimzi's CRDs installed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import Kube
from tests.integration.cluster_manifests import (
    apply_crds,
    dry_run,
    require_lines,
    strimzi_crds_dir,
)


@pytest.fixture
def crds_installed(kube: Kube, repo_root: Path) -> Kube:
    """The cluster with the StreamingTrainingJob CRD and Strimzi's CRDs served."""
    apply_crds(kube, repo_root / "crds")
    apply_crds(kube, strimzi_crds_dir(repo_root))
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
            require_lines(result.stdout, [
                f"{doc['kind'].lower()}.{doc['apiVersion'].split('/')[0]}/"
                f"{doc['metadata']['name']} serverside-applied (server dry run)"
                for doc in documents
            ])
            applied += len(documents)
    assert applied >= 8


def test_it_should_reject_an_example_job_with_a_mistyped_field(
    crds_installed: Kube, repo_root: Path,
) -> None:
    job = yaml.safe_load((repo_root / "examples" / "02-strimzi-cluster-ref" / "job.yaml").read_text())
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
    assert "set train or online" in result.stderr
