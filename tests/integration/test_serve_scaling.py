"""Serving scaled 1 -> 3 -> 1 replicas mid-stream answers each record exactly once."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.conftest import KafkaHandle
from tests.faults import processes
from tests.faults.serve_faults import SERVE_CHILD, SESSION_SETTINGS, committed_or_none
from tests.integration.modes_support import save_tiny_model
from tests.integration.serve_support import (
    answered_twice,
    produce_with_headers,
    read_predictions,
    serve_spec,
)
from workload.artifacts import Artifacts
from workload.datagen.records import encode
from workload.datagen.synthetic import generate
from workload.kafka.bounds import end_offsets
from workload.kafka.connection import KafkaConnection
from workload.status import PodReport

PARTITIONS = 4
STEP = 6000
"""Records written before each scaling step."""


def _written(bootstrap: str, topic: str) -> int:
    try:
        return sum(end_offsets(KafkaConnection(bootstrap), topic).values())
    except LookupError:
        return 0


def _members_with_partitions(bootstrap: str, group: str) -> int:
    """Members of the consumer group that hold partitions now."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except Exception:  # no such group yet
        return 0
    return sum(1 for member in description.members
               if member.assignment and member.assignment.topic_partitions)


def _report(log: Path) -> PodReport | None:
    lines = [line for line in log.read_text().splitlines() if line.startswith("{\"mode\"")]
    return PodReport.model_validate(json.loads(lines[-1])) if lines else None


def test_serving_scaled_from_one_to_three_replicas_and_back_answers_each_record_once(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    bootstrap = kafka.bootstrap_servers
    source = kafka.create_topic("serve-scale", partitions=PARTITIONS)
    output, group = f"{source}-out", f"{source}-serve"
    data = generate(3 * STEP, seed=43)
    messages = list(encode(data))
    artifacts = Artifacts(tmp_path / "out").prepare()
    save_tiny_model(artifacts.keras_model, data=data)
    spec = serve_spec(bootstrap, artifacts.root, source, output, consumerGroup=group,
                      streamTimeoutMs=-1, batchSize=300, maxLatencyMs=100,
                      kafka={"bootstrapServers": bootstrap, "config": SESSION_SETTINGS})
    spec_path = processes.spec_file(spec, tmp_path / "spec.json")
    logs = {replica: tmp_path / f"serve-{replica}.log" for replica in "012"}

    def start(replica: str) -> object:
        return processes.start(processes.command(SERVE_CHILD, spec_path, artifacts.root, replica),
                               logs[replica])

    def wait_until(condition: object, what: str, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    produce_with_headers(bootstrap, source, messages[:STEP], PARTITIONS)
    replicas = {"0": start("0")}
    try:
        wait_until(lambda: _written(bootstrap, output) >= STEP // 3, "replica 0 to serve")
        replicas |= {replica: start(replica) for replica in "12"}  # scale to 3
        wait_until(lambda: _members_with_partitions(bootstrap, group) == 3,
                   "three replicas to share the partitions")
        produce_with_headers(bootstrap, source, messages[STEP:2 * STEP], PARTITIONS, start=STEP)
        written = _written(bootstrap, output)
        wait_until(lambda: _written(bootstrap, output) >= written + STEP // 2,
                   "three replicas to serve")
        for replica in "12":  # scale back to 1: Kubernetes stops the pods with SIGTERM
            replicas[replica].send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
        codes = {replica: replicas[replica].wait(120) for replica in "12"}  # type: ignore[attr-defined]
        produce_with_headers(bootstrap, source, messages[2 * STEP:], PARTITIONS, start=2 * STEP)
        ends = end_offsets(KafkaConnection(bootstrap), source)
        wait_until(lambda: (committed_or_none(bootstrap, group, source) or {}) == ends,
                   "the input's end to be committed")
        replicas["0"].send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
        codes["0"] = replicas["0"].wait(120)  # type: ignore[attr-defined]
    finally:
        for child in replicas.values():
            if child.poll() is None:  # type: ignore[attr-defined]
                processes.sigkill(child)  # type: ignore[arg-type]

    assert codes == {"0": 0, "1": 0, "2": 0}, codes
    reports = {replica: _report(log) for replica, log in logs.items()}
    served = {replica: report.metrics.records_served if report else None
              for replica, report in reports.items()}
    assert all(served.values()), f"every replica served records: {served}"
    predictions = read_predictions(bootstrap, output)
    assert len(predictions) == 3 * STEP and not answered_twice(predictions)
    assert sum(count or 0 for count in served.values()) == 3 * STEP
    assert {p.source for p in predictions} == {
        (i % PARTITIONS, i // PARTITIONS) for i in range(3 * STEP)}
