"""The serve image: no TensorFlow and no Keras, every module the serving path imports loads, and
a model trained here, mounted read-only, answers a topic as the serving Deployment's pod runs
it (`streamtrain run-mode serve`, UID 65532, read-only root): one prediction per good input
record, read_committed, equal to Keras'."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, TopicPartition
from streamtrain_operator.builders import RUN_AS_USER

from localparts import containers
from tests.conftest import KafkaHandle
from tests.image.conftest import Image
from tests.integration.modes_support import predict, save_tiny_model
from tests.integration.serve_support import answered_twice, produce_with_headers, read_predictions
from workload.artifacts import Artifacts, file_digest
from workload.contract import (
    JOB_NAME_ENV,
    JOB_SPEC_ENV,
    JOB_UID_ENV,
    MODEL_SOURCE_ENV,
    SERVE_REPLICA_ENV,
    TERMINATION_LOG_ENV,
)
from workload.data.decode import make_decoder
from workload.datagen.records import corrupt, encode
from workload.datagen.synthetic import generate
from workload.model.build import load_model
from workload.model.litert import TOLERANCE, export_litert
from workload.modes.serving_model import version_of
from workload.spec import DataSpec, parse_spec

SERVING_PATH = ("workload.cli", "workload.tflog", "workload.contract", "workload.progress",
                "workload.replica", "workload.runner", "workload.termination",
                "workload.modes.serve", "workload.modes.serving_model", "workload.model.litert",
                "ai_edge_litert.interpreter")
"""What `streamtrain run-mode serve` imports, the modules it imports only when it runs (in
`workload.cli`, `workload.runner`, `workload.modes.serving_model`, the LiteRT scorer) included."""

LOADED = """
import importlib, json, sys
for module in sys.argv[1:]:
    importlib.import_module(module)
print(json.dumps({"workload": sorted(m for m in sys.modules if m.split(".")[0] == "workload"),
                  "tensorflow": "tensorflow" in sys.modules, "keras": "keras" in sys.modules}))
"""
"""Import the modules named, then print the streamtrain modules loaded and whether TensorFlow or
Keras came with them."""

ROWS = 400
BAD_FRACTION = 0.03
SERVE_TIMEOUT_S = 300.0
"""Seconds the serving container may take to start, answer every record and stop once idle."""


def test_it_should_hold_neither_tensorflow_nor_keras(serve_image: Image) -> None:
    for module in ("tensorflow", "keras"):
        completed = serve_image.run("python3", "-c", f"import {module}")
        assert completed.returncode == 1, f"{module} is in the serve image"
        assert f"No module named '{module}'" in completed.stderr, completed.stderr[-2000:]


def test_it_should_load_every_module_the_serving_path_imports(serve_image: Image) -> None:
    in_image = serve_image.run("python3", "-c", LOADED, *SERVING_PATH)
    assert in_image.returncode == 0, in_image.stderr[-3000:]
    here = subprocess.run([sys.executable, "-c", LOADED, *SERVING_PATH], capture_output=True,
                          text=True, timeout=300, check=False)
    assert here.returncode == 0, here.stderr[-3000:]
    loaded, expected = (json.loads(run.stdout.splitlines()[-1]) for run in (in_image, here))
    assert loaded == expected, "the serve image loads other streamtrain modules than here"
    assert loaded["tensorflow"] is False and loaded["keras"] is False
    assert "workload.modes.serve" in loaded["workload"]


def _first_prediction(bootstrap: str, topic: str, process: subprocess.Popen[bytes],
                      started: float) -> float | None:
    """Seconds from `started` until a read_committed consumer sees a first record of `topic`
    (`None` if the container ended first, or none came in `SERVE_TIMEOUT_S`)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"first-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 50, "topic.metadata.refresh.interval.ms": 200,
                         "allow.auto.create.topics": False})
    try:
        assigned = False
        while time.monotonic() - started < SERVE_TIMEOUT_S and process.poll() is None:
            if not assigned:
                topics = consumer.list_topics(timeout=5).topics
                if topic in topics and topics[topic].partitions:
                    consumer.assign([TopicPartition(topic, p, 0) for p in topics[topic].partitions])
                    assigned = True
                else:
                    time.sleep(0.05)
                    continue
            message = consumer.poll(0.05)
            if message is not None and message.error() is None:
                return time.monotonic() - started
        return None
    finally:
        consumer.close()


def test_it_should_serve_a_topic_read_only_as_65532_predicting_as_keras(
    serve_image: Image, kafka: KafkaHandle, tmp_path: Path,
) -> None:
    source = kafka.create_topic("img-serve", partitions=2)
    output, dead = f"{source}-out", f"{source}-bad"
    data = generate(ROWS, seed=71)
    messages, made = corrupt(encode(data), BAD_FRACTION, seed=71)
    produce_with_headers(kafka.bootstrap_servers, source, messages, partitions=2)
    # Trained here (TensorFlow), exported with its LiteRT scorer, mounted read-only.
    model = Artifacts(tmp_path / "model").prepare()
    save_tiny_model(model.keras_model, data=data)
    outcome = export_litert(load_model(model.keras_model), model.keras_model,
                            file_digest(model.keras_model), data.features[:256])
    assert outcome.ok, outcome.detail
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, RUN_AS_USER, RUN_AS_USER)  # as a kubelet hands a volume to the pod's fsGroup
    document = {"kafka": {"bootstrapServers": kafka.bootstrap_servers},
                "data": {"deadLetterTopic": dead},
                "model": {"output": {"path": "/out"}, "source": {"job": "trained"},
                          "layers": [{"dense": 8, "activation": "relu"}]},
                "serve": {"inputTopic": source, "outputTopic": output,
                          "consumerGroup": f"{source}-serve", "batchSize": 100,
                          "streamTimeoutMs": 5000}}
    parse_spec(document)  # a valid spec, as the operator hands it to the pod
    env = {JOB_SPEC_ENV: json.dumps(document), JOB_NAME_ENV: "image-serve",
           JOB_UID_ENV: str(uuid.uuid4()), SERVE_REPLICA_ENV: "0",
           MODEL_SOURCE_ENV: "/source", TERMINATION_LOG_ENV: "/out/termination-log"}
    name = f"serve-{uuid.uuid4().hex[:8]}"
    argv = containers.run_command(
        serve_image.name, ["streamtrain", "run-mode", "serve"], name=name, env=env,
        user=f"{RUN_AS_USER}:{RUN_AS_USER}",
        mounts=[containers.Mount(model.root, "/source", read_only=True),
                containers.Mount(out, "/out")])
    started = time.monotonic()
    assert serve_image.run("true").returncode == 0
    bare_s = time.monotonic() - started  # a container's start alone, for comparison
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        started = time.monotonic()
        process = subprocess.Popen(argv, env=containers.environment(), stdout=sink,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            first_s = _first_prediction(kafka.bootstrap_servers, output, process, started)
            process.wait(timeout=max(1.0, SERVE_TIMEOUT_S - (time.monotonic() - started)))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
            containers.remove(name)
    text = log.read_text(errors="replace")
    assert process.returncode == 0, text[-4000:]
    assert first_s is not None, text[-4000:]
    print(f"\nserve image: first prediction visible (read_committed) {first_s:.1f} s after "
          f"podman run (`podman run ... true` alone: {bare_s:.1f} s); "
          f"load average {os.getloadavg()[0]:.1f}")

    results = json.loads((out / "results-serve.json").read_text())
    assert results["runtime"] == "litert", results
    version = version_of("source", model.keras_model)
    assert results["modelVersion"] == version
    predictions = read_predictions(kafka.bootstrap_servers, output)
    assert not answered_twice(predictions)
    by_source = {prediction.source: prediction for prediction in predictions}
    features, places = [], []
    for index, (key, value) in enumerate(messages):
        place = (index % 2, index // 2)
        decoded = make_decoder(DataSpec())([b"0"], [value])
        if not decoded.good[0]:
            assert place not in by_source
            continue
        answer = by_source[place]
        assert answer.key == key and answer.value["modelVersion"] == version
        features.append(decoded.features[0])
        places.append(place)
    assert len(predictions) == len(places) == results["metrics"]["recordsServed"]
    assert ROWS - len(places) == sum(n for reason, n in made.items() if reason != "bad_key") > 0
    served = np.array([by_source[place].value["prediction"]["probabilities"]["1"]
                       for place in places])
    np.testing.assert_allclose(served, predict(model.keras_model, np.stack(features)),
                               atol=TOLERANCE)
