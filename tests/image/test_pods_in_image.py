"""The minimal example end to end with its trainer and evaluator pods in the workload image.

The same test as the end-to-end suite's, with the test kubelet running each pod's container
in the pod's image (`KubeletAgent(in_image=True)`): podman, host network, the pod's
environment and volumes, its user, a read-only root filesystem.
"""

from __future__ import annotations

from pathlib import Path

from streamtrain_operator.builders import WORKLOAD_IMAGE

from tests.conftest import KafkaHandle, Kube
from tests.e2e import test_operator_e2e as e2e
from tests.e2e.harness import OperatorProcess, install_streamtrain_crd
from tests.e2e.kubelet_agent import KubeletAgent
from tests.image.conftest import Image


def test_the_minimal_example_succeeds_with_its_pods_in_the_workload_image(
    kube: Kube, kafka: KafkaHandle, tmp_path: Path, workload_image: Image,
) -> None:
    assert workload_image.name == WORKLOAD_IMAGE, "pods name the image `make image` built"
    install_streamtrain_crd(kube.cluster.api)
    operator = OperatorProcess(kube.cluster.kubeconfig, kube.namespace,
                               tmp_path / "operator.log").start()
    agent = KubeletAgent(kube.cluster.api, kube.namespace, tmp_path / "pods",
                         in_image=True).start()
    try:
        e2e.test_applied_example_trains_evaluates_and_reports_progress_and_accuracy(
            kube, kafka, (operator, agent), tmp_path)
    finally:
        agent.stop()
        operator.stop()
    assert agent.images_run == [WORKLOAD_IMAGE, WORKLOAD_IMAGE], "trainer and evaluator"
