"""Strimzi resolution from a `Kafka` resource, and KafkaTopic manifests, without a cluster."""

from __future__ import annotations

from typing import Any

from streamtrain_operator.strimzi import (
    listener_address,
    listener_uses_tls,
    topic_manifests,
    topic_resource_name,
)

from workload.spec import parse_spec


def _kafka(ready: bool, listeners: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "my-cluster"},
            "spec": {"kafka": {"listeners": [{"name": "plain", "tls": False},
                                             {"name": "tls", "tls": True}]}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "listeners": listeners}}


def test_address_comes_from_the_named_listener_once_ready() -> None:
    kafka = _kafka(True, [{"name": "plain", "bootstrapServers": "a:9092"},
                          {"name": "tls", "bootstrapServers": "a:9093"}])
    state = listener_address(kafka, "tls")
    assert (state.ready, state.bootstrap_servers) == (True, "a:9093")


def test_not_ready_kafka_says_what_it_waits_for() -> None:
    state = listener_address(_kafka(False, []), "plain")
    assert (state.ready, state.reason) == (False, "KafkaNotReady")
    assert "my-cluster" in state.message


def test_missing_listener_names_the_ones_that_exist() -> None:
    state = listener_address(_kafka(True, [{"name": "external", "bootstrapServers": "x:1"}]),
                             "plain")
    assert (state.ready, state.reason) == (False, "ListenerNotFound")
    assert "external" in state.message


def test_tls_is_read_from_the_listener_spec() -> None:
    assert listener_uses_tls(_kafka(True, []), "tls")
    assert not listener_uses_tls(_kafka(True, []), "plain")


def test_topics_for_each_phase_with_their_partitions_and_cluster_label() -> None:
    spec = parse_spec({"kafka": {"clusterRef": {"name": "c"}, "manageTopics": True},
                       "train": {"topic": "Susy_Train.v1", "partitions": 3},
                       "evaluate": {"topic": "susy-test"}})
    manifests = topic_manifests(spec, "v1", "ns")
    assert [(m["metadata"]["name"], m["spec"]) for m in manifests] == [
        ("susy-train-v1", {"topicName": "Susy_Train.v1", "partitions": 3}),
        ("susy-test", {"topicName": "susy-test", "partitions": 2})]
    assert manifests[0]["apiVersion"] == "kafka.strimzi.io/v1"
    assert manifests[0]["metadata"]["labels"] == {"strimzi.io/cluster": "c"}
    assert topic_resource_name("__") == "topic"
