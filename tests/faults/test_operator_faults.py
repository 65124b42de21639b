"""The operator survives SIGKILLs at random points of a job's life without duplicates."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Kube
from tests.faults.figures import describe, unmet
from tests.faults.operator_faults import operator_killed_through_a_job


def test_operator_killed_ten_times_converges_without_duplicate_children(
        kube: Kube, tmp_path: Path) -> None:
    figures = operator_killed_through_a_job(kube.cluster.api, kube.cluster.kubeconfig,
                                            kube.namespace, tmp_path)
    assert len(figures) == 5
    assert not unmet(figures), describe(figures)
