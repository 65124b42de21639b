"""Online mode on the real broker: test-then-train accuracy, exports, timeouts, SIGTERM, memory."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import KafkaHandle
from tests.integration.modes_support import fill_topic, job_spec, save_tiny_model
from workload.artifacts import Artifacts
from workload.kafka.connection import KafkaConnection
from workload.modes.online import run_online
from workload.spec import dump_spec

CHILD = Path(__file__).with_name("online_child.py")


def test_online_learns_test_then_train_exports_and_ends_on_stream_timeout(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    topic = kafka.create_topic("online", partitions=1)
    fill_topic(kafka.bootstrap_servers, topic, 3000, seed=21, partitions=1)
    artifacts = Artifacts(tmp_path).prepare()
    save_tiny_model(artifacts.keras_model)
    spec = job_spec(kafka.bootstrap_servers, tmp_path,
                    online={"topic": topic, "consumerGroup": topic, "streamTimeoutMs": 2000,
                            "batchSize": 64, "exportEveryRecords": 1000})

    started = time.monotonic()
    report = run_online("online", spec, KafkaConnection(kafka.bootstrap_servers), artifacts,
                        progress=False)

    assert report.ok, report.message
    assert report.metrics.records_online == 3000
    assert report.metrics.online_accuracy is not None
    assert 0.5 < report.metrics.online_accuracy <= 1.0  # learns: better than chance
    assert time.monotonic() - started < 60  # the stream timeout ended it
    state = json.loads((artifacts.online / "state.json").read_text())
    assert state["final"] and state["exports"] == 3  # at 1024 and 2048 records, then the final
    assert state["startedFrom"] == str(artifacts.keras_model)
    assert (artifacts.online / "model.keras").is_file()
    assert (artifacts.online / "saved_model" / "saved_model.pb").is_file()
    results = json.loads(artifacts.results("online").read_text())
    assert results["metrics"]["recordsOnline"] == 3000


def test_online_without_a_trained_model_starts_fresh_and_skips_bad_records(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    topic = kafka.create_topic("online-fresh", partitions=1)
    _, _, made = fill_topic(kafka.bootstrap_servers, topic, 1000, seed=22, partitions=1,
                            bad_fraction=0.02)
    artifacts = Artifacts(tmp_path).prepare()
    spec = job_spec(kafka.bootstrap_servers, tmp_path,
                    online={"topic": topic, "consumerGroup": topic, "streamTimeoutMs": 1000})

    report = run_online("fresh", spec, KafkaConnection(kafka.bootstrap_servers), artifacts,
                        progress=False)

    assert report.ok, report.message
    expected = {reason: count for reason, count in made.items() if count}
    assert report.metrics.bad_records_by_reason == expected
    assert report.metrics.records_online == 1000 - sum(expected.values())
    state = json.loads((artifacts.online / "state.json").read_text())
    assert state["startedFrom"] == "fresh"


def test_sigterm_finishes_with_a_final_export_and_memory_stays_flat(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    topic = kafka.create_topic("online-term", partitions=1)
    rows = 24_000
    fill_topic(kafka.bootstrap_servers, topic, rows, seed=23, partitions=1)
    artifacts = Artifacts(tmp_path / "out").prepare()
    save_tiny_model(artifacts.keras_model)
    spec = job_spec(kafka.bootstrap_servers, artifacts.root,
                    online={"topic": topic, "consumerGroup": topic, "streamTimeoutMs": -1,
                            "batchSize": 128, "exportEveryRecords": 3000,
                            "exportEverySeconds": 0})
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(dump_spec(spec)))
    child = subprocess.Popen([sys.executable, str(CHILD), str(spec_file), str(artifacts.root)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    state_file = artifacts.online / "state.json"
    memory: dict[int, int] = {}
    deadline = time.monotonic() + 120
    try:
        while not memory or max(memory) < rows - 3000:
            assert child.poll() is None, "the online learner stopped before being told"
            assert time.monotonic() < deadline, f"too slow: {memory}"
            if state_file.exists():
                state = json.loads(state_file.read_text())
                memory[state["recordsOnline"]] = state["residentMemoryBytes"]
            time.sleep(0.02)
        child.send_signal(signal.SIGTERM)  # a stream of -1 never ends by itself
        output, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()

    assert child.returncode == 0, output
    state = json.loads(state_file.read_text())
    assert state["final"] and max(memory) <= state["recordsOnline"] <= rows
    assert (artifacts.online / "saved_model" / "saved_model.pb").is_file()
    # Memory after the second half of the stream is about what it was after the first half.
    half = min(memory, key=lambda records: abs(records - rows // 2))
    growth = memory[max(memory)] - memory[half]
    assert growth < 40 * 2**20, f"resident memory grew {growth / 2**20:.0f} MiB: {memory}"


def test_a_stopped_learner_has_committed_only_records_it_learned(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    """Stop after a few batches: every offset the group committed was learned (tf.data must not
    read ahead, or the records it read ahead would be committed and lost to a successor)."""
    topic = kafka.create_topic("online-stop", partitions=2)
    _, messages, _ = fill_topic(kafka.bootstrap_servers, topic, 20_000, seed=23, partitions=2)
    where = {message.value: (index % 2, index // 2) for index, message in enumerate(messages)}
    spec = job_spec(kafka.bootstrap_servers, tmp_path,
                    online={"topic": topic, "consumerGroup": topic, "streamTimeoutMs": 3000,
                            "batchSize": 256, "exportEveryRecords": 0})
    stop = threading.Event()
    learned: dict[int, set[int]] = {0: set(), 1: set()}

    def stop_after_some(keys: list[bytes], values: list[bytes]) -> None:
        for value in values:
            partition, offset = where[value]
            learned[partition].add(offset)
        stop.set()

    report = run_online("stopped", spec, KafkaConnection(kafka.bootstrap_servers),
                        Artifacts(tmp_path), progress=False, stop_event=stop,
                        on_batch=stop_after_some)
    assert report.ok and report.metrics.records_online == sum(map(len, learned.values()))
    assert report.metrics.records_online < 20_000
    time.sleep(6)  # librdkafka's auto-commit interval (5 s): all it has stored is committed now
    committed = {partition: offset for (_, partition), offset in kafka.committed(topic).items()}
    assert sum(max(offset, 0) for offset in committed.values()) > 0
    for partition, offset in committed.items():
        assert set(range(max(offset, 0))) <= learned[partition], (partition, offset)
