"""Multiclass (JSON, categorical fields) and regression (CSV) jobs on the real broker: each trains,
evaluates exactly with the task's metrics, and learns online; bad labels and categories get their
reason. The multiclass job also serves, with LiteRT, the raw strings of its categorical fields,
while its online learner's challengers go through the promotion gate."""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import json  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.conftest import KafkaHandle  # noqa: E402
from tests.integration.serve_support import answered_twice, read_predictions  # noqa: E402
from workload.artifacts import Artifacts  # noqa: E402
from workload.data.decode import LabelRule, make_decoder  # noqa: E402
from workload.data.unlabelled import features_decoder  # noqa: E402
from workload.datagen.records import Message, encode  # noqa: E402
from workload.datagen.table import SusyData  # noqa: E402
from workload.datagen.task_families import DEMAND, TICKETS  # noqa: E402
from workload.kafka.connection import KafkaConnection  # noqa: E402
from workload.kafka.producer import produce_messages  # noqa: E402
from workload.model.build import load_model  # noqa: E402
from workload.model.inputs import InputLayout  # noqa: E402
from workload.model.task import task_of  # noqa: E402
from workload.modes.serving_model import version_of  # noqa: E402
from workload.runner import run_phases  # noqa: E402
from workload.spec import DataSpec, StreamingTrainingJobSpec, parse_spec  # noqa: E402
from workload.status import PodReport  # noqa: E402

TRAIN_ROWS, TEST_ROWS, ONLINE_ROWS, SERVED_ROWS = 3000, 1200, 800, 600


def produce(kafka: KafkaHandle, messages: list[Message], partitions: int) -> str:
    """A new topic holding `messages` (round-robin over `partitions`)."""
    topic = kafka.create_topic("task", partitions=partitions)
    produce_messages(KafkaConnection(kafka.bootstrap_servers), topic, messages, partitions)
    return topic


def job(kafka: KafkaHandle, output: Path, data: DataSpec, model: dict[str, Any],
        topics: tuple[str, str, str], **extra: Any) -> StreamingTrainingJobSpec:
    """Train, evaluate exactly once, then learn online, on the three topics (`extra`: more
    sections, e.g. `serve`)."""
    train, test, online = topics
    return parse_spec({**extra,
        "kafka": {"bootstrapServers": kafka.bootstrap_servers},
        "data": dump_spec_data(data),
        "train": {"topic": train, "epochs": 4, "batchSize": 64},
        "evaluate": {"topic": test, "consumerGroup": f"eval-{uuid.uuid4().hex[:8]}",
                     "streamTimeoutMs": 0},
        "online": {"topic": online, "consumerGroup": f"online-{uuid.uuid4().hex[:8]}",
                   "streamTimeoutMs": 3000},
        "model": {"output": {"path": str(output)}, "layers": [{"dense": 32}, {"dense": 16}],
                  **model},
    })


def dump_spec_data(data: DataSpec) -> dict[str, Any]:
    """The data section as a job manifest writes it."""
    return data.model_dump(mode="json", by_alias=True, exclude_none=True)


def outputs_of(model_path: Path, data: DataSpec, rule: LabelRule, rows: list[Message]
               ) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """The saved model's outputs for the good records of `rows`, and their labels: computed
    directly, to hold the evaluator's exact figures against."""
    decoded = make_decoder(data, rule)([m.key or b"" for m in rows], [m.value for m in rows])
    model = load_model(model_path)
    outputs = model.predict(InputLayout.of(data).of_decoded(decoded), batch_size=4096, verbose=0)
    return np.asarray(outputs, np.float64), decoded.labels


def phases(reports: list[PodReport]) -> dict[str, PodReport]:
    return {report.mode: report for report in reports}


def test_a_multiclass_json_job_with_categorical_fields_trains_evaluates_learns_and_serves(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    data = TICKETS.data_spec()
    rows = TICKETS.generate(TRAIN_ROWS + TEST_ROWS + ONLINE_ROWS, seed=21)
    train = encode(rows.slice(0, TRAIN_ROWS), data)
    test = encode(rows.slice(TRAIN_ROWS, TRAIN_ROWS + TEST_ROWS), data)
    online = encode(rows.slice(TRAIN_ROWS + TEST_ROWS, rows.rows), data)
    good = json.loads(test[0].value)
    unknown = dict(good, queue="lost-and-found")
    nested = dict(good, channel={"name": "email"})
    listed = dict(good, product=["a", "b"])
    bad = [Message(None, json.dumps(record).encode()) for record in (unknown, nested, listed)]
    topics = (produce(kafka, train, 1), produce(kafka, [*test, *bad], 2), produce(kafka, online, 1))
    # Requests: no label needed (one leaves it out); one lacks a categorical field.
    requests = encode(TICKETS.generate(SERVED_ROWS, seed=24), data)
    unlabelled = json.loads(requests[1].value)
    del unlabelled["queue"]
    no_channel = json.loads(requests[2].value)
    del no_channel["channel"]
    requests[1:3] = [Message(b"k1", json.dumps(unlabelled).encode()),
                     Message(b"k2", json.dumps(no_channel).encode())]
    source = produce(kafka, requests, 1)
    spec = job(kafka, tmp_path, data, {"task": "multiclass"}, topics, serve={
        "inputTopic": source, "outputTopic": f"{source}-out", "consumerGroup": f"{source}-serve",
        "streamTimeoutMs": 2000, "promotion": {"window": 400}})
    artifacts = Artifacts(tmp_path)

    reports = phases(run_phases("tickets", spec, KafkaConnection(kafka.bootstrap_servers),
                                artifacts, progress=False))

    assert all(report.ok for report in reports.values()), [r.message for r in reports.values()]
    trained = reports["train"]
    assert trained.classes == sorted(TICKETS.classes)  # learned, in text order
    results = json.loads(artifacts.results("train").read_text())
    assert results["task"] == "multiclass" and results["classes"] == trained.classes
    assert results["preprocessing"]["categorical"]["account.country"]["encoding"] == "embedding"
    assert results["preprocessing"]["categorical"]["channel"]["encoding"] == "one-hot"

    evaluated = reports["evaluate"].metrics
    assert evaluated.records_evaluated == TEST_ROWS
    assert evaluated.bad_records_by_reason == {"non_categorical": 2, "unknown_class": 1}
    classes = tuple(trained.classes or ())
    outputs, labels = outputs_of(artifacts.keras_model, data, LabelRule("multiclass", classes),
                                 test)
    predicted = outputs.argmax(axis=1)
    assert evaluated.eval_accuracy == pytest.approx(float((predicted == labels).mean()),
                                                    abs=1e-9)
    chosen = np.clip(outputs[np.arange(len(labels)), labels.astype(int)], 1e-7, 1.0)
    assert evaluated.eval_loss == pytest.approx(float(-np.log(chosen).mean()), rel=1e-5)
    assert (evaluated.eval_metric, evaluated.eval_value) == ("accuracy", evaluated.eval_accuracy)
    assert evaluated.eval_macro_f1 is not None and 0 < evaluated.eval_macro_f1 < 1
    figures = json.loads(artifacts.results("evaluate").read_text())["figures"]
    counts = np.array(figures["confusionMatrix"]["counts"])
    assert counts.sum() == TEST_ROWS and np.trace(counts) == int((predicted == labels).sum())
    assert figures["classes"] == list(classes)

    learned = reports["online"].metrics
    assert learned.records_online == ONLINE_ROWS
    assert learned.online_accuracy is not None and learned.online_accuracy > 0.4
    assert learned.online_rmse is None
    assert task_of(load_model(artifacts.online / "model.keras")).classes == classes
    state = json.loads((artifacts.online / "state.json").read_text())
    assert state["promotionDecisions"] >= 1, state  # the gate compared categorical models

    # Serving: one prediction per good request, the one without a channel set aside.
    assert results["litert"].startswith("max difference"), results["litert"]
    served = reports["serve"].metrics
    assert (served.records_served, served.bad_records_by_reason) == (SERVED_ROWS - 1,
                                                                     {"missing_field": 1})
    assert json.loads(artifacts.results("serve").read_text())["runtime"] == "litert"
    predictions = read_predictions(kafka.bootstrap_servers, f"{source}-out")
    assert not answered_twice(predictions)
    assert sorted(p.source for p in predictions) == [(0, offset) for offset in
                                                     range(SERVED_ROWS) if offset != 2]
    decoded = features_decoder(data)([b""] * SERVED_ROWS, [m.value for m in requests])
    expected = load_model(artifacts.keras_model).predict(
        InputLayout.of(data).of_decoded(decoded), verbose=0)
    by_offset = dict(zip(np.flatnonzero(decoded.good).tolist(), expected, strict=True))
    trained = version_of("trained", artifacts.keras_model)
    checked = 0
    for prediction in predictions:
        answer = prediction.value["prediction"]
        assert answer["class"] in classes and prediction.key == requests[prediction.source[1]].key
        if prediction.value["modelVersion"] == trained:  # else a promoted challenger's
            probabilities = [answer["probabilities"][name] for name in classes]
            np.testing.assert_allclose(probabilities, by_offset[prediction.source[1]], atol=1e-5)
            checked += 1
    assert checked or state["promotions"], "no prediction of the trained model, and no promotion"


def test_a_regression_job_answers_in_the_label_units_and_reports_exact_rmse(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    data = DEMAND.data_spec()
    rows = DEMAND.generate(TRAIN_ROWS + TEST_ROWS + ONLINE_ROWS, seed=22)
    train = encode(rows.slice(0, TRAIN_ROWS), data)
    test = encode(rows.slice(TRAIN_ROWS, TRAIN_ROWS + TEST_ROWS), data)
    online = encode(rows.slice(TRAIN_ROWS + TEST_ROWS, rows.rows), data)
    fields = test[0].value.split(b",")
    bad = [Message(None, b",".join([*fields[:-1], b"lots"])),
           Message(None, b",".join([*fields[:-2], b'"r1"', fields[-1]]))]
    topics = (produce(kafka, train, 1), produce(kafka, [*test, *bad], 2), produce(kafka, online, 1))
    spec = job(kafka, tmp_path, data, {"task": "regression", "loss": "huber"}, topics)
    artifacts = Artifacts(tmp_path)

    reports = phases(run_phases("demand", spec, KafkaConnection(kafka.bootstrap_servers),
                                artifacts, progress=False))

    assert all(report.ok for report in reports.values()), [r.message for r in reports.values()]
    results = json.loads(artifacts.results("train").read_text())
    assert results["task"] == "regression"
    train_targets = rows.targets[:TRAIN_ROWS]  # type: ignore[index]
    assert results["target"]["mean"] == pytest.approx(float(train_targets.mean()), rel=1e-2)
    assert reports["train"].metrics.train_rmse is not None

    evaluated = reports["evaluate"].metrics
    assert evaluated.records_evaluated == TEST_ROWS
    assert evaluated.bad_records_by_reason == {"non_categorical": 1, "non_numeric": 1}
    outputs, labels = outputs_of(artifacts.keras_model, data, LabelRule("regression"), test)
    errors = outputs.reshape(-1) - labels.astype(np.float64)
    rmse = float(np.sqrt(np.mean(errors ** 2)))
    assert evaluated.eval_rmse == pytest.approx(rmse, rel=1e-5)
    assert evaluated.eval_mae == pytest.approx(float(np.abs(errors).mean()), rel=1e-5)
    spread = float(np.sum((labels - labels.mean()) ** 2))
    assert evaluated.eval_r2 == pytest.approx(1 - float(np.sum(errors ** 2)) / spread, rel=1e-4)
    assert (evaluated.eval_metric, evaluated.eval_value) == ("rmse", evaluated.eval_rmse)
    assert evaluated.eval_accuracy is None and evaluated.eval_loss is None
    # In the label's units: predictions centre where the labels do, and beat the mean.
    assert abs(outputs.mean() - labels.mean()) < 0.5 * labels.std()
    assert rmse < float(labels.std())

    learned = reports["online"].metrics
    assert learned.records_online == ONLINE_ROWS
    assert learned.online_rmse is not None and learned.online_rmse < 2 * float(labels.std())
    assert learned.online_accuracy is None


def test_named_classes_set_other_labels_aside_as_unknown_class_in_training(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    data = DataSpec.model_validate({"columns": ["x", "y", "kind"], "label": "kind"})
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 2)).astype(np.float32)
    kinds = np.where(x[:, 0] > 0.5, 2, np.where(x[:, 1] > 0, 1, 0))
    table = SusyData(x, kinds.astype(np.int64), ("x", "y"), classes=("low", "mid", "high"))
    messages = encode(table, data)
    messages[5] = Message(None, b"0.1,0.2,giant")
    topic = produce(kafka, messages, 1)
    spec = parse_spec({
        "kafka": {"bootstrapServers": kafka.bootstrap_servers}, "data": dump_spec_data(data),
        "train": {"topic": topic, "epochs": 2, "validationFraction": 0.0},
        "model": {"task": "multiclass", "classes": ["low", "mid", "high"],
                  "output": {"path": str(tmp_path)}, "layers": [{"dense": 8}]},
    })
    (report,) = run_phases("kinds", spec, KafkaConnection(kafka.bootstrap_servers),
                           Artifacts(tmp_path), progress=False)
    assert report.ok, report.message
    assert report.metrics.bad_records_by_reason == {"unknown_class": 1}
    assert report.metrics.records_trained == 599
    assert report.classes == ["low", "mid", "high"]
