"""The GitOps examples install this chart: their paths exist and their values pass its schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from localparts import helm
from tests.unit.chart_render import render

Manifest = dict[str, Any]


def documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_it_should_point_argocd_at_the_chart_with_values_it_accepts(repo_root: Path) -> None:
    applications = documents(repo_root / "gitops" / "argocd" / "application.yaml")
    operator = next(a for a in applications if a["metadata"]["name"] == "streamtrain-operator")
    source = operator["spec"]["source"]
    assert (repo_root / source["path"]) == helm.CHART_DIR
    assert "ServerSideApply=true" in operator["spec"]["syncPolicy"]["syncOptions"]
    rendered = render(source["helm"]["valuesObject"], release=source["helm"]["releaseName"],
                      namespace=operator["spec"]["destination"]["namespace"])
    assert rendered.one("Deployment")["metadata"]["name"] == "streamtrain-operator"


def test_it_should_sync_jobs_from_a_folder_that_holds_jobs(repo_root: Path) -> None:
    applications = documents(repo_root / "gitops" / "argocd" / "application.yaml")
    jobs = next(app for app in applications if app["metadata"]["name"] == "streamtrain-jobs")
    folder = repo_root / jobs["spec"]["source"]["path"]
    kinds = {doc["kind"] for path in folder.glob("*.yaml") for doc in documents(path)}
    assert "StreamingTrainingJob" in kinds
    assert jobs["metadata"]["annotations"]["argocd.argoproj.io/compare-options"] == \
        "ServerSideDiff=true"


def test_it_should_release_the_chart_with_flux_with_values_it_accepts(repo_root: Path) -> None:
    path = repo_root / "gitops" / "flux" / "helmrelease.yaml"
    found = {doc["kind"]: doc for doc in documents(path)}
    release = found["HelmRelease"]
    chart = release["spec"]["chart"]["spec"]
    assert (repo_root / chart["chart"]) == helm.CHART_DIR
    assert chart["sourceRef"]["name"] == found["GitRepository"]["metadata"]["name"]
    rendered = render(release["spec"]["values"], release=release["spec"]["releaseName"],
                      namespace=release["spec"]["targetNamespace"])
    assert rendered.all("CustomResourceDefinition")


def test_it_should_keep_the_kustomize_base_on_the_rendered_chart(repo_root: Path) -> None:
    base = yaml.safe_load((repo_root / "gitops" / "kustomize" / "base" / "kustomization.yaml")
                          .read_text())
    assert base["resources"] == [helm.INSTALL_MANIFEST.name]
    kinds = [doc["kind"] for doc in documents(helm.INSTALL_MANIFEST)]
    assert kinds[0] == "Namespace"
    assert {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
            "Deployment"} <= set(kinds)
