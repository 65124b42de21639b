"""`streamtrain produce` then `streamtrain run`: the commands a user types, on the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import KafkaHandle


def streamtrain(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workload.cli", *arguments], capture_output=True,
                          text=True, timeout=300, check=False)


def test_produce_then_run_a_job_file_reports_every_phase(kafka: KafkaHandle, tmp_path: Path) -> None:
    train_topic, test_topic = kafka.create_topic("cli-train", 1), kafka.create_topic("cli-test", 2)
    produced = streamtrain("produce", "--bootstrap-servers", kafka.bootstrap_servers,
                           "--rows", "3000", "--train-topic", train_topic,
                           "--test-topic", test_topic, "--quiet")
    assert produced.returncode == 0, produced.stderr
    assert "wrote 3000 records (1800 to" in produced.stdout

    job = tmp_path / "job.yaml"
    job.write_text(f"""\
apiVersion: streamtrain.dev/v1alpha1
kind: StreamingTrainingJob
metadata: {{name: cli}}
spec:
  kafka: {{bootstrapServers: "{kafka.bootstrap_servers}"}}
  train: {{topic: {train_topic}, epochs: 2}}
  evaluate: {{topic: {test_topic}, consumerGroup: cli-eval, streamTimeoutMs: 0}}
  model:
    layers: [{{dense: 16}}]
    output: {{path: {tmp_path / "model"}}}
""")
    results = tmp_path / "results.json"
    run = streamtrain("run", str(job), "--output", str(results), "--quiet")

    assert run.returncode == 0, run.stderr[-3000:]
    assert "streamtrain results" in run.stdout and "evaluate" in run.stdout
    document = json.loads(results.read_text())
    assert document["ok"] is True
    assert [phase["mode"] for phase in document["phases"]] == ["train", "evaluate"]
    assert document["phases"][1]["metrics"]["recordsEvaluated"] == 1200
    assert (tmp_path / "model" / "model.keras").exists()
