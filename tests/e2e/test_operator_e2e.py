"""End to end: apply the minimal example -> Jobs -> pods -> the workload trains on the real local
Kafka -> the StreamingTrainingJob reaches Succeeded with accuracy in status and `kubectl get stj`.

The operator and the pods run as local processes; `KubeletAgent` plays the kubelet.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from localparts import kube_build
from tests.conftest import KafkaHandle, Kube
from tests.e2e import scram_broker
from tests.e2e.harness import (
    REPO,
    Jobs,
    OperatorProcess,
    StrimziObjects,
    eventually,
    fresh_split,
    install_streamtrain_crd,
    install_strimzi_crds,
    remove_strimzi_crds,
)
from tests.e2e.kubelet_agent import KubeletAgent
from workload.datagen.records import corrupt, encode
from workload.datagen.synthetic import generate
from workload.datagen.table import SUSY_COLUMNS, split
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import produce_messages
from workload.spec import DataSpec

EXAMPLE = REPO / "examples" / "01-minimal" / "job.yaml"
TRAIN_ROWS, TEST_ROWS = 3000, 1000
PROGRESS_TRAIN_ROWS, PROGRESS_EPOCHS = 12000, 4
"""The training whose live progress the test watches. Its rising does not depend on how long it
takes: each 10 % step of a phase is posted and written at once (`PROGRESS_STEP_PERCENT`), so a
machine that trains within one 2 s interval still shows several rows."""
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


def _example_for(bootstrap_servers: str, train: str, test: str,
                 epochs: int = 3) -> dict[str, Any]:
    """The example manifest pointed at a test broker, with fresh topics and a short run."""
    manifest: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    spec = manifest["spec"]
    spec["kafka"]["bootstrapServers"] = bootstrap_servers
    spec["train"].update({"topic": train, "epochs": epochs})
    spec["evaluate"].update({"topic": test, "consumerGroup": f"eval-{uuid.uuid4().hex[:8]}",
                             "streamTimeoutMs": 3000})
    return manifest


def _apply(kube: Kube, manifest: dict[str, Any]) -> Jobs:
    """`kubectl apply` the manifest into the test's namespace."""
    kube.cluster.kubectl("apply", "-n", kube.namespace, "-f", "-", stdin=yaml.safe_dump(manifest))
    return Jobs(kube.cluster.api, kube.namespace)


def _diagnosis(jobs: Jobs, name: str, cluster: tuple[OperatorProcess, KubeletAgent]
               ) -> Callable[[], str]:
    """What to show when a wait fails: the job's status, the operator's log, the pods' logs."""
    operator, agent = cluster
    return lambda: (f"status: {jobs.status(name)}\n--- operator\n{operator.tail()}\n"
                    f"--- pods\n{agent.logs()}")


def _succeeded(jobs: Jobs, name: str, diagnose: Callable[[], str]) -> dict[str, Any]:
    """Wait for the job to end; its status, which must say Succeeded."""
    eventually(lambda: jobs.phase(name) in ("Succeeded", "Failed"), 300, f"{name} to finish",
               diagnose)
    status = jobs.status(name)
    assert status["phase"] == "Succeeded", diagnose()
    return status


def _watch_table(kube: Kube, log: Path) -> subprocess.Popen[bytes]:
    """`kubectl get stj -w`, its lines written to `log`, as a user would watch the job."""
    command = [str(kube_build.binary_dir() / "kubectl"), "--kubeconfig",
               str(kube.cluster.kubeconfig), "get", "stj", "-n", kube.namespace, "-w"]
    with log.open("wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)


def _progress_rows(log: Path, name: str, phase: str = "Training") -> list[tuple[float, int | None]]:
    """(PROGRESS, ETA) of each row of `phase` that `kubectl get stj -w` printed.

    kubectl leaves empty cells blank; while a job trains or evaluates, REASON, METRIC, VALUE,
    AUC and RECORDS are empty, so such a row reads NAME PHASE [PROGRESS [ETA]] AGE.
    """
    rows: list[tuple[float, int | None]] = []
    for line in log.read_text().splitlines():
        cells = line.split()
        if cells[:2] == [name, phase] and len(cells) >= 4:
            rows.append((float(cells[2]), int(cells[3]) if len(cells) == 5 else None))
    return rows


def test_applied_example_trains_evaluates_and_reports_progress_and_accuracy(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent],
        tmp_path: Path) -> None:
    train, test = fresh_split(kafka.bootstrap_servers, PROGRESS_TRAIN_ROWS, TEST_ROWS, seed=7)
    manifest = _example_for(kafka.bootstrap_servers, train, test, epochs=PROGRESS_EPOCHS)
    watch = _watch_table(kube, tmp_path / "watch.txt")
    try:
        jobs = _apply(kube, manifest)
        name = manifest["metadata"]["name"]
        status = _succeeded(jobs, name, _diagnosis(jobs, name, cluster))
    finally:
        watch.terminate()
        watch.wait(timeout=10)
    rows = _progress_rows(tmp_path / "watch.txt", name)
    percents = [percent for percent, _ in rows]
    assert len(set(percents)) >= 2 and percents == sorted(percents), rows  # it rose
    assert any(eta is not None and eta > 0 for _, eta in rows), rows
    evaluating = _progress_rows(tmp_path / "watch.txt", name, "Evaluating")
    assert evaluating and evaluating[0] == (0.0, None), evaluating  # not training's "100 0"
    assert [percent for percent, _ in evaluating] == sorted(p for p, _ in evaluating), evaluating
    assert status["progress"]["percent"] == 100.0 and status["progress"]["mode"] == "evaluate"
    metrics = status["metrics"]
    assert metrics["recordsEvaluated"] == TEST_ROWS
    assert 0.6 < metrics["evalAccuracy"] <= 1.0
    assert 0.6 < metrics["evalAuc"] <= 1.0
    assert status["trainer"]["succeeded"] == 1 and status["evaluator"]["succeeded"] == 1
    table = kube.cluster.kubectl("get", "stj", "-n", kube.namespace).stdout
    row = next(line for line in table.splitlines() if line.startswith(name))
    assert "Succeeded" in row and str(metrics["evalAccuracy"]) in row
    assert str(TEST_ROWS) in row


def test_a_failure_a_retry_may_fix_is_retried_up_to_the_backoff_limit_with_the_pods_message(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    empty_train = kafka.create_topic("empty-train")  # records may still arrive: not permanent
    manifest = _example_for(kafka.bootstrap_servers, empty_train, kafka.create_topic("empty-test"))
    manifest["spec"]["runPolicy"] = {"backoffLimit": 1}
    jobs = _apply(kube, manifest)
    eventually(lambda: jobs.phase("susy") == "Failed", 180, "the job to fail",
               _diagnosis(jobs, "susy", cluster))
    failed = jobs.condition("susy", "Failed")
    assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
    assert jobs.status("susy")["reason"] == "BackoffLimitExceeded"
    assert "train failed (BackoffLimitExceeded)" in failed["message"]
    assert "Traceback" not in failed["message"]
    assert empty_train in failed["message"]  # the workload's own words, via the termination log
    assert jobs.status("susy")["trainer"]["failed"] == 2  # the first pod, then its one retry
    assert len(jobs.pods("susy-train")) == 2


def _fails_once(kube: Kube, jobs: Jobs, cluster: tuple[OperatorProcess, KubeletAgent],
                reason: str) -> dict[str, Any]:
    """Wait for the job to fail; check that one pod ran and Kubernetes itself stopped there
    (the pod failure policy, not the backoff limit); the Failed condition, whose reason and
    REASON column must be `reason`. Prints the seconds from apply to Failed."""
    started = time.monotonic()
    eventually(lambda: jobs.phase("susy") == "Failed", 120, "the job to fail",
               _diagnosis(jobs, "susy", cluster))
    print(f"\n{reason}: Failed {time.monotonic() - started:.1f} s after apply")
    failed = jobs.condition("susy", "Failed")
    assert failed is not None and failed["reason"] == jobs.status("susy")["reason"] == reason
    assert failed["message"].startswith(f"train failed ({reason}): ")
    assert "Traceback" not in failed["message"]
    child = jobs.child_jobs()[0]
    job_failed = next(c for c in child.status.conditions if c.type == "Failed")
    assert job_failed.reason == "PodFailurePolicy", job_failed
    assert jobs.status("susy")["trainer"]["failed"] == 1 and len(jobs.pods("susy-train")) == 1
    table = kube.cluster.kubectl("get", "stj", "-n", kube.namespace).stdout
    print(table)
    row = next(line for line in table.splitlines() if line.startswith("susy "))
    assert row.split()[1:3] == ["Failed", reason]
    return failed


def test_a_missing_topic_fails_the_job_once_with_reason_topic_not_found(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    manifest = _example_for(kafka.bootstrap_servers, f"never-made-{uuid.uuid4().hex[:6]}",
                            kafka.create_topic("nm-test"))  # backoffLimit 3 by default
    jobs = _apply(kube, manifest)
    failed = _fails_once(kube, jobs, cluster, "TopicNotFound")
    topic = manifest["spec"]["train"]["topic"]
    assert f"topic '{topic}' (spec.train.topic) does not exist on" in failed["message"]
    assert jobs.condition("susy", "KafkaReady") is None or jobs.condition(
        "susy", "KafkaReady")["status"] == "True"  # Kafka itself is fine


def test_too_many_bad_records_fail_the_job_once_with_reason_too_many_bad_records(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    dirty = kafka.create_topic("dirty-train")
    messages, _ = corrupt(encode(generate(400, seed=12)), 0.3, seed=13)
    produce_messages(KafkaConnection(kafka.bootstrap_servers), dirty, messages, partitions=1)
    manifest = _example_for(kafka.bootstrap_servers, dirty, kafka.create_topic("dirty-test"))
    jobs = _apply(kube, manifest)
    failed = _fails_once(kube, jobs, cluster, "TooManyBadRecords")
    assert "120 of 400 records" in failed["message"]
    assert "data.maxBadRecordsRatio allows 5.0%" in failed["message"]


def test_unreachable_brokers_fail_the_job_within_a_minute_naming_the_address(
        kube: Kube, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:  # a port nothing listens on after
        servers = f"127.0.0.1:{server.getsockname()[1]}"
    jobs = _apply(kube, _example_for(servers, "ux-train", "ux-test"))
    eventually(lambda: jobs.phase("susy") == "Failed", 60, "the job to fail within 60 s",
               _diagnosis(jobs, "susy", cluster))
    failed, kafka_ready = jobs.condition("susy", "Failed"), jobs.condition("susy", "KafkaReady")
    assert failed is not None and failed["reason"] == "KafkaUnreachable"
    assert f"cannot reach Kafka at {servers}" in failed["message"]
    assert "Traceback" not in failed["message"]
    assert kafka_ready is not None
    assert (kafka_ready["status"], kafka_ready["reason"]) == ("False", "KafkaUnreachable")
    assert jobs.status("susy")["reason"] == "KafkaUnreachable"
    assert jobs.status("susy")["trainer"]["failed"] == 1  # exit 3: the Job tried no other pod


def test_suspending_a_running_trainer_kills_its_pod_and_resume_finishes_the_job(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    _, agent = cluster
    train, test = fresh_split(kafka.bootstrap_servers, TRAIN_ROWS, TEST_ROWS, seed=8)
    jobs = _apply(kube, _example_for(kafka.bootstrap_servers, train, test))
    diagnose = _diagnosis(jobs, "susy", cluster)
    eventually(lambda: any(p.status.phase == "Running" for p in jobs.pods("susy-train")), 60,
               "the trainer to run", diagnose)
    jobs.patch_spec("susy", {"runPolicy": {"suspend": True}})
    eventually(lambda: jobs.phase("susy") == "Suspended", 30, "Suspended", diagnose)
    eventually(lambda: not jobs.pods("susy-train"), 60, "the running pod to be removed",
               diagnose)
    assert not agent.running

    jobs.patch_spec("susy", {"runPolicy": {"suspend": False}})
    status = _succeeded(jobs, "susy", diagnose)
    assert status["metrics"]["recordsEvaluated"] == TEST_ROWS


def test_strimzi_cluster_ref_job_trains_against_the_listener_address(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    version = install_strimzi_crds(kube.cluster.api, "1.2.0")
    try:
        StrimziObjects(kube.cluster.api, kube.namespace, version).cluster(
            "plain", kafka.bootstrap_servers)
        train, test = fresh_split(kafka.bootstrap_servers, TRAIN_ROWS, TEST_ROWS, seed=9)
        manifest = _example_for(kafka.bootstrap_servers, train, test)
        manifest["spec"]["kafka"] = {"clusterRef": {"name": "my-cluster", "listener": "plain"}}
        jobs = _apply(kube, manifest)
        status = _succeeded(jobs, "susy", _diagnosis(jobs, "susy", cluster))
        assert status["bootstrapServers"] == kafka.bootstrap_servers
        assert status["metrics"]["recordsEvaluated"] == TEST_ROWS
    finally:
        remove_strimzi_crds(kube.cluster.api)


def test_kafka_user_job_trains_over_scram_with_the_mounted_secret(
        kube: Kube, tmp_path: Path, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    broker = scram_broker.start(tmp_path / "scram-kafka", "trainer", "s3cret-pass")
    version = install_strimzi_crds(kube.cluster.api, "1.2.0")
    try:
        strimzi = StrimziObjects(kube.cluster.api, kube.namespace, version)
        strimzi.cluster("scram", broker.scram_servers, authentication="scram-sha-512")
        strimzi.scram_user("trainer", "trainer")
        # What Strimzi's User Operator writes: the password under `password`.
        core: Any = kubernetes.client.CoreV1Api(kube.cluster.api)
        core.create_namespaced_secret(kube.namespace, {
            "metadata": {"name": "trainer"}, "stringData": {"password": "s3cret-pass"}})

        train, test = fresh_split(broker.plain_servers, TRAIN_ROWS, TEST_ROWS, seed=10)
        manifest = _example_for(broker.plain_servers, train, test, epochs=2)
        manifest["spec"]["kafka"] = {"clusterRef": {"name": "my-cluster", "listener": "scram"},
                                     "userRef": {"name": "trainer"}}
        jobs = _apply(kube, manifest)
        # The SCRAM listener admits only authenticated clients: success means SCRAM worked.
        status = _succeeded(jobs, "susy", _diagnosis(jobs, "susy", cluster))
        assert status["bootstrapServers"] == broker.scram_servers
        assert status["metrics"]["recordsEvaluated"] == TEST_ROWS
    finally:
        remove_strimzi_crds(kube.cluster.api)
        broker.stop()


def _on_claim(manifest: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    """`manifest` renamed, writing to `path` on the shared claim `ux-models`."""
    manifest["metadata"]["name"] = name
    manifest["spec"]["model"]["output"] = {"path": path, "volumeClaim": "ux-models"}
    return manifest


def test_jobs_sharing_a_claim_keep_their_own_results_one_after_another_and_at_once(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    """The reproduction of a shared claim: job A trains 3 epochs; then B (A with another name,
    path and 2 epochs), C (1 epoch) and D (evaluating A's model through `model.source`) run at
    the same time. Each trains and scores on its own."""
    _, agent = cluster
    servers = kafka.bootstrap_servers
    train, test = fresh_split(servers, TRAIN_ROWS, TEST_ROWS, seed=11)
    jobs = _apply(kube, _on_claim(_example_for(servers, train, test, epochs=3),
                                  "first-try", "/models/first-try"))
    first = _succeeded(jobs, "first-try", _diagnosis(jobs, "first-try", cluster))

    evaluate_a = _on_claim(_example_for(servers, train, test), "evaluate-a", "/models/eval")
    del evaluate_a["spec"]["train"]
    evaluate_a["spec"]["model"]["source"] = {"job": "first-try"}
    for manifest in (_on_claim(_example_for(servers, train, test, epochs=2), "share-a",
                               "/models/share-a"),
                     _on_claim(_example_for(servers, train, test, epochs=1), "other",
                               "/models/other"),
                     evaluate_a):
        _apply(kube, manifest)
    status = {name: _succeeded(jobs, name, _diagnosis(jobs, name, cluster))
              for name in ("share-a", "other", "evaluate-a")}
    status["first-try"] = first

    epochs = {name: status[name]["metrics"]["epochsTrained"]
              for name in ("first-try", "share-a", "other")}
    assert epochs == {"first-try": 3, "share-a": 2, "other": 1}
    losses = {status[name]["metrics"]["trainLoss"] for name in epochs}
    assert len(losses) == 3
    for name in status:
        assert status[name]["metrics"]["recordsEvaluated"] == TEST_ROWS
    # D scored A's model: the same figures as A's own evaluation, under its own consumer group.
    for figure in ("evalAccuracy", "evalAuc", "evalLoss"):
        assert status["evaluate-a"]["metrics"][figure] == first["metrics"][figure]

    claim = agent.claim_folder("ux-models") / kube.namespace
    assert sorted(folder.name for folder in claim.iterdir()) == sorted(status)
    for name in status:
        uid = jobs.get(name)["metadata"]["uid"]
        folder = claim / name / uid
        assert [path.name for path in (claim / name).iterdir()] == [uid]
        evaluation = json.loads((folder / "results-evaluate.json").read_text())
        assert evaluation["job"] == name and evaluation["partitions"]
        if name != "evaluate-a":
            assert status[name]["model"]["uri"] == (
                f"pvc://ux-models/{kube.namespace}/{name}/{uid}/model.keras")
            assert json.loads((folder / "results-train.json").read_text())["job"] == name
            state = json.loads((folder / "checkpoints" / "state.json").read_text())
            assert (state["jobUid"], state["epochsDone"]) == (uid, epochs[name])
    assert not (claim / "evaluate-a" / jobs.get("evaluate-a")["metadata"]["uid"] /
                "model.keras").exists()


def test_two_workers_and_two_evaluators_train_and_score_each_record_once(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    """`trainer.replicas: 2` on a one-partition topic (each worker its offset slice),
    `evaluator.replicas: 2` on a two-partition one (each evaluator a partition)."""
    _, agent = cluster
    train, test = fresh_split(kafka.bootstrap_servers, TRAIN_ROWS, TEST_ROWS, seed=12)
    manifest = _on_claim(_example_for(kafka.bootstrap_servers, train, test, epochs=2),
                         "group", "/models/group")
    manifest["spec"].update(trainer={"replicas": 2}, evaluator={"replicas": 2})
    jobs = _apply(kube, manifest)
    diagnose = _diagnosis(jobs, "group", cluster)
    status = _succeeded(jobs, "group", diagnose)

    assert "recordsEvaluated" in status["metrics"], diagnose()
    for role in ("trainer", "evaluator"):
        assert {key: status[role][key] for key in ("replicas", "succeeded")} == {
            "replicas": 2, "succeeded": 2}
    held_out = int(TRAIN_ROWS * 0.1)  # train.validationFraction's default
    assert status["metrics"]["recordsTrained"] == TRAIN_ROWS - held_out
    assert status["metrics"]["recordsValidated"] == held_out
    assert status["metrics"]["recordsEvaluated"] == TEST_ROWS
    assert 0.6 < status["metrics"]["evalAuc"] <= 1.0
    # The live figures end as the group's merged ones, not evaluator 0's own.
    progress = status["progress"]
    assert (progress["mode"], progress["percent"]) == ("evaluate", 100.0)
    assert (progress["accuracy"], progress["auc"], progress["loss"]) == (
        status["metrics"]["evalAccuracy"], status["metrics"]["evalAuc"],
        status["metrics"]["evalLoss"])
    assert kube.cluster.batch.read_namespaced_job(
        "group-train", kube.namespace).spec.completion_mode == "Indexed"
    assert kube.cluster.core.read_namespaced_service(
        "group-train", kube.namespace).spec.cluster_ip == "None"
    folder = (agent.claim_folder("ux-models") / kube.namespace / "group" /
              jobs.get("group")["metadata"]["uid"])
    trained = json.loads((folder / "results-train.json").read_text())
    assert trained["workers"] == 2
    middle = (TRAIN_ROWS - held_out) // 2
    assert trained["shares"] == [{"0": [0, middle]}, {"0": [middle, TRAIN_ROWS - held_out]}]
    evaluated = json.loads((folder / "results-evaluate.json").read_text())
    assert evaluated["evaluators"] == 2
    group = manifest["spec"]["evaluate"]["consumerGroup"]
    assert kafka.committed(group) == {(test, p): end for p, end in kafka.end_offsets(test).items()}


JSON_DATA = {"format": "json", "label": "label", "maxRecordBytes": 4096,
             "columns": [f"event.{name}" for name in SUSY_COLUMNS] + ["label"]}
"""Each record: `{"event": {"lepton1_pt": ..., ...}, "label": 0|1}`."""


def test_a_json_job_shows_the_bad_records_of_training_and_of_evaluation(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    """Junk in both topics: status keeps each phase's count by reason, and their sum (the last
    phase's count no longer hides the first's)."""
    data = DataSpec.model_validate(JSON_DATA)
    train_rows, test_rows = split(generate(TRAIN_ROWS + TEST_ROWS, seed=21), TRAIN_ROWS)
    train, train_made = corrupt(encode(train_rows, data), 0.02, seed=22, spec=data)
    test, test_made = corrupt(encode(test_rows, data), 0.03, seed=23, spec=data)
    train_topic = kafka.create_topic("json-train", partitions=1)
    test_topic = kafka.create_topic("json-test", partitions=2)
    connection = KafkaConnection(kafka.bootstrap_servers)
    produce_messages(connection, train_topic, train, 1)
    produce_messages(connection, test_topic, test, 2)
    manifest = _example_for(kafka.bootstrap_servers, train_topic, test_topic, epochs=2)
    manifest["metadata"]["name"] = "junk"
    manifest["spec"]["data"] = {**JSON_DATA, "deadLetterTopic": f"{train_topic}-dead"}
    jobs = _apply(kube, _on_claim(manifest, "junk", "/models/junk"))
    status = _succeeded(jobs, "junk", _diagnosis(jobs, "junk", cluster))

    made = {"train": {k: v for k, v in train_made.items() if v},
            "evaluate": {k: v for k, v in test_made.items() if v}}
    metrics = status["metrics"]
    assert {mode: found["byReason"] for mode, found in metrics["badRecordsByPhase"].items()} == made
    assert {mode: found["records"] for mode, found in metrics["badRecordsByPhase"].items()} == {
        mode: sum(counts.values()) for mode, counts in made.items()}
    assert metrics["badRecords"] == sum(train_made.values()) + sum(test_made.values()) > 0
    assert sum(made["train"].values()) > 0 and sum(made["evaluate"].values()) > 0
    assert metrics["badRecordsByReason"] == {
        reason: made["train"].get(reason, 0) + made["evaluate"].get(reason, 0)
        for reason in {*made["train"], *made["evaluate"]}}
