"""Serving scores with the LiteRT file the export made, and never loads TensorFlow for it; a
model that does not convert is served with TensorFlow, and the runtime says why."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from tests.conftest import KafkaHandle
from tests.faults import processes
from tests.faults.serve_faults import SERVE_CHILD
from tests.integration.modes_support import predict, save_tiny_model
from tests.integration.serve_support import produce_with_headers, read_predictions, serve_spec
from workload.artifacts import Artifacts, file_digest
from workload.data.decode import make_decoder
from workload.datagen.records import encode
from workload.datagen.synthetic import generate
from workload.model.build import load_model
from workload.model.inputs import InputLayout
from workload.model.litert import (
    CHUNK,
    SMALL_CHUNK,
    TOLERANCE,
    LiteRtScorer,
    export_litert,
    matching_litert,
)
from workload.spec import DataSpec

ROWS = 1500


def _serve(kafka: KafkaHandle, tmp_path: Path, artifacts: Artifacts) -> tuple[list[str], list]:
    """Serve ROWS records in a process of its own; its output lines and the predictions."""
    source = kafka.create_topic("litert-in", partitions=1)
    output = f"{source}-out"
    data = generate(ROWS, seed=61)
    produce_with_headers(kafka.bootstrap_servers, source, list(encode(data)), partitions=1)
    spec = serve_spec(kafka.bootstrap_servers, artifacts.root, source, output,
                      streamTimeoutMs=2000)
    run = processes.run_to_end(processes.command(
        SERVE_CHILD, processes.spec_file(spec, tmp_path / "spec.json"), artifacts.root, "0"),
        timeout_s=300)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    return lines, read_predictions(kafka.bootstrap_servers, output)


def test_a_litert_export_is_served_without_tensorflow_and_predicts_as_keras(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    artifacts = Artifacts(tmp_path / "out").prepare()
    data = generate(ROWS, seed=61)
    save_tiny_model(artifacts.keras_model, data=data)
    outcome = export_litert(load_model(artifacts.keras_model), artifacts.keras_model,
                            file_digest(artifacts.keras_model), data.features[:1024])
    assert outcome.ok, outcome.detail
    lite, _ = matching_litert(artifacts.keras_model, file_digest(artifacts.keras_model))
    assert lite == artifacts.litert_model
    scorer = LiteRtScorer(lite, InputLayout(18, ()))
    keras_scores = predict(artifacts.keras_model, data.features)
    scores = scorer(data.features[:3000]).reshape(-1)
    assert len(scores) == ROWS  # padded chunks are cut off
    np.testing.assert_allclose(scores, keras_scores, atol=TOLERANCE)
    # A trickle's small batches (and a batch's small last chunk) go to the small interpreter.
    for count in (1, 7, SMALL_CHUNK, SMALL_CHUNK + 1, CHUNK + 5):
        few = scorer(data.features[:count]).reshape(-1)
        np.testing.assert_allclose(few, keras_scores[:count], atol=TOLERANCE)

    lines, predictions = _serve(kafka, tmp_path, artifacts)
    assert json.loads(lines[-1]) == {"tensorflowLoaded": False}
    results = json.loads(artifacts.results("serve").read_text())
    assert results["runtime"] == "litert" and results["metrics"]["recordsServed"] == ROWS
    decoded = make_decoder(DataSpec())([b"0"] * ROWS, [m.value for m in encode(data)])
    expected = predict(artifacts.keras_model, decoded.features)
    served = np.array([p.value["prediction"]["probabilities"]["1"]
                       for p in sorted(predictions, key=lambda p: p.source)])
    np.testing.assert_allclose(served, expected, atol=TOLERANCE)


@keras.saving.register_keras_serializable(package="streamtrain_tests")
class PythonCall(keras.layers.Layer):  # type: ignore[misc]
    """A layer that calls Python through `tf.numpy_function`: LiteRT cannot hold it."""

    def call(self, inputs: object) -> object:
        import tensorflow as tf

        return tf.numpy_function(lambda x: x, [inputs], tf.float32, stateful=False)

    def compute_output_shape(self, shape: object) -> object:
        return shape


def test_a_model_whose_litert_export_failed_is_served_with_tensorflow_saying_why(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    artifacts = Artifacts(tmp_path / "out").prepare()
    unconvertible = keras.Sequential([keras.Input(shape=(18,)), PythonCall(),
                                      keras.layers.Dense(1, activation="sigmoid")])
    sample = generate(64, seed=62).features
    # The served model is a plain one; its export is made to fail with a model LiteRT cannot
    # hold (a layer that calls Python), whose class a serving process could not load itself.
    save_tiny_model(artifacts.keras_model)
    outcome = export_litert(unconvertible, artifacts.keras_model,
                            file_digest(artifacts.keras_model), sample)
    assert not outcome.ok and "not converted to LiteRT" in outcome.detail, outcome.detail
    assert not artifacts.litert_model.exists()

    lines, predictions = _serve(kafka, tmp_path, artifacts)
    results = json.loads(artifacts.results("serve").read_text())
    assert results["runtime"] == f"tensorflow ({outcome.detail})"
    assert json.loads(lines[-1]) == {"tensorflowLoaded": True}
    assert len(predictions) == ROWS
