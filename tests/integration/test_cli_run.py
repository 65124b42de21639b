"""`streamtrain produce` then `streamtrain run`: the commands a user types, on the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.conftest import KafkaHandle
from workload.contract import PROGRESS_TOKEN_ENV, PROGRESS_URL_ENV

USER_SETTINGS = {".keras", ".cache", ".config"}
"""What TensorFlow's and matplotlib's own start-up may leave in a home folder (settings, font
cache): never an artefact of the run."""


def streamtrain(*arguments: str, cwd: Path | None = None, home: Path | None = None,
                extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"HOME": str(home)} if home is not None else {}),
           **(extra_env or {})} if home is not None or extra_env else None
    return subprocess.run([sys.executable, "-m", "workload.cli", *arguments], capture_output=True,
                          text=True, timeout=300, check=False, cwd=cwd, env=env)


@contextmanager
def progress_sink(folder: Path) -> Iterator[tuple[dict[str, str], list[dict[str, Any]]]]:
    """A local stand-in for the operator's progress endpoint: the environment that points pods
    at it, and the reports it received."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token = folder / "token"
    token.write_text("local")
    try:
        yield ({PROGRESS_URL_ENV: f"http://127.0.0.1:{server.server_port}/progress",
                PROGRESS_TOKEN_ENV: str(token)}, received)
    finally:
        server.shutdown()
        server.server_close()


def _files(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


def test_a_local_run_writes_every_artefact_under_its_output_folder_only(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    train_topic, test_topic = kafka.create_topic("cli-train", 1), kafka.create_topic("cli-test", 2)
    produced = streamtrain("produce", "--bootstrap-servers", kafka.bootstrap_servers,
                           "--rows", "3000", "--train-topic", train_topic,
                           "--test-topic", test_topic, "--quiet")
    assert produced.returncode == 0, produced.stderr
    assert "wrote 3000 records (1800 to" in produced.stdout

    # A manifest written for a cluster: its output path is a pod's volume mount.
    pod_path = Path("/models") / f"streamtrain-test-{uuid.uuid4().hex[:8]}"
    job = tmp_path / "job.yaml"
    job.write_text(f"""\
apiVersion: streamtrain.dev/v1alpha1
kind: StreamingTrainingJob
metadata: {{name: cli}}
spec:
  kafka: {{bootstrapServers: "{kafka.bootstrap_servers}"}}
  train: {{topic: {train_topic}, epochs: 2}}
  evaluate: {{topic: {test_topic}, consumerGroup: cli-eval-{uuid.uuid4().hex[:8]}, \
streamTimeoutMs: 0}}
  model:
    layers: [{{dense: 16}}]
    output: {{path: {pod_path}, volumeClaim: models}}
""")
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    run = streamtrain("run", str(job), "--quiet", cwd=work, home=home)

    assert run.returncode == 0, run.stderr[-3000:]
    assert "streamtrain results" in run.stdout and "evaluate" in run.stdout
    output = work / "streamtrain-output" / "cli"
    document = json.loads((output / "results.json").read_text())
    assert document["ok"] is True and document["outputDir"] == str(output)
    assert [phase["mode"] for phase in document["phases"]] == ["train", "evaluate"]
    assert document["phases"][1]["metrics"]["recordsEvaluated"] == 1200
    assert document["phases"][0]["modelUri"] == str(output / "model.keras")
    for artefact in ("model.keras", "saved_model/saved_model.pb", "checkpoints/state.json",
                     "evaluate", "training_curve.png", "results-train.json",
                     "results-evaluate.json"):
        assert (output / artefact).exists(), artefact
    assert any((output / "tensorboard").rglob("*tfevents*"))
    assert f"artefacts in {output}:" in run.stdout
    for what in ("model (Keras)", "checkpoints", "evaluation ledgers", "TensorBoard logs"):
        assert what in run.stdout

    assert not pod_path.exists()
    assert all(path.is_relative_to(output) for path in _files(work))
    assert {path.name for path in home.iterdir()} <= USER_SETTINGS
    assert not [path for path in _files(home)
                if path.suffix in (".keras", ".npz", ".png") or "tfevents" in path.name]


def test_a_local_run_with_replicas_runs_a_process_per_replica(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    train_topic, test_topic = kafka.create_topic("cli-train", 1), kafka.create_topic("cli-test", 2)
    produced = streamtrain("produce", "--bootstrap-servers", kafka.bootstrap_servers,
                           "--rows", "2000", "--train-topic", train_topic,
                           "--test-topic", test_topic, "--quiet")
    assert produced.returncode == 0, produced.stderr
    job = tmp_path / "job.yaml"
    job.write_text(f"""\
apiVersion: streamtrain.dev/v1alpha1
kind: StreamingTrainingJob
metadata: {{name: replicas}}
spec:
  kafka: {{bootstrapServers: "{kafka.bootstrap_servers}"}}
  train:
    topic: {train_topic}
    epochs: 3
    learningRateSchedule: cosine
    earlyStopping: {{patience: 1, minDelta: 1000}}   # no epoch beats the first: stop after 2
  evaluate: {{topic: {test_topic}, consumerGroup: cli-{uuid.uuid4().hex[:8]}, streamTimeoutMs: 0}}
  model: {{layers: [{{dense: 16}}]}}
  trainer: {{replicas: 2}}
  evaluator: {{replicas: 2}}
""")
    output = tmp_path / "out"
    with progress_sink(tmp_path) as (environment, posted):
        run = streamtrain("run", str(job), "--quiet", "--output-dir", str(output),
                          extra_env=environment)

    assert run.returncode == 0, run.stdout[-3000:]
    document = json.loads((output / "results.json").read_text())
    assert document["ok"] is True
    train, evaluate = document["phases"]
    # live progress: the chief posts the group's records (two epochs of both workers' 540)
    trained = [report for report in posted if report["mode"] == "train"]
    assert trained and trained[-1]["records"] == 2 * 1080, trained
    assert {report["recordsTotal"] for report in trained} == {3 * 1080}
    # evaluator 0 posts what both evaluators' ledgers cover, of the whole test topic
    evaluated = [report for report in posted if report["mode"] == "evaluate"]
    assert evaluated and evaluated[-1]["records"] == 800, evaluated
    assert {report["recordsTotal"] for report in evaluated} == {800}
    # the last 10 % of the partition validates (train.validationFraction), the rest is shared
    assert train["metrics"]["recordsTrained"] == 1080 and train["modelUri"]
    assert train["metrics"]["recordsValidated"] == 120
    assert evaluate["metrics"]["recordsEvaluated"] == 800
    trained = json.loads((output / "results-train.json").read_text())
    assert trained["shares"] == [{"0": [0, 540]}, {"0": [540, 1080]}]
    assert trained["validationOffsets"] == {"0": [1080, 1200]}
    # the chief stopped early after epoch 2 and worker 1 followed (else it would wait in
    # epoch 3 for its peer); the first epoch's weights are the model
    assert (trained["stoppedEarly"], trained["epochsRun"], trained["exportedEpoch"]) == (
        True, 2, 1)
    assert len(trained["history"]["val_loss"]) == 2
    assert train["metrics"]["validationLoss"] == trained["history"]["val_loss"][0]
    assert json.loads((output / "results-evaluate.json").read_text())["evaluators"] == 2
    assert sorted(path.name for path in (output / "logs").iterdir()) == [
        "evaluate-0.log", "evaluate-1.log", "train-0.log", "train-1.log"]
    assert any((output / "tensorboard").rglob("*tfevents*"))


def test_a_local_run_serves_the_trained_model_until_the_input_is_idle(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    from tests.integration.serve_support import answered_twice, read_predictions

    train_topic, test_topic = kafka.create_topic("cli-train", 1), kafka.create_topic("cli-test", 2)
    produced = streamtrain("produce", "--bootstrap-servers", kafka.bootstrap_servers,
                           "--rows", "2000", "--train-topic", train_topic,
                           "--test-topic", test_topic, "--quiet")
    assert produced.returncode == 0, produced.stderr
    predictions_topic = f"{test_topic}-predictions"
    job = tmp_path / "job.yaml"
    job.write_text(f"""\
apiVersion: streamtrain.dev/v1alpha1
kind: StreamingTrainingJob
metadata: {{name: served}}
spec:
  kafka: {{bootstrapServers: "{kafka.bootstrap_servers}"}}
  train: {{topic: {train_topic}, epochs: 1}}
  serve: {{inputTopic: {test_topic}, outputTopic: {predictions_topic}, replicas: 2, \
consumerGroup: cli-{uuid.uuid4().hex[:8]}, streamTimeoutMs: 3000}}
  model: {{layers: [{{dense: 16}}]}}
""")
    output = tmp_path / "out"
    run = streamtrain("run", str(job), "--quiet", "--output-dir", str(output))

    assert run.returncode == 0, run.stdout[-3000:]
    document = json.loads((output / "results.json").read_text())
    assert document["ok"] is True
    assert [phase["mode"] for phase in document["phases"]] == ["train", "serve"]
    assert document["phases"][1]["metrics"]["recordsServed"] == 800
    predictions = read_predictions(kafka.bootstrap_servers, predictions_topic)
    assert len(predictions) == 800 and not answered_twice(predictions)
    assert sorted(path.name for path in (output / "logs").iterdir()) == [
        "serve-0.log", "serve-1.log"]
    # the trainer exported a LiteRT scorer checked against Keras; serving scored with it
    trained = json.loads((output / "results-train.json").read_text())
    assert trained["litert"].startswith("max difference"), trained["litert"]
    assert (output / "model.tflite").is_file()
    assert json.loads((output / "results-serve.json").read_text())["runtime"] == "litert"


def test_a_local_run_serves_a_regression_model_as_values_in_the_labels_units(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    from tests.integration.serve_support import answered_twice, read_predictions

    train_topic, test_topic = kafka.create_topic("reg-train", 1), kafka.create_topic("reg-test", 2)
    produced = streamtrain("produce", "--bootstrap-servers", kafka.bootstrap_servers,
                           "--rows", "1500", "--train-topic", train_topic,
                           "--test-topic", test_topic, "--quiet")
    assert produced.returncode == 0, produced.stderr
    predictions_topic = f"{test_topic}-predictions"
    job = tmp_path / "job.yaml"
    job.write_text(f"""\
apiVersion: streamtrain.dev/v1alpha1
kind: StreamingTrainingJob
metadata: {{name: regressed}}
spec:
  kafka: {{bootstrapServers: "{kafka.bootstrap_servers}"}}
  train: {{topic: {train_topic}, epochs: 1}}
  serve: {{inputTopic: {test_topic}, outputTopic: {predictions_topic}, \
consumerGroup: cli-{uuid.uuid4().hex[:8]}, streamTimeoutMs: 3000}}
  model: {{task: regression, layers: [{{dense: 8}}]}}
""")
    output = tmp_path / "out"
    run = streamtrain("run", str(job), "--quiet", "--output-dir", str(output))

    assert run.returncode == 0, run.stdout[-3000:]
    predictions = read_predictions(kafka.bootstrap_servers, predictions_topic)
    assert len(predictions) == 600 and not answered_twice(predictions)
    values = [p.value["prediction"] for p in predictions]
    assert all(set(value) == {"value"} and isinstance(value["value"], float) for value in values)
    # the labels are 0 and 1: a model trained on them answers near that range, not in classes
    assert -1.0 < sum(value["value"] for value in values) / len(values) < 2.0


TEAM_MODULE = '''
import keras


def build(request):
    inputs = keras.Input(shape=request.input_shape)
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(request.outputs, activation="softmax")(hidden),
                       name="team_router")
'''


def test_streamtrain_run_imports_the_users_factory_from_the_current_folder(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    train_topic, test_topic = kafka.create_topic("cli-train", 1), kafka.create_topic("cli-test", 2)
    produced = streamtrain("produce", "--bootstrap-servers", kafka.bootstrap_servers,
                           "--family", "tickets", "--rows", "2000", "--train-topic", train_topic,
                           "--test-topic", test_topic, "--quiet")
    assert produced.returncode == 0, produced.stderr
    data = json.loads(produced.stdout.split("the job's data section: ", 1)[1])
    assert data["categorical"] == ["channel", "product", "account.country"]
    work = tmp_path / "work"
    work.mkdir()
    (work / "team_models.py").write_text(TEAM_MODULE)
    (work / "job.yaml").write_text(f"""\
apiVersion: streamtrain.dev/v1alpha1
kind: StreamingTrainingJob
metadata: {{name: tickets}}
spec:
  kafka: {{bootstrapServers: "{kafka.bootstrap_servers}"}}
  data: {json.dumps(data)}
  train: {{topic: {train_topic}, epochs: 2}}
  evaluate: {{topic: {test_topic}, consumerGroup: cli-{uuid.uuid4().hex[:8]}, streamTimeoutMs: 0}}
  model: {{task: multiclass, factory: "team_models:build"}}
""")
    # The console script, as a user types it (its own folder, not the current one, is first on
    # its Python path).
    script = Path(sys.executable).with_name("streamtrain")
    run = subprocess.run([str(script), "run", "job.yaml", "--quiet"], capture_output=True,
                         text=True, timeout=300, check=False, cwd=work)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((work / "streamtrain-output" / "tickets" / "results-train.json")
                         .read_text())
    assert "team_router" in results["modelSummary"]
    assert len(results["classes"]) == 6
