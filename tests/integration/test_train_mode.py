"""Train mode end to end on the real broker: outputs, resume after a stop, bad records."""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from kafka import KafkaConsumer  # noqa: E402

from tests.conftest import KafkaHandle  # noqa: E402
from workload import runner  # noqa: E402
from workload.artifacts import Artifacts  # noqa: E402
from workload.datagen.records import corrupt, encode  # noqa: E402
from workload.datagen.synthetic import generate  # noqa: E402
from workload.kafka.admin import TopicMissing, ensure_topic  # noqa: E402
from workload.kafka.connection import KafkaConnection  # noqa: E402
from workload.kafka.dead_letter import REASON_HEADER  # noqa: E402
from workload.kafka.producer import produce_messages  # noqa: E402
from workload.modes.train import run_train  # noqa: E402
from workload.runner import check_topic, run_mode  # noqa: E402
from workload.spec import KafkaSpec, StreamingTrainingJobSpec  # noqa: E402

ROWS = 2000


def job(kafka: KafkaHandle, topic: str, epochs: int, train: dict[str, Any] | None = None,
        **data: Any) -> StreamingTrainingJobSpec:
    """A small training job: the tutorial's layout and model, a few epochs, no evaluation, no
    validation slice unless `train` asks (so every record is trained on)."""
    return StreamingTrainingJobSpec.model_validate({
        "kafka": {"bootstrapServers": kafka.bootstrap_servers},
        "data": data,
        "train": {"topic": topic, "epochs": epochs, "batchSize": 64, "shuffleBuffer": 256,
                  "validationFraction": 0.0, **(train or {})},
        "evaluate": None,
        "model": {"layers": [{"dense": 32}, {"dropout": 0.1}, {"dense": 16}]},
    })


@pytest.fixture(scope="module")
def clean_topic(kafka: KafkaHandle) -> str:
    """2,000 synthetic SUSY rows over two partitions, 1% of them malformed."""
    topic = kafka.create_topic("train", partitions=2)
    messages, _ = corrupt(encode(generate(ROWS, seed=3)), 0.01, seed=4)
    produce_messages(KafkaConnection(kafka.bootstrap_servers), topic, messages, partitions=2)
    return topic


def test_training_reads_every_partition_and_leaves_all_outputs(
        kafka: KafkaHandle, clean_topic: str, tmp_path: Path) -> None:
    artifacts = Artifacts(tmp_path)
    report = run_train("susy", job(kafka, clean_topic, epochs=2),
                       KafkaConnection(kafka.bootstrap_servers), artifacts, progress=False)
    assert report.ok, report.message
    assert report.metrics.bad_records == 20
    assert sum((report.metrics.bad_records_by_reason or {}).values()) == 20
    assert report.metrics.records_trained == ROWS - 20
    assert report.epoch == 2 and report.metrics.train_accuracy is not None
    assert report.metrics.train_accuracy > 0.6
    assert report.records_per_second and report.records_per_second > 0
    assert report.model_uri == str(artifacts.keras_model)
    assert keras.models.load_model(artifacts.keras_model).input_shape == (None, 18)
    assert (artifacts.saved_model / "saved_model.pb").exists()
    assert artifacts.training_curve.read_bytes().startswith(b"\x89PNG")
    assert any(artifacts.tensorboard.rglob("*tfevents*"))
    results = json.loads(artifacts.results("train").read_text())
    assert results["offsets"] == {"0": [0, ROWS // 2], "1": [0, ROWS // 2]}
    assert len(results["history"]["loss"]) == 2
    state = json.loads((artifacts.checkpoints / "state.json").read_text())
    assert state["epochsDone"] == 2


def test_a_restarted_trainer_resumes_at_the_next_epoch(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    artifacts = Artifacts(tmp_path)
    topic = kafka.create_topic("resume", partitions=2)
    produce_messages(connection, topic, encode(generate(500, seed=7)), partitions=2)
    first = run_train("susy", job(kafka, topic, epochs=2), connection, artifacts,
                      progress=False)
    assert first.ok and first.epoch == 2
    # A pod of the same job that cannot reach its brokers fails fast, checkpoint or not, and
    # leaves the checkpoint as it was.
    saved = (artifacts.checkpoints / "state.json").read_text()
    with socket.create_server(("127.0.0.1", 0)) as server:  # a port nothing listens on after
        servers = f"127.0.0.1:{server.getsockname()[1]}"
    unreachable = job(kafka, topic, epochs=3).model_copy(
        update={"kafka": KafkaSpec.model_validate({"bootstrapServers": servers})})
    started = time.monotonic()
    refused = run_mode("train", "susy", unreachable, KafkaConnection(servers), artifacts,
                       progress=False)
    assert time.monotonic() - started < 60
    assert not refused.ok and refused.reason == "KafkaUnreachable"
    assert f"cannot reach Kafka at {servers}" in refused.message
    assert (artifacts.checkpoints / "state.json").read_text() == saved
    # More records arrive; the resumed run must keep training on the offsets of its checkpoint.
    kafka_producer = kafka.producer()
    kafka_producer.send(topic, key=b"1", value=b",".join([b"1.0"] * 18), partition=0)
    kafka_producer.flush()
    second = run_train("susy", job(kafka, topic, epochs=3), connection, artifacts,
                       progress=False)
    results = json.loads(artifacts.results("train").read_text())
    assert second.ok and second.epoch == 3
    assert results["resumedAtEpoch"] == 2 and results["epochsRun"] == 1
    assert len(results["history"]["loss"]) == 3
    assert results["offsets"] == {"0": [0, 250], "1": [0, 250]}
    assert second.metrics.records_trained == first.metrics.records_trained == 500


def test_too_many_bad_records_fail_the_run_and_go_to_the_dead_letter_topic(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    topic = kafka.create_topic("dirty", partitions=1)
    dead = f"{topic}-dead"
    messages, made = corrupt(encode(generate(200, seed=5)), 0.2, seed=6)
    produce_messages(connection, topic, messages, partitions=1)
    report = run_train("susy", job(kafka, topic, epochs=1, deadLetterTopic=dead,
                                   maxBadRecordsRatio=0.05),
                       connection, Artifacts(tmp_path), progress=False)
    assert not report.ok and report.reason == "TooManyBadRecords"  # exits 7: not retried
    assert "40 of 200 records" in report.message and "maxBadRecordsRatio" in report.message
    for reason, count in made.items():
        assert f"{reason}: {count}" in report.message
    consumer = KafkaConsumer(dead, bootstrap_servers=kafka.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=2000)
    reasons = [dict(record.headers)[REASON_HEADER].decode() for record in consumer]
    consumer.close()
    assert sorted(reasons) == sorted(r for r, n in made.items() for _ in range(n))
    assert json.loads(Artifacts(tmp_path).results("train").read_text())["report"]["ok"] is False


def test_an_empty_topic_fails_with_a_clear_message(kafka: KafkaHandle, tmp_path: Path) -> None:
    topic = kafka.create_topic("nothing", partitions=2)
    report = run_train("susy", job(kafka, topic, epochs=1),
                       KafkaConnection(kafka.bootstrap_servers), Artifacts(tmp_path),
                       progress=False)
    assert not report.ok and "no records" in report.message
    assert report.reason is None  # records may still arrive: the Job retries


@pytest.mark.parametrize("mode", ["train", "evaluate", "online"])
def test_a_missing_topic_fails_each_mode_with_topic_not_found_naming_the_field(
        kafka: KafkaHandle, tmp_path: Path, mode: str) -> None:
    spec = StreamingTrainingJobSpec.model_validate({
        "kafka": {"bootstrapServers": kafka.bootstrap_servers}, mode: {"topic": "never-made"}})
    report = run_mode(mode, "susy", spec, KafkaConnection(kafka.bootstrap_servers),
                      Artifacts(tmp_path), progress=False)
    assert not report.ok and report.reason == "TopicNotFound"
    assert report.message == (f"topic 'never-made' (spec.{mode}.topic) does not exist on "
                              f"{kafka.bootstrap_servers}: create it, or name a topic that exists")


def test_a_topic_the_job_declares_as_a_kafka_topic_is_waited_for_a_while(
        kafka: KafkaHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    topic = f"late-{os.getpid()}-{time.monotonic_ns()}"
    managed = StreamingTrainingJobSpec.model_validate({
        "kafka": {"bootstrapServers": kafka.bootstrap_servers, "manageTopics": True},
        "train": {"topic": topic}})
    creator = threading.Timer(2.0, lambda: ensure_topic(connection, topic, 1))
    creator.start()
    try:
        check_topic(managed, "train", connection, poll_s=0.2)  # returns once it exists
    finally:
        creator.join()
    monkeypatch.setattr(runner, "MANAGED_TOPIC_WAIT_S", 1.0)
    missing = managed.model_copy(update={"train": managed.train.model_copy(  # type: ignore[union-attr]
        update={"topic": "never-declared"})})
    with pytest.raises(TopicMissing, match="after waiting 1 s for its KafkaTopic"):
        check_topic(missing, "train", connection, poll_s=0.2)


def test_training_without_cache_reads_kafka_each_epoch(
        kafka: KafkaHandle, clean_topic: str, tmp_path: Path) -> None:
    spec = job(kafka, clean_topic, epochs=2)
    assert spec.train is not None
    spec = spec.model_copy(update={"train": spec.train.model_copy(update={"cache": False})})
    report = run_train("susy", spec, KafkaConnection(kafka.bootstrap_servers),
                       Artifacts(tmp_path), progress=False)
    assert report.ok, report.message
    assert report.metrics.records_trained == ROWS - 20 and report.epoch == 2
    history = json.loads(Artifacts(tmp_path).results("train").read_text())["history"]
    assert len(history["loss"]) == 2


class _SigtermAt(keras.callbacks.Callback):  # type: ignore[misc]
    """Sends this process SIGTERM after batch `batch` of epoch `epoch` (as a pod's stop does)."""

    def __init__(self, epoch: int, batch: int) -> None:
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, -1

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.current = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        if (self.current, batch) == (self.epoch, self.batch):
            os.kill(os.getpid(), signal.SIGTERM)


def _weights(artifacts: Artifacts) -> list[Any]:
    return list(keras.models.load_model(artifacts.keras_model).get_weights())


def test_a_trainer_stopped_mid_epoch_resumes_at_the_next_batch_and_ends_as_if_never_stopped(
        kafka: KafkaHandle, clean_topic: str, tmp_path: Path) -> None:
    spec = StreamingTrainingJobSpec.model_validate({
        "kafka": {"bootstrapServers": kafka.bootstrap_servers},
        "train": {"topic": clean_topic, "epochs": 2, "batchSize": 64, "shuffleBuffer": 256,
                  "checkpointEverySeconds": 3600},
        "model": {"layers": [{"dense": 16}]},
    })
    connection = KafkaConnection(kafka.bootstrap_servers)
    calm, stopped = Artifacts(tmp_path / "calm"), Artifacts(tmp_path / "stopped")
    keras.utils.set_random_seed(11)
    assert run_train("calm", spec, connection, calm, progress=False).ok
    keras.utils.set_random_seed(11)
    first = run_train("stopped", spec, connection, stopped, progress=False,
                      callbacks=[_SigtermAt(epoch=1, batch=9)])
    assert not first.ok and "stopped (SIGTERM) in epoch 2 after batch 10" in first.message
    state = json.loads((stopped.checkpoints / "state.json").read_text())
    assert (state["epochsDone"], state["batchesDone"]) == (1, 10)
    assert not stopped.keras_model.exists()

    second = run_train("stopped", spec, connection, stopped, progress=False)
    results = json.loads(stopped.results("train").read_text())
    assert second.ok and second.epoch == 2
    assert (results["resumedAtEpoch"], results["resumedAtBatch"]) == (1, 10)
    # Same order, same optimizer state, no batch twice: the same model as without the stop.
    for resumed, uninterrupted in zip(_weights(stopped), _weights(calm), strict=True):
        np.testing.assert_allclose(resumed, uninterrupted, rtol=1e-5, atol=1e-6)


def test_a_checkpoint_of_another_job_or_model_is_ignored_and_training_starts_over(
        kafka: KafkaHandle, clean_topic: str, tmp_path: Path) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    artifacts = Artifacts(tmp_path)
    first = run_train("a", job(kafka, clean_topic, epochs=2), connection, artifacts,
                      progress=False, job_uid="uid-a")
    assert first.ok and first.resume_ignored is None

    # Another job finds a's checkpoint in its folder: it trains its own single epoch.
    other = run_train("b", job(kafka, clean_topic, epochs=1), connection, artifacts,
                      progress=False, job_uid="uid-b")
    results = json.loads(artifacts.results("train").read_text())
    assert other.ok and other.epoch == 1
    assert (results["resumedAtEpoch"], results["epochsRun"]) == (0, 1)
    assert len(results["history"]["loss"]) == 1
    assert other.metrics.train_loss != first.metrics.train_loss
    assert "belongs to job uid uid-a, this job is uid-b" in str(other.resume_ignored)
    assert results["resumeIgnored"] == other.resume_ignored

    # The same job with other layers: its checkpoint does not fit, so it is not resumed.
    wider = job(kafka, clean_topic, epochs=2).model_dump(by_alias=True)
    wider["model"]["layers"] = [{"dense": 64}]
    report = run_train("b", StreamingTrainingJobSpec.model_validate(wider), connection,
                       artifacts, progress=False, job_uid="uid-b")
    results = json.loads(artifacts.results("train").read_text())
    assert report.ok and (results["resumedAtEpoch"], results["epochsRun"]) == (0, 2)
    assert "other data, train or model settings" in str(report.resume_ignored)
    state = json.loads((artifacts.checkpoints / "state.json").read_text())
    assert (state["jobUid"], state["epochsDone"]) == ("uid-b", 2)


def test_a_validation_tail_is_held_out_and_early_stopping_exports_the_best_epoch(
        kafka: KafkaHandle, clean_topic: str, tmp_path: Path) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    artifacts = Artifacts(tmp_path)
    # No epoch after the first can be better by 10: training stops after epoch 1 + patience.
    spec = job(kafka, clean_topic, epochs=6, train={
        "validationFraction": 0.2, "learningRateSchedule": "cosine",
        "earlyStopping": {"patience": 2, "minDelta": 10.0}})
    report = run_train("susy", spec, connection, artifacts, progress=False)

    results = json.loads(artifacts.results("train").read_text())
    assert report.ok, report.message
    assert results["validationOffsets"] == {"0": [800, 1000], "1": [800, 1000]}
    assert report.metrics.records_trained is not None
    assert 1600 - 20 <= report.metrics.records_trained < 1600  # the held-out 400 are not
    history = results["history"]
    assert len(history["loss"]) == len(history["val_loss"]) == len(history["val_accuracy"]) == 3
    assert (results["stoppedEarly"], results["bestEpoch"], results["exportedEpoch"]) == (
        True, 1, 1)
    assert report.epoch == 3
    assert report.metrics.validation_loss == history["val_loss"][0]
    assert report.metrics.train_loss == history["loss"][0]
    assert any((artifacts.tensorboard / "validation").rglob("*tfevents*"))
    # The exported model holds the best epoch's weights, not the last one's.
    state = json.loads((artifacts.checkpoints / "state.json").read_text())
    assert state["bestWeightsFile"] == "best-00001.npz"
    exported = keras.models.load_model(artifacts.keras_model).weights
    with np.load(artifacts.checkpoints / "best-00001.npz") as best, np.load(
            artifacts.checkpoints / state["weightsFile"]) as last:
        for variable in exported:
            np.testing.assert_array_equal(variable.numpy(), best[f"model:{variable.path}"])
        assert any(not np.array_equal(variable.numpy(), last[f"model:{variable.path}"])
                   for variable in exported)

    # A restart finds training finished early and exports the same epoch again.
    again = run_train("susy", spec, connection, artifacts, progress=False)
    results = json.loads(artifacts.results("train").read_text())
    assert again.ok and results["epochsRun"] == 0 and results["exportedEpoch"] == 1
    assert again.metrics.validation_loss == report.metrics.validation_loss
