"""Evaluation throughput: the tutorial's `KafkaGroupIODataset` pipeline against evaluate mode.

Registers two figures with the benchmark harness (imported by
`bench.input_pipeline` when present):
- `seed_eval_rps`: the tutorial's evaluation: `KafkaGroupIODataset` with a
  fresh consumer group, per-record `decode_csv`, batches of 64, the model
  scoring each batch. Its stream only ends a stream timeout after the last
  record, so the clock stops when the last batch has been scored (the
  tutorial's idle wait is not charged to it).
- `eval_rps`: `run_evaluate` end to end with a fresh consumer group: model
  load, exact offset reads, vectorised decoding, scoring, ledger and commits.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import tensorflow as tf

from bench.harness import BenchContext, measurement
from workload.artifacts import Artifacts
from workload.data.kafka_input import group_stream
from workload.model.build import build_model
from workload.modes.evaluate import run_evaluate
from workload.spec import ModelSpec, StreamingTrainingJobSpec

BATCH = 64
"""The tutorial's batch size."""

N_FEATURES = 18

SEED_STREAM_TIMEOUT_MS = 2000
"""Idle time after which the tutorial's stream ends (not counted in its rate)."""


def _model_file(folder: Path) -> Artifacts:
    """An output folder holding the tutorial's MLP as the trained model."""
    artifacts = Artifacts(folder).prepare()
    build_model(ModelSpec.model_validate({"preprocessing": "none"}), N_FEATURES).save(
        artifacts.keras_model)
    return artifacts


@measurement("the tutorial's evaluation (KafkaGroupIODataset)")
def seed_eval(context: BenchContext) -> dict[str, float]:
    import keras

    artifacts = _model_file(Path(tempfile.mkdtemp(prefix="streamtrain-bench-eval-")))
    model = keras.saving.load_model(artifacts.keras_model)

    def decode_kafka_test_item(message: tf.Tensor, key: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        columns = tf.io.decode_csv(message, [[0.0] for _ in range(N_FEATURES)])
        return tf.stack(columns), tf.strings.to_number(key)

    stream = group_stream(context.connection, context.topic, f"seed-{uuid.uuid4().hex[:8]}",
                          SEED_STREAM_TIMEOUT_MS)
    dataset = stream.map(decode_kafka_test_item).batch(BATCH)
    started = time.perf_counter()
    rows, last = 0, started
    for features, labels in dataset:
        model.test_on_batch(features, labels)
        rows += int(labels.shape[0])
        last = time.perf_counter()
    if rows == 0:
        raise RuntimeError("the tutorial's evaluation read no records")
    return {"seed_eval_rps": rows / (last - started)}


@measurement("streamtrain's exactly-once evaluation")
def fast_eval(context: BenchContext) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="streamtrain-bench-eval-"))
    artifacts = _model_file(folder)
    spec = StreamingTrainingJobSpec.model_validate({
        "kafka": {"bootstrapServers": context.connection.bootstrap_servers},
        "evaluate": {"topic": context.topic, "consumerGroup": f"eval-{uuid.uuid4().hex[:8]}",
                     "streamTimeoutMs": 0},
        "model": {"output": {"path": str(folder)}},
    })
    started = time.perf_counter()
    report = run_evaluate("bench", spec, context.connection, artifacts, progress=False)
    seconds = time.perf_counter() - started
    if not report.ok or not report.metrics.records_evaluated:
        raise RuntimeError(f"evaluation failed: {report.message}")
    return {"eval_rps": report.metrics.records_evaluated / seconds}
