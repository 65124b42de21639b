"""End to end: a job trains, then serves its model as a Deployment on the real control plane.

The operator and the pods run as local processes; `KubeletAgent` plays the kubelet for the
pods that the Deployment's ReplicaSet (kube-controller-manager) creates. A downstream
`read_committed` consumer checks the predictions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.conftest import KafkaHandle, Kube
from tests.e2e.harness import (
    Jobs,
    OperatorProcess,
    eventually,
    fresh_split,
    install_streamtrain_crd,
)
from tests.e2e.kubelet_agent import KubeletAgent
from tests.integration.serve_support import (
    answered_twice,
    produce_with_headers,
    read_committed,
    read_predictions,
)
from workload.datagen.records import Message, encode
from workload.datagen.synthetic import generate
from workload.datagen.task_families import TICKETS
from workload.kafka.connection import KafkaConnection
from workload.kafka.dead_letter import FIELD_HEADER, REASON_HEADER
from workload.kafka.producer import produce_messages

TRAIN_ROWS, TEST_ROWS, LATER_ROWS = 2000, 600, 400

TICKETS_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "09-multiclass-json" / "job.yaml"
"""The multiclass example: JSON tickets with three categorical fields, one of them embedded."""


@pytest.fixture
def cluster(kube: Kube, tmp_path: Path) -> Iterator[tuple[OperatorProcess, KubeletAgent]]:
    """The CRD, the operator and the kubelet agent, all serving the test's namespace."""
    install_streamtrain_crd(kube.cluster.api)
    operator = OperatorProcess(kube.cluster.kubeconfig, kube.namespace,
                               tmp_path / "operator.log").start()
    agent = KubeletAgent(kube.cluster.api, kube.namespace, tmp_path / "pods").start()
    yield operator, agent
    agent.stop()
    operator.stop()


def _diagnosis(jobs: Jobs, name: str, cluster: tuple[OperatorProcess, KubeletAgent]
               ) -> Callable[[], str]:
    operator, agent = cluster
    return lambda: (f"status: {jobs.status(name)}\n--- operator\n{operator.tail()}\n"
                    f"--- pods\n{agent.logs()}")


def _deployment(kube: Kube, name: str) -> Any:
    apps: Any = kubernetes.client.AppsV1Api(kube.cluster.api)
    return apps.read_namespaced_deployment(name, kube.namespace)


def test_a_trained_job_serves_as_a_deployment_exactly_once_and_scales(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    train, test = fresh_split(kafka.bootstrap_servers, TRAIN_ROWS, TEST_ROWS, seed=11)
    predictions_topic = f"{test}-predictions"
    jobs = Jobs(kube.cluster.api, kube.namespace)
    jobs.create("susy", {
        "kafka": {"bootstrapServers": kafka.bootstrap_servers},
        "train": {"topic": train, "epochs": 1},
        "serve": {"inputTopic": test, "outputTopic": predictions_topic, "replicas": 2,
                  "consumerGroup": f"serve-{uuid.uuid4().hex[:8]}", "maxLatencyMs": 200},
        "model": {"layers": [{"dense": 8}],
                  "output": {"path": "/models/susy", "volumeClaim": "susy-models"}},
    })
    diagnose = _diagnosis(jobs, "susy", cluster)

    def serving(key: str) -> Any:
        return (jobs.status("susy").get("serving") or {}).get(key)

    eventually(lambda: jobs.phase("susy") == "Serving" and serving("readyReplicas") == 2, 300,
               "two serving pods ready", diagnose)
    deployment = _deployment(kube, "susy-serve")
    assert deployment.metadata.owner_references[0].kind == "StreamingTrainingJob"
    pod = deployment.spec.template.spec
    assert pod.security_context.run_as_non_root and pod.containers[0].security_context.\
        read_only_root_filesystem

    predictions = eventually(lambda: (found := read_predictions(
        kafka.bootstrap_servers, predictions_topic)) and len(found) >= TEST_ROWS and found,
        180, f"{TEST_ROWS} predictions", diagnose)
    assert len(predictions) == TEST_ROWS and not answered_twice(predictions)
    version = predictions[0].value["modelVersion"]
    assert version.startswith("trained-")
    eventually(lambda: serving("recordsServed") == TEST_ROWS and serving("version") == version,
               60, "status.serving to count the predictions", diagnose)
    condition = jobs.condition("susy", "Serving")
    assert condition is not None and condition["status"] == "True"

    jobs.patch_spec("susy", {"serve": {"replicas": 1}})  # scaling is an edit of a running job
    eventually(lambda: _deployment(kube, "susy-serve").spec.replicas == 1
               and serving("readyReplicas") == 1, 120, "serving scaled to one pod", diagnose)
    later = list(encode(generate(LATER_ROWS, seed=12)))
    produce_with_headers(kafka.bootstrap_servers, test, later, partitions=2, start=TEST_ROWS)
    total = TEST_ROWS + LATER_ROWS
    predictions = eventually(lambda: (found := read_predictions(
        kafka.bootstrap_servers, predictions_topic)) and len(found) >= total and found,
        180, f"{total} predictions", diagnose)
    assert len(predictions) == total and not answered_twice(predictions)
    reasons = {event.reason for event in jobs.events("susy")}
    assert {"DeploymentCreated", "Serving"} <= reasons, reasons


def test_a_job_that_learns_online_promotes_a_better_model_and_its_replicas_serve_it(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    # A model trained on 300 rows for one epoch is weak; online learning on 20,000 more beats it.
    train, test = fresh_split(kafka.bootstrap_servers, 300, TEST_ROWS, seed=21)
    learn = kafka.create_topic("promote-learn", partitions=1)
    produce_with_headers(kafka.bootstrap_servers, learn,
                         list(encode(generate(20_000, seed=22))), partitions=1)
    predictions_topic = f"{test}-predictions"
    jobs = Jobs(kube.cluster.api, kube.namespace)
    jobs.create("susy", {
        "kafka": {"bootstrapServers": kafka.bootstrap_servers},
        "train": {"topic": train, "epochs": 1},
        "online": {"topic": learn, "consumerGroup": f"learn-{uuid.uuid4().hex[:8]}",
                   "streamTimeoutMs": 5000, "exportEveryRecords": 4000,
                   "exportEverySeconds": 0},
        "serve": {"inputTopic": test, "outputTopic": predictions_topic,
                  "consumerGroup": f"serve-{uuid.uuid4().hex[:8]}", "maxLatencyMs": 200,
                  "promotion": {"window": 2000}},
        "model": {"layers": [{"dense": 8}],
                  "output": {"path": "/models/susy", "volumeClaim": "susy-models"}},
    })
    diagnose = _diagnosis(jobs, "susy", cluster)

    def events(reason: str) -> list[Any]:
        return [event for event in jobs.events("susy") if event.reason == reason]

    eventually(lambda: events("ModelPromoted"), 400, "a ModelPromoted event", diagnose)
    eventually(lambda: jobs.phase("susy") == "Serving", 300, "online learning to end", diagnose)
    # The learner posts its last decision before its pod ends, so before its phase does: the
    # status holds every decision now, each counted once, and it is an Event once.
    serving = jobs.status("susy")["serving"]
    last = serving["lastDecision"]
    assert serving["promotions"] >= 1, serving
    eventually(lambda: (len(events("ModelPromoted")), len(events("PromotionRejected"))) == (
        serving["promotions"], serving["rejections"]), 60, "an Event per decision", diagnose)
    promoted = [event.message for event in events("ModelPromoted")]
    version = last["version"]  # served after the last decision: the last model promoted
    assert version.startswith("online-") and any(
        f"challenger promoted: {version} " in message and "McNemar" in message
        for message in promoted), (version, promoted)
    eventually(lambda: jobs.status("susy")["serving"]["version"] == version, 60,
               "the replica to serve the last model promoted", diagnose)
    before = len(eventually(lambda: (found := read_predictions(
        kafka.bootstrap_servers, predictions_topic)) and len(found) >= TEST_ROWS and found,
        180, f"{TEST_ROWS} predictions", diagnose))
    # What arrives now is answered by that model alone.
    produce_with_headers(kafka.bootstrap_servers, test,
                         list(encode(generate(LATER_ROWS, seed=23))), partitions=2,
                         start=TEST_ROWS)
    total = TEST_ROWS + LATER_ROWS
    predictions = eventually(lambda: (found := read_predictions(
        kafka.bootstrap_servers, predictions_topic)) and len(found) >= total and found,
        180, f"{total} predictions", diagnose)
    assert before == TEST_ROWS
    assert len(predictions) == total and not answered_twice(predictions)
    later = [p for p in predictions if p.source[1] >= TEST_ROWS // 2]
    assert len(later) == LATER_ROWS and {p.value["modelVersion"] for p in later} == {version}
    # Each partition swapped forward between transactions, never back, in one order, from the
    # trained model through promoted ones to the last.
    swaps = [_swaps(predictions, partition) for partition in (0, 1)]
    for runs in swaps:
        assert len(runs) == len(set(runs)) and runs[-1] == version, runs
        assert all(any(f"challenger promoted: {name} " in message for message in promoted)
                   for name in runs if not name.startswith("trained-")), (runs, promoted)
        assert all(not name.startswith("trained-") for name in runs[1:]), runs
    first = {name: index for index, name in enumerate(swaps[0])}
    shared = [name for name in swaps[1] if name in first]
    assert shared == sorted(shared, key=first.__getitem__), swaps


def test_the_tickets_example_serves_its_categorical_fields_from_a_pod_with_litert(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    """The multiclass example as a user applies it, with a `serve` section added: the serving
    pod reads the raw strings of the categorical fields, scores them with LiteRT, answers each
    good request once and sets aside the one without a channel."""
    data = TICKETS.data_spec()
    connection = KafkaConnection(kafka.bootstrap_servers)
    train = kafka.create_topic("tickets-train", partitions=1)
    produce_messages(connection, train, encode(TICKETS.generate(TRAIN_ROWS, seed=31), data), 1)
    requests = encode(TICKETS.generate(TEST_ROWS, seed=32), data)
    no_channel = json.loads(requests[5].value)
    del no_channel["channel"]
    requests[5] = Message(requests[5].key, json.dumps(no_channel).encode())
    source = kafka.create_topic("tickets-requests", partitions=2)
    produce_messages(connection, source, requests, 2)
    manifest = yaml.safe_load(TICKETS_EXAMPLE.read_text())
    spec = manifest["spec"]
    del spec["evaluate"]  # evaluation has e2e tests of its own; this one is about serving
    spec["kafka"]["bootstrapServers"] = kafka.bootstrap_servers
    spec["train"].update({"topic": train, "epochs": 1})
    spec["data"]["deadLetterTopic"] = f"{source}-bad"
    spec["serve"] = {"inputTopic": source, "outputTopic": f"{source}-predictions",
                     "consumerGroup": f"serve-{uuid.uuid4().hex[:8]}", "maxLatencyMs": 200}
    kube.cluster.kubectl("apply", "-n", kube.namespace, "-f", "-",
                         stdin=yaml.safe_dump(manifest))
    jobs = Jobs(kube.cluster.api, kube.namespace)
    diagnose = _diagnosis(jobs, "tickets", cluster)

    def serving() -> dict[str, Any]:
        return jobs.status("tickets").get("serving") or {}

    good = TEST_ROWS - 1
    eventually(lambda: jobs.phase("tickets") == "Serving" and serving().get(
        "recordsServed") == good, 400, f"{good} requests served", diagnose)
    assert serving()["runtime"] == "litert", serving()
    predictions = read_predictions(kafka.bootstrap_servers, f"{source}-predictions")
    assert not answered_twice(predictions)
    assert sorted(p.source for p in predictions) == sorted(
        (index % 2, index // 2) for index in range(TEST_ROWS) if index != 5)
    classes = set(TICKETS.classes)
    for prediction in predictions:
        answer = prediction.value["prediction"]
        assert answer["class"] in classes and set(answer["probabilities"]) == classes, answer
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    (dead,) = read_committed(kafka.bootstrap_servers, f"{source}-bad")
    headers = dict(dead.headers())
    assert (headers[REASON_HEADER], headers[FIELD_HEADER]) == (b"missing_field", b"channel")
    assert dead.value() == requests[5].value


def _swaps(predictions: list[Any], partition: int) -> list[str]:
    """The versions that answered a partition's records in offset order, each run of the same
    version once."""
    runs: list[str] = []
    for prediction in sorted(predictions, key=lambda p: p.source):
        name = prediction.value["modelVersion"]
        if prediction.source[0] == partition and (not runs or runs[-1] != name):
            runs.append(name)
    return runs
