"""The API server enforces the generated CRD: invalid manifests are rejected naming the field."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
import yaml

from tests.conftest import Kube, KubeCluster
from tests.e2e.harness import Jobs, install_streamtrain_crd

VALID: dict[str, Any] = {"kafka": {"bootstrapServers": "kafka:9092"}, "train": {}, "evaluate": {}}


@pytest.fixture(scope="session")
def streamtrain_crd(kube_cluster: KubeCluster) -> KubeCluster:
    install_streamtrain_crd(kube_cluster.api)
    return kube_cluster


@pytest.fixture
def jobs(kube: Kube, streamtrain_crd: KubeCluster) -> Jobs:
    return Jobs(streamtrain_crd.api, kube.namespace)


def _rejection(jobs: Jobs, spec: dict[str, Any]) -> str:
    with pytest.raises(kubernetes.client.ApiException) as caught:
        jobs.create("invalid", spec)
    assert caught.value.status == 422
    return str(json.loads(caught.value.body or "{}")["message"])


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"kafka": {"bootstrapServers": "k:1", "clusterRef": {"name": "c"}}}, "spec.kafka",
     "exactly one of clusterRef and bootstrapServers"),
    ({"kafka": {}}, "spec.kafka", "exactly one of clusterRef and bootstrapServers"),
    ({**VALID, "train": {"epochs": 0}}, "spec.train.epochs", "greater than or equal to 1"),
    ({**VALID, "model": {"layers": [{"dense": 8, "dropout": 0.1}]}}, "spec.model.layers[0]",
     "exactly one of dense and dropout"),
    ({**VALID, "data": {"label": "target"}}, "spec.data", "label must be 'key' or one of"),
    ({"kafka": {"bootstrapServers": "k:1"}}, "spec", "set at least one of train, evaluate and online"),
    ({**VALID, "data": {"format": "xml"}}, "spec.data.format", "Unsupported value"),
    ({"kafka": {"bootstrapServers": "no port"}}, "spec.kafka.bootstrapServers", "should match"),
    ({**VALID, "model": {"source": {"job": "a"}}}, "spec", "model.source is for jobs that do not"),
    ({"kafka": {"bootstrapServers": "k:1"}, "evaluate": {},
      "model": {"source": {"job": "a", "path": "x", "volumeClaim": "c"}}},
     "spec.model.source", "exactly one of job and path"),
    ({"kafka": {"bootstrapServers": "k:1"}, "evaluate": {},
      "model": {"source": {"volumeClaim": "c", "path": "../other"}}},
     "spec.model.source.path", "should match"),
])
def test_invalid_manifest_is_rejected_naming_the_field(
        jobs: Jobs, spec: dict[str, Any], field: str, words: str) -> None:
    message = _rejection(jobs, spec)
    assert field in message and words in message


def test_unknown_field_is_rejected_by_kubectl_strict_validation(
        kube: Kube, streamtrain_crd: KubeCluster) -> None:
    manifest = {"apiVersion": "streamtrain.dev/v1alpha1", "kind": "StreamingTrainingJob",
                "metadata": {"name": "typo", "namespace": kube.namespace},
                "spec": {**VALID, "trian": {"epochs": 3}}}
    result = kube.cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest), check=False)
    assert result.returncode != 0 and 'unknown field "spec.trian"' in result.stderr


def test_defaults_are_filled_in_by_the_api_server(jobs: Jobs) -> None:
    spec = jobs.create("defaults", VALID)["spec"]
    assert spec["train"]["epochs"] == 10 and spec["evaluate"]["topic"] == "susy-test"
    assert spec["model"]["layers"][0] == {"dense": 128}
    assert spec["runPolicy"] == {"backoffLimit": 3, "suspend": False}


def test_running_job_keeps_its_data_but_may_be_suspended(jobs: Jobs) -> None:
    jobs.create("fixed", VALID)
    with pytest.raises(kubernetes.client.ApiException) as caught:
        jobs.patch_spec("fixed", {"train": {"topic": "elsewhere"}})
    assert "spec.train is immutable" in json.loads(caught.value.body or "{}")["message"]
    with pytest.raises(kubernetes.client.ApiException):
        jobs.patch_spec("fixed", {"kafka": {"bootstrapServers": "other:9092"}})
    jobs.patch_spec("fixed", {"runPolicy": {"suspend": True}})
    assert jobs.get("fixed")["spec"]["runPolicy"]["suspend"] is True


def test_kubectl_explain_documents_nested_fields(kube: Kube, streamtrain_crd: KubeCluster) -> None:
    explained = kube.cluster.kubectl("explain", "stj.spec.evaluate.streamTimeoutMs").stdout
    assert "Milliseconds to wait for new records" in " ".join(explained.split())
    explained = kube.cluster.kubectl("explain", "stj.status.metrics.evalAuc").stdout
    assert "ROC AUC" in explained
