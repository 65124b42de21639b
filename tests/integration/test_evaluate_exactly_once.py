"""Exactly-once evaluation: SIGKILLed at random points and restarted, every record counts once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import KafkaHandle
from tests.integration.modes_support import fill_topic, job_spec, save_tiny_model
from workload.artifacts import Artifacts
from workload.kafka.connection import KafkaConnection
from workload.modes.evaluate import run_evaluate
from workload.modes.ledger import Ledger
from workload.spec import dump_spec

CHILD = Path(__file__).with_name("evaluate_child.py")
ROWS = 20_000
CHUNK = 1_000
KILLS = 4


def ledger_progress(path: Path) -> int:
    """Records the ledger covers (0 when there is none yet)."""
    ledger = Ledger.load(path)
    return sum(ledger.next_offsets.values()) if ledger else 0


def run_until_killed(command: list[str], ledger: Path, rng: random.Random) -> int:
    """Start the evaluator, let it save a random number of chunks, SIGKILL it mid-chunk."""
    before = ledger_progress(ledger)
    target = before + rng.randint(1, 2) * CHUNK
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while ledger_progress(ledger) < target and child.poll() is None:
        assert time.monotonic() < deadline, "the evaluator made no progress"
        time.sleep(0.002)
    # Inside the next chunk, or between save and commit (briefly: a chunk is scored in
    # milliseconds, and a late kill could find the evaluator already finished).
    time.sleep(rng.uniform(0.0, 0.01))
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    return child.returncode


def test_evaluator_counts_each_record_once_after_kills(kafka: KafkaHandle,
                                                       tmp_path: Path) -> None:
    topic = kafka.create_topic("once", partitions=2)
    fill_topic(kafka.bootstrap_servers, topic, ROWS, seed=11, partitions=2)
    artifacts = Artifacts(tmp_path / "out").prepare()
    save_tiny_model(artifacts.keras_model)
    rng = random.Random(20261125)

    calm = job_spec(kafka.bootstrap_servers, artifacts.root,
                    evaluate={"topic": topic, "consumerGroup": f"{topic}-calm",
                              "streamTimeoutMs": 0})
    reference = run_evaluate("calm", calm, KafkaConnection(kafka.bootstrap_servers), artifacts,
                             progress=False, chunk_records=CHUNK)
    assert reference.ok, reference.message

    group = f"{topic}-killed"
    spec = job_spec(kafka.bootstrap_servers, artifacts.root,
                    evaluate={"topic": topic, "consumerGroup": group, "streamTimeoutMs": 0})
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(dump_spec(spec)))
    command = [sys.executable, str(CHILD), str(spec_file), str(artifacts.root), str(CHUNK)]
    ledger = artifacts.ledger(group)
    killed_at = []
    for _ in range(KILLS):
        code = run_until_killed(command, ledger, rng)
        killed_at.append(ledger_progress(ledger))
        assert code == -signal.SIGKILL, "the evaluator finished before it could be killed"
    assert killed_at[-1] < ROWS, f"every kill came after the last chunk: {killed_at}"

    finished = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert finished.returncode == 0, finished.stderr[-2000:]

    figures = json.loads(artifacts.results("evaluate").read_text())
    ends = kafka.end_offsets(topic)
    assert figures["metrics"]["recordsEvaluated"] == sum(ends.values()) == ROWS
    assert sum(figures["figures"]["confusionMatrix"].values()) == ROWS
    assert {p: c for (t, p), c in kafka.committed(group).items() if t == topic} == ends
    expected = reference.metrics
    assert figures["metrics"]["evalAccuracy"] == expected.eval_accuracy
    assert figures["metrics"]["evalAuc"] == expected.eval_auc
    assert figures["metrics"]["evalLoss"] == pytest.approx(expected.eval_loss, rel=1e-9)
