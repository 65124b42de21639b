"""30+ invalid manifests: each refused by the API server, naming the field."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Kube
from tests.faults.figures import describe, unmet
from tests.faults.manifests import invalid_manifests


def test_every_invalid_manifest_is_refused_naming_its_field(kube: Kube, tmp_path: Path) -> None:
    figures = invalid_manifests(kube.cluster.api, kube.cluster.kubeconfig, kube.namespace,
                                tmp_path)
    assert not unmet(figures), describe(figures)
    refused, submitted = (int(n) for n in figures[-1].measured.split("/"))
    assert refused == submitted >= 30
