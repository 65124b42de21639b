"""The API server enforces the generated CRD: invalid manifests are rejected naming the field."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
import yaml

from tests.conftest import Kube, KubeCluster
from tests.e2e.harness import Jobs, install_streamtrain_crd
from workload.spec import API_GROUP, API_VERSION, PLURAL

VALID: dict[str, Any] = {"kafka": {"bootstrapServers": "kafka:9092"},
                         "train": {"topic": "susy-train"}, "evaluate": {"topic": "susy-test"},
                         "model": {"output": {"volumeClaim": "models"}}}


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
    ({**VALID, "train": {"topic": "t", "epochs": 0}}, "spec.train.epochs", "greater than or equal to 1"),
    ({**VALID, "model": {"layers": [{"dense": 8, "dropout": 0.1}]}}, "spec.model.layers[0]",
     "exactly one of dense and dropout"),
    ({**VALID, "data": {"label": "target"}}, "spec.data", "label must be 'key' or one of"),
    ({"kafka": {"bootstrapServers": "k:1"}}, "spec", "set at least one of train, evaluate, online and serve"),
    ({**VALID, "data": {"format": "xml"}}, "spec.data.format", "Unsupported value"),
    ({**VALID, "kafka": {"bootstrapServers": "no port"}}, "spec.kafka.bootstrapServers",
     'Invalid value: "no port": must be a comma-separated list of host:port, each port 1-65535'),
    ({**VALID, "kafka": {"bootstrapServers": "kafka:99999"}}, "spec.kafka.bootstrapServers",
     "must be a comma-separated list of host:port, each port 1-65535"),
    ({**VALID, "kafka": {"bootstrapServers": "a:9092,b:0"}}, "spec.kafka.bootstrapServers",
     "each port 1-65535"),
    ({**VALID, "model": {"output": {"path": "models/x", "volumeClaim": "m"}}},
     "spec.model.output.path", "must be an absolute folder without '..' segments"),
    ({**VALID, "model": {"output": {"path": "/models/../etc", "volumeClaim": "m"}}},
     "spec.model.output.path", "must be an absolute folder without '..' segments"),
    ({**VALID, "model": {"source": {"job": "a"}, "factory": "team.models:build"}}, "spec.model.source",
     "model.source with train is the starting point of training"),
    ({"kafka": {"bootstrapServers": "k:1"}, "evaluate": {"topic": "t"},
      "model": {"source": {"job": "a", "path": "x", "volumeClaim": "c"}}},
     "spec.model.source", "exactly one of job and path"),
    ({"kafka": {"bootstrapServers": "k:1"}, "evaluate": {"topic": "t"},
      "model": {"source": {"volumeClaim": "c", "path": "../other"}}},
     "spec.model.source.path", "should match"),
    ({**VALID, "train": {"epochs": 3}}, "spec.train.topic", "Required value"),
    ({**VALID, "train": {"topic": "ux train!"}}, "spec.train.topic",
     "must be a Kafka topic name: letters, digits, '.', '_' and '-' only, and not '.' or '..'"),
    ({**VALID, "evaluate": {"topic": ".."}}, "spec.evaluate.topic", "must be a Kafka topic name"),
    ({**VALID, "data": {"deadLetterTopic": "bad/letters"}}, "spec.data.deadLetterTopic",
     "must be a Kafka topic name"),
    ({**VALID, "evaluate": {"topic": "t", "consumerGroup": " "}}, "spec.evaluate.consumerGroup",
     "should match"),
    ({**VALID, "data": {"columns": ["a", "a"]}}, "spec.data.columns[1]", "Duplicate value"),
    ({**VALID, "kafka": {"bootstrapServers": "k:1", "config": {"sasl.password": "x"}}},
     "spec.kafka.config", "credentials never go in the spec"),
    ({**VALID, "kafka": {"bootstrapServers": "k:1", "config": {"group.id": "x"}}},
     "spec.kafka.config", "a job may set only these"),
    ({**VALID, "model": {}}, "spec.model.output.volumeClaim", "required when evaluate or online"),
    ({"kafka": {"bootstrapServers": "k:1"}, "evaluate": {"topic": "t"}}, "spec.evaluate",
     "evaluate needs a model"),
])
def test_invalid_manifest_is_rejected_naming_the_field(
        jobs: Jobs, spec: dict[str, Any], field: str, words: str) -> None:
    message = _rejection(jobs, spec)
    assert field in message and words in message, message


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
    assert spec["runPolicy"] == {"backoffLimit": 3, "suspend": False,
                                 "progressDeadlineSeconds": 900}


def _json_patch_rejection(jobs: Jobs, name: str, operations: list[dict[str, Any]]) -> str:
    with pytest.raises(kubernetes.client.ApiException) as caught:
        jobs.custom.patch_namespaced_custom_object(API_GROUP, API_VERSION, jobs.namespace, PLURAL,
                                                   name, operations,
                                                   _content_type="application/json-patch+json")
    assert caught.value.status == 422
    return str(json.loads(caught.value.body or "{}")["message"])


@pytest.mark.parametrize(("operations", "field"), [
    ([{"op": "replace", "path": "/spec/train/topic", "value": "elsewhere"}], "spec.train"),
    ([{"op": "remove", "path": "/spec/train"}], "spec.train"),
    ([{"op": "add", "path": "/spec/online", "value": {"topic": "t"}}], "spec.online"),
    ([{"op": "remove", "path": "/spec/evaluate"}], "spec.evaluate"),
    ([{"op": "replace", "path": "/spec/kafka/bootstrapServers", "value": "other:9092"}],
     "spec.kafka"),
    ([{"op": "add", "path": "/spec/kafka/config/fetch.max.bytes", "value": "1"}], "spec.kafka"),
    ([{"op": "replace", "path": "/spec/data/format", "value": "json"},
      {"op": "add", "path": "/spec/data/columns", "value": ["a"]}], "spec.data"),
    ([{"op": "replace", "path": "/spec/model/optimizer", "value": "sgd"}], "spec.model"),
])
def test_work_defining_sections_can_be_neither_changed_added_nor_removed(
        jobs: Jobs, operations: list[dict[str, Any]], field: str) -> None:
    jobs.create("fixed", VALID)
    message = _json_patch_rejection(jobs, "fixed", operations)
    assert f"{field}: Invalid value" in message and f"{field} is immutable" in message


def test_run_policy_pod_templates_and_kafka_user_may_change(jobs: Jobs) -> None:
    jobs.create("tunable", VALID)
    jobs.patch_spec("tunable", {"runPolicy": {"suspend": True, "backoffLimit": 1},
                                "trainer": {"resources": {"limits": {"memory": "4Gi"}}},
                                "kafka": {"userRef": {"name": "rotated"}}})
    spec = jobs.get("tunable")["spec"]
    assert spec["runPolicy"]["suspend"] is True and spec["kafka"]["userRef"] == {"name": "rotated"}


def test_kubectl_explain_documents_nested_fields(kube: Kube, streamtrain_crd: KubeCluster) -> None:
    explained = kube.cluster.kubectl("explain", "stj.spec.evaluate.streamTimeoutMs").stdout
    assert "Milliseconds to wait for new records" in " ".join(explained.split())
    explained = kube.cluster.kubectl("explain", "stj.status.metrics.evalAuc").stdout
    assert "ROC AUC" in explained
    explained = kube.cluster.kubectl("explain", "stj.spec.train.checkpointEverySeconds").stdout
    description = explained.split("DESCRIPTION:")[1].strip()
    assert "\n\n" not in description  # one paragraph, not cut where the docstring wrapped
    assert description.endswith("(one small write per batch).")
