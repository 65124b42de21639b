"""The user's own model on the real broker: a factory (with a custom layer) and a `.keras` file
each train, evaluate and learn online; a model that does not fit fails at start naming both
shapes."""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import json  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.conftest import KafkaHandle  # noqa: E402
from tests.integration.test_tasks import ONLINE_ROWS, TEST_ROWS, TRAIN_ROWS, phases, produce  # noqa: E402
from tests.integration.user_models import Gate  # noqa: E402
from workload.artifacts import Artifacts  # noqa: E402
from workload.datagen.records import encode  # noqa: E402
from workload.datagen.task_families import DEMAND, TICKETS  # noqa: E402
from workload.kafka.connection import KafkaConnection  # noqa: E402
from workload.model.build import load_model  # noqa: E402
from workload.model.user import prepared_width  # noqa: E402
from workload.runner import local_folders, run_phases  # noqa: E402
from workload.spec import DataSpec, StreamingTrainingJobSpec, parse_spec  # noqa: E402


def topics(kafka: KafkaHandle, family: Any, seed: int) -> tuple[str, str, str]:
    """Train, test and online topics of the family's records."""
    data: DataSpec = family.data_spec()
    rows = family.generate(TRAIN_ROWS + TEST_ROWS + ONLINE_ROWS, seed=seed)
    parts = (rows.slice(0, TRAIN_ROWS), rows.slice(TRAIN_ROWS, TRAIN_ROWS + TEST_ROWS),
             rows.slice(TRAIN_ROWS + TEST_ROWS, rows.rows))
    train, test, online = (encode(part, data) for part in parts)
    return produce(kafka, train, 1), produce(kafka, test, 2), produce(kafka, online, 1)


def job(kafka: KafkaHandle, family: Any, output: Path, names: tuple[str, str, str],
        model: dict[str, Any], epochs: int = 3) -> StreamingTrainingJobSpec:
    train, test, online = names
    return parse_spec({
        "kafka": {"bootstrapServers": kafka.bootstrap_servers},
        "data": family.data_spec().model_dump(mode="json", by_alias=True, exclude_none=True),
        "train": {"topic": train, "epochs": epochs},
        "evaluate": {"topic": test, "consumerGroup": f"eval-{uuid.uuid4().hex[:8]}",
                     "streamTimeoutMs": 0},
        "online": {"topic": online, "consumerGroup": f"online-{uuid.uuid4().hex[:8]}",
                   "streamTimeoutMs": 3000},
        "model": {"task": family.task, "output": {"path": str(output)}, **model},
    })


def test_a_users_factory_trains_evaluates_and_learns_online_with_its_custom_layer(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    spec = job(kafka, TICKETS, tmp_path, topics(kafka, TICKETS, 31),
               {"factory": "tests.integration.user_models:build_router"})
    artifacts = Artifacts(tmp_path)

    reports = phases(run_phases("router", spec, KafkaConnection(kafka.bootstrap_servers),
                                artifacts, progress=False))

    assert all(report.ok for report in reports.values()), [r.message for r in reports.values()]
    results = json.loads(artifacts.results("train").read_text())
    assert "router" in results["modelSummary"]
    assert reports["evaluate"].metrics.records_evaluated == TEST_ROWS
    assert (reports["evaluate"].metrics.eval_accuracy or 0) > 0.4
    assert reports["online"].metrics.records_online == ONLINE_ROWS
    trained = load_model(artifacts.keras_model)
    router = trained.get_layer("router")
    assert isinstance(router.get_layer("gate"), Gate)
    assert router.input_shape == (None, prepared_width(spec.data))


def test_a_users_keras_file_is_the_starting_point_and_a_misfit_fails_at_start(
        kafka: KafkaHandle, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    width = prepared_width(DEMAND.data_spec())
    inputs = keras.Input(shape=(width,))
    start = keras.Model(inputs, keras.layers.Dense(1, name="y")(
        keras.layers.Dense(16, activation="relu", name="h")(inputs)), name="team_regressor")
    (tmp_path / "models").mkdir()
    start.save(tmp_path / "models" / "regressor.keras")
    names = topics(kafka, DEMAND, 32)
    file = {"file": {"volumeClaim": "team-models", "path": "models/regressor.keras"}}
    spec = job(kafka, DEMAND, tmp_path / "out", names, file, epochs=4)
    artifacts = local_folders(spec, tmp_path / "out")
    connection = KafkaConnection(kafka.bootstrap_servers)

    reports = phases(run_phases("regressor", spec, connection, artifacts, progress=False))

    assert all(report.ok for report in reports.values()), [r.message for r in reports.values()]
    evaluated = reports["evaluate"].metrics
    assert evaluated.eval_rmse is not None and evaluated.eval_rmse < 5.0  # the labels' sd is ~5
    assert load_model(artifacts.keras_model).get_layer("team_regressor").input_shape == (
        None, width)

    narrow = keras.Sequential([keras.Input(shape=(width - 1,)), keras.layers.Dense(1)])
    narrow.save(tmp_path / "models" / "regressor.keras")
    misfit = phases(run_phases("misfit", spec, connection, local_folders(spec, tmp_path / "m"),
                               progress=False))
    assert not misfit["train"].ok and "evaluate" not in misfit
    assert misfit["train"].message == (
        f"the model in 'models/regressor.keras' takes inputs of shape (batch, {width - 1}), but "
        f"the prepared features of this job have shape (batch, {width}) (7 fields: numbers "
        "after model.preprocessing, categories encoded for data.maxTokens)")

    spec = job(kafka, DEMAND, tmp_path / "w", names,
               {"factory": "tests.integration.user_models:wrong_output"})
    wrong = phases(run_phases("wrong", spec, connection, Artifacts(tmp_path / "w"),
                              progress=False))
    assert wrong["train"].message == (
        "model.factory 'tests.integration.user_models:wrong_output' ends in shape (batch, 2), "
        "but task regression needs (batch, 1)")


def test_a_group_of_two_workers_trains_a_users_multiclass_model_on_categorical_fields(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    spec = job(kafka, TICKETS, tmp_path, topics(kafka, TICKETS, 34),
               {"factory": "tests.integration.user_models:build_router"}, epochs=2)
    spec = parse_spec({**spec.model_dump(mode="json", by_alias=True, exclude_none=True),
                       "online": None, "trainer": {"replicas": 2}})
    artifacts = Artifacts(tmp_path)

    reports = phases(run_phases("router-group", spec, KafkaConnection(kafka.bootstrap_servers),
                                artifacts, progress=False))

    assert all(report.ok for report in reports.values()), [r.message for r in reports.values()]
    results = json.loads(artifacts.results("train").read_text())
    assert results["workers"] == 2 and results["classes"] == sorted(TICKETS.classes)
    assert reports["train"].classes == sorted(TICKETS.classes)
    assert (reports["evaluate"].metrics.eval_accuracy or 0) > 0.4
    assert isinstance(load_model(artifacts.keras_model).get_layer("router").get_layer("gate"),
                      Gate)


def test_another_jobs_model_is_the_starting_point_of_training(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    names = topics(kafka, TICKETS, 35)
    connection = KafkaConnection(kafka.bootstrap_servers)
    first = job(kafka, TICKETS, tmp_path / "first", names, {"layers": [{"dense": 16}]}, epochs=2)
    first = parse_spec({**first.model_dump(mode="json", by_alias=True, exclude_none=True),
                        "online": None})
    assert all(r.ok for r in run_phases("first", first, connection,
                                        local_folders(first, tmp_path / "first"),
                                        progress=False))
    # Trained further with a step size too small to move it: it stays the first job's model.
    document = first.model_dump(mode="json", by_alias=True, exclude_none=True)
    document["model"].update(source={"job": "first"}, learningRate=1e-9, task="multiclass")
    document["train"]["epochs"] = 1
    document["evaluate"]["consumerGroup"] = f"eval-{uuid.uuid4().hex[:8]}"
    second = parse_spec(document)
    artifacts = local_folders(second, tmp_path / "second")

    reports = phases(run_phases("second", second, connection, artifacts, progress=False))

    assert all(report.ok for report in reports.values()), [r.message for r in reports.values()]
    assert reports["train"].preprocessing == "the source model's own (model.source)"
    assert reports["train"].classes == sorted(TICKETS.classes)
    started, trained = (load_model(folder / "model.keras")
                        for folder in (tmp_path / "first", tmp_path / "second"))
    for before, after in zip(started.weights, trained.weights, strict=True):
        assert before.path == after.path
        np.testing.assert_allclose(np.asarray(after), np.asarray(before), atol=1e-5)
    assert reports["evaluate"].metrics.eval_accuracy == pytest.approx(
        json.loads((tmp_path / "first" / "results-evaluate.json").read_text())["metrics"][
            "evalAccuracy"], abs=0.01)
