"""Evaluate mode on the real broker: right figures, visible committed offsets, nothing twice."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaConsumer

from tests.conftest import KafkaHandle
from tests.integration.modes_support import fill_topic, job_spec, predict, save_tiny_model
from workload.artifacts import Artifacts
from workload.kafka.connection import KafkaConnection
from workload.kafka.dead_letter import REASON_HEADER
from workload.modes.evaluate import run_evaluate


def exact_auc(labels: np.ndarray, scores: np.ndarray) -> float:  # type: ignore[type-arg]
    """ROC AUC by average ranks (Mann-Whitney U), ties counted half."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    ranks = (upper - (counts - 1) / 2)[inverse]
    positives = labels == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_evaluation_figures_match_numpy_and_offsets_are_committed(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    topic = kafka.create_topic("eval", partitions=2)
    data, _, _ = fill_topic(kafka.bootstrap_servers, topic, 3000, seed=5, partitions=2)
    artifacts = Artifacts(tmp_path).prepare()
    save_tiny_model(artifacts.keras_model, data=data)
    group = f"figures-{uuid.uuid4().hex[:8]}"
    spec = job_spec(kafka.bootstrap_servers, tmp_path,
                    evaluate={"topic": topic, "consumerGroup": group, "streamTimeoutMs": 0,
                              "batchSize": 256})
    connection = KafkaConnection(kafka.bootstrap_servers)

    report = run_evaluate("figures", spec, connection, artifacts, progress=False,
                          chunk_records=700)

    assert report.ok, report.message
    scores = predict(artifacts.keras_model, data.features)
    labels = data.labels
    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    loss = -(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)).mean()
    metrics = report.metrics
    assert metrics.records_evaluated == 3000
    assert metrics.eval_loss == pytest.approx(loss, rel=1e-4)
    assert metrics.eval_accuracy == pytest.approx(((scores > 0.5) == (labels == 1)).mean(),
                                                  abs=1.5 / 3000)
    assert metrics.eval_auc == pytest.approx(exact_auc(labels, scores), abs=1e-3)
    assert metrics.bad_records == 0

    ends = kafka.end_offsets(topic)
    assert kafka.committed(group) == {(topic, p): end for p, end in ends.items()}
    results = json.loads(artifacts.results("evaluate").read_text())
    assert [row["lag"] for row in results["partitions"]] == [0, 0]
    confusion = results["figures"]["confusionMatrix"]
    assert sum(confusion.values()) == 3000
    assert results["figures"]["precision"] > 0 and results["figures"]["recall"] > 0

    again = run_evaluate("figures", spec, connection, artifacts, progress=False)
    rerun = json.loads(artifacts.results("evaluate").read_text())
    assert again.ok and rerun["recordsThisRun"] == 0
    assert again.metrics == report.metrics


def test_bad_records_are_counted_by_reason_never_scored_and_dead_lettered(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    topic = kafka.create_topic("eval-bad", partitions=2)
    dead = kafka.create_topic("eval-dead", partitions=1)
    _, _, made = fill_topic(kafka.bootstrap_servers, topic, 2000, seed=6, partitions=2,
                            bad_fraction=0.02)
    artifacts = Artifacts(tmp_path).prepare()
    save_tiny_model(artifacts.keras_model)
    spec = job_spec(kafka.bootstrap_servers, tmp_path,
                    data={"deadLetterTopic": dead, "maxBadRecordsRatio": 0.05},
                    evaluate={"topic": topic, "consumerGroup": topic, "streamTimeoutMs": 0})

    report = run_evaluate("bad", spec, KafkaConnection(kafka.bootstrap_servers), artifacts,
                          progress=False)

    assert report.ok, report.message
    expected = {reason: count for reason, count in made.items() if count}
    assert report.metrics.bad_records_by_reason == expected
    assert report.metrics.records_evaluated == 2000 - sum(expected.values())
    consumer = KafkaConsumer(dead, bootstrap_servers=kafka.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    reasons: dict[str, int] = {}
    for message in consumer:
        reason = dict(message.headers)[REASON_HEADER].decode()
        reasons[reason] = reasons.get(reason, 0) + 1
    consumer.close()
    assert reasons == expected


def test_too_many_bad_records_fail_the_run_with_counts_and_reasons(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    topic = kafka.create_topic("eval-worse", partitions=1)
    fill_topic(kafka.bootstrap_servers, topic, 1000, seed=7, partitions=1, bad_fraction=0.3)
    artifacts = Artifacts(tmp_path).prepare()
    save_tiny_model(artifacts.keras_model)
    spec = job_spec(kafka.bootstrap_servers, tmp_path,
                    evaluate={"topic": topic, "consumerGroup": topic, "streamTimeoutMs": 0})

    report = run_evaluate("worse", spec, KafkaConnection(kafka.bootstrap_servers), artifacts,
                          progress=False)

    assert not report.ok and report.reason == "TooManyBadRecords"  # exits 7: not retried
    assert "300 of 1000 records (30.0%) are malformed" in report.message
    assert "field_count" in report.message and "maxBadRecordsRatio" in report.message


def test_a_model_of_another_width_fails_with_shape_mismatch_before_scoring(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    topic = kafka.create_topic("eval-shape", partitions=1)
    fill_topic(kafka.bootstrap_servers, topic, 100, seed=8, partitions=1)
    artifacts = Artifacts(tmp_path).prepare()
    save_tiny_model(artifacts.keras_model, features=5)  # the data has 18
    spec = job_spec(kafka.bootstrap_servers, tmp_path,
                    evaluate={"topic": topic, "consumerGroup": topic, "streamTimeoutMs": 0})

    report = run_evaluate("shape", spec, KafkaConnection(kafka.bootstrap_servers), artifacts,
                          progress=False)

    assert not report.ok and report.reason == "ShapeMismatch"  # exits 8: not retried
    assert "takes features (batch, 5), but the job's data gives features (batch, 18)" in report.message
    assert report.metrics.records_evaluated is None  # nothing scored


def test_a_new_model_is_refused_on_a_group_that_holds_figures_of_another(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    topic = kafka.create_topic("eval-model", partitions=1)
    fill_topic(kafka.bootstrap_servers, topic, 200, seed=8, partitions=1)
    artifacts = Artifacts(tmp_path).prepare()
    save_tiny_model(artifacts.keras_model, seed=1)
    spec = job_spec(kafka.bootstrap_servers, tmp_path,
                    evaluate={"topic": topic, "consumerGroup": topic, "streamTimeoutMs": 0})
    connection = KafkaConnection(kafka.bootstrap_servers)
    assert run_evaluate("m", spec, connection, artifacts, progress=False).ok

    save_tiny_model(artifacts.keras_model, seed=2)
    report = run_evaluate("m", spec, connection, artifacts, progress=False)

    assert not report.ok and "another model" in report.message


def test_a_ledger_of_another_job_is_ignored_and_every_record_scored_again(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    topic = kafka.create_topic("eval-owner", partitions=2)
    fill_topic(kafka.bootstrap_servers, topic, 300, seed=9, partitions=2)
    artifacts = Artifacts(tmp_path).prepare()
    save_tiny_model(artifacts.keras_model, seed=1)
    spec = job_spec(kafka.bootstrap_servers, tmp_path,
                    evaluate={"topic": topic, "consumerGroup": topic, "streamTimeoutMs": 0})
    connection = KafkaConnection(kafka.bootstrap_servers)
    first = run_evaluate("a", spec, connection, artifacts, progress=False, job_uid="uid-a")
    assert first.ok and first.resume_ignored is None
    again = run_evaluate("a", spec, connection, artifacts, progress=False, job_uid="uid-a")
    assert json.loads(artifacts.results("evaluate").read_text())["recordsThisRun"] == 0

    other = run_evaluate("b", spec, connection, artifacts, progress=False, job_uid="uid-b")

    results = json.loads(artifacts.results("evaluate").read_text())
    assert other.ok and results["recordsThisRun"] == 300
    assert other.metrics == again.metrics == first.metrics  # counted once, not on top of a's
    assert "belongs to job uid uid-a, this job is uid-b" in str(other.resume_ignored)
    assert json.loads(artifacts.ledger(topic).read_text())["jobUid"] == "uid-b"


def test_records_arriving_within_the_stream_timeout_are_scored(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    import threading

    topic = kafka.create_topic("eval-late", partitions=1)
    fill_topic(kafka.bootstrap_servers, topic, 300, seed=9, partitions=1)
    artifacts = Artifacts(tmp_path).prepare()
    save_tiny_model(artifacts.keras_model)
    spec = job_spec(kafka.bootstrap_servers, tmp_path,
                    evaluate={"topic": topic, "consumerGroup": topic,
                              "streamTimeoutMs": 4000})
    late = threading.Timer(1.5, fill_topic,
                           (kafka.bootstrap_servers, topic, 200, 10, 1))
    late.start()

    report = run_evaluate("late", spec, KafkaConnection(kafka.bootstrap_servers), artifacts,
                          progress=False)
    late.join()

    assert report.ok and report.metrics.records_evaluated == 500


def test_an_evaluation_that_follows_its_topic_stops_when_asked(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    import threading

    topic = kafka.create_topic("eval-follow", partitions=2)
    fill_topic(kafka.bootstrap_servers, topic, 400, seed=12, partitions=2)
    artifacts = Artifacts(tmp_path).prepare()
    save_tiny_model(artifacts.keras_model)
    spec = job_spec(kafka.bootstrap_servers, tmp_path,
                    evaluate={"topic": topic, "consumerGroup": topic, "streamTimeoutMs": -1})
    stop = threading.Event()
    threading.Timer(3.0, stop.set).start()

    report = run_evaluate("follow", spec, KafkaConnection(kafka.bootstrap_servers), artifacts,
                          progress=False, stop_event=stop)

    assert report.ok and report.metrics.records_evaluated == 400
    assert {p: c for (t, p), c in kafka.committed(topic).items() if t == topic} == \
        kafka.end_offsets(topic)
