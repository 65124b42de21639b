"""Only a job's own pods write its progress, and only figures in range: against the real API
server, tokens bound to pods the job does not own (a bare pod, another job's pod, a pod in
another namespace, a pod of a Job the job does not own) are refused and change nothing, out of
range and non-finite figures get 400 naming the field, and no body gets a 5xx."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Kube
from tests.faults.figures import describe, unmet
from tests.faults.progress_posts import forged_and_invalid_posts


def test_posts_from_pods_the_job_does_not_own_or_with_bad_figures_are_refused_and_change_nothing(
        kube: Kube, tmp_path: Path) -> None:
    figures = forged_and_invalid_posts(kube.cluster.api, kube.cluster.kubeconfig, kube.namespace,
                                       tmp_path)
    assert not unmet(figures), describe(figures) + "\n" + (tmp_path / "operator.log").read_text()
    assert figures[1].measured == "12/12"  # six kinds of forgery, twice each
