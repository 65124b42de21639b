"""On the demo's data the default model comes within 1.5 points of the best any model can do."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import KafkaHandle
from workload.artifacts import Artifacts
from workload.datagen.produce import produce_split
from workload.datagen.synthetic import bayes_optimal_accuracy, generate
from workload.kafka.connection import KafkaConnection
from workload.runner import run_phases
from workload.spec import parse_spec

ROWS, TRAIN_ROWS = 100_000, 60_000
MAX_GAP = 0.015


def test_tutorial_model_reaches_bayes_optimal_accuracy_within_one_and_a_half_points(
    kafka: KafkaHandle, tmp_path: Path,
) -> None:
    connection = KafkaConnection(kafka.bootstrap_servers)
    train_topic, test_topic = kafka.create_topic("q-train", 1), kafka.create_topic("q-test", 2)
    produce_split(connection, train_topic, test_topic, generate(ROWS, seed=0),
                  train_rows=TRAIN_ROWS, progress=False)
    spec = parse_spec({
        "kafka": {"bootstrapServers": kafka.bootstrap_servers},
        "train": {"topic": train_topic},
        "evaluate": {"topic": test_topic, "consumerGroup": "quality"},
    })

    reports = run_phases("quality", spec, connection, Artifacts(tmp_path), progress=False)

    assert [report.ok for report in reports] == [True, True], [r.message for r in reports]
    evaluation = reports[1].metrics
    assert evaluation.records_evaluated == ROWS - TRAIN_ROWS
    bayes, _error = bayes_optimal_accuracy()
    assert evaluation.eval_accuracy is not None
    assert evaluation.eval_accuracy >= bayes - MAX_GAP, (evaluation.eval_accuracy, bayes)
    assert evaluation.eval_accuracy <= bayes + 0.01  # no model beats the Bayes rule beyond noise
    assert (tmp_path / "training_curve.png").stat().st_size > 10_000
