"""Scenario: invalid StreamingTrainingJob manifests, each refused with the field named.

Most are refused by the real API server from the CRD's schema and CEL rules
(wrong types, out-of-range sizes, unknown enum values, unknown fields under
strict field validation, rules across fields, edits of immutable fields).
What a schema cannot see (a credential among the Kafka settings, a setting
a job may not set, a model volume missing for a multi-phase job) the
operator refuses: the job is `Failed` with a condition naming the field. A
reference to a Kafka that does not exist is not an error of the manifest
(the Kafka may be created later): the job waits with `KafkaReady=False`
and a message naming what is missing.
"""

from __future__ import annotations

import copy
import functools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes

from tests.e2e.harness import Jobs, OperatorProcess, eventually, install_streamtrain_crd
from tests.faults.figures import Figure, figure

SCENARIO = "invalid manifests"
VALID: dict[str, Any] = {"kafka": {"bootstrapServers": "kafka:9092"}, "train": {},
                         "evaluate": {}}
NOT_SET = object()

# (category, path in the manifest, value) - the message must name the path's field.
SCHEMA_CASES: list[tuple[str, str, Any]] = [
    ("wrong type", "spec.train.epochs", "ten"),
    ("wrong type", "spec.train.batchSize", 1.5),
    ("wrong type", "spec.evaluate.streamTimeoutMs", "soon"),
    ("wrong type", "spec.data.features", "18"),
    ("wrong type", "spec.model.learningRate", "fast"),
    ("wrong type", "spec.kafka.manageTopics", "yes"),
    ("wrong type", "spec.model.layers", {"dense": 8}),
    ("wrong type", "spec.data.columns", "a,b"),
    ("wrong type", "spec.runPolicy.suspend", "no"),
    ("wrong type", "spec.kafka.config", {"session.timeout.ms": 7000}),
    ("out of range", "spec.train.epochs", -1),
    ("out of range", "spec.train.batchSize", 0),
    ("out of range", "spec.train.shuffleBuffer", -1),
    ("out of range", "spec.evaluate.batchSize", -5),
    ("out of range", "spec.evaluate.streamTimeoutMs", -2),
    ("out of range", "spec.data.maxRecordBytes", 8),
    ("out of range", "spec.data.maxBadRecordsRatio", 1.5),
    ("out of range", "spec.data.features", 0),
    ("out of range", "spec.model.learningRate", 0),
    ("out of range", "spec.runPolicy.backoffLimit", -1),
    ("out of range", "spec.runPolicy.activeDeadlineSeconds", 0),
    ("out of range", "spec.runPolicy.ttlSecondsAfterFinished", -1),
    ("out of range", "spec.trainer.replicas", 2),
    ("unknown value", "spec.data.format", "xml"),
    ("unknown value", "spec.model.optimizer", "lbfgs"),
    ("unknown value", "spec.trainer.imagePullPolicy", "Sometimes"),
    ("unknown field", "spec.trian", {"epochs": 3}),
    ("unknown field", "spec.train.epoch", 3),
    ("unknown field", "spec.kafka.bootstrapServer", "kafka:9092"),
    ("rule across fields", "spec.kafka", {"bootstrapServers": "k:1", "clusterRef": {"name": "c"}}),
    ("rule across fields", "spec.kafka", {}),
    ("rule across fields", "spec.model.layers[0]", [{"dense": 8, "dropout": 0.1}]),
    ("rule across fields", "spec.data", {"label": "target"}),
    ("bad Kafka setting", "spec.kafka.bootstrapServers", "no port"),
]

IMMUTABLE_EDITS: list[tuple[str, dict[str, Any]]] = [
    ("spec.train", {"train": {"topic": "elsewhere"}}),
    ("spec.evaluate", {"evaluate": {"consumerGroup": "other"}}),
    ("spec.kafka", {"kafka": {"bootstrapServers": "other:9092"}}),
    ("spec.data", {"data": {"format": "json"}}),
    ("spec.model", {"model": {"optimizer": "sgd"}}),
]

SHARED: dict[str, Any] = {**VALID, "model": {"output": {"volumeClaim": "models"}}}
"""A valid multi-phase job the operator would run (its phases share the model volume)."""


def _kafka_config(config: dict[str, str]) -> dict[str, Any]:
    return {**SHARED, "kafka": {"bootstrapServers": "kafka:9092", "config": config}}


# (category, field the condition must name, spec) - refused by the operator, not the schema.
OPERATOR_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("bad Kafka setting", "spec.kafka.config", _kafka_config({"sasl.password": "x"})),
    ("bad Kafka setting", "spec.kafka.config", _kafka_config({"ssl.key.pem": "x"})),
    ("bad Kafka setting", "spec.kafka.config", _kafka_config({"enable.auto.commit": "true"})),
    ("bad Kafka setting", "spec.kafka.config", _kafka_config({"group.id": "other"})),
    ("missing field a phase needs", "spec.model.output.volumeClaim", VALID),
]


def manifest(spec: dict[str, Any], name: str = "invalid") -> dict[str, Any]:
    """A StreamingTrainingJob document."""
    return {"apiVersion": "streamtrain.dev/v1alpha1", "kind": "StreamingTrainingJob",
            "metadata": {"name": name}, "spec": spec}


def with_value(path: str, value: Any) -> dict[str, Any]:
    """`VALID` with the field at `path` (`spec.a.b`, a list index as the last part) set."""
    spec = copy.deepcopy(VALID)
    parts = path.split(".")[1:]
    parts[-1] = parts[-1].split("[")[0]
    target = spec
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return spec


def invalid_manifests(api: kubernetes.client.ApiClient, kubeconfig: Path, namespace: str,
                      work: Path) -> list[Figure]:
    """Submit every invalid manifest in `namespace` (which must exist); return the figures."""
    install_streamtrain_crd(api)
    jobs = Jobs(api, namespace)
    outcomes: list[tuple[str, str, bool, str]] = []
    accepted = _created(jobs, manifest(VALID, "valid"))
    for category, path, value in SCHEMA_CASES:
        message = _rejection(jobs, manifest(with_value(path, value)))
        outcomes.append((category, path, message is not None and path in message,
                         message or "accepted"))
    for path, patch in IMMUTABLE_EDITS:
        message = _patch_rejection(jobs, "valid", patch)
        outcomes.append(("immutable edit", path, message is not None and "immutable" in message
                         and path in message, message or "accepted"))
    operator = OperatorProcess(kubeconfig, namespace, work / "operator.log").start()
    try:
        outcomes += _operator_cases(jobs, operator)
    finally:
        operator.stop()
    (work / "manifests.json").write_text(json.dumps(outcomes, indent=1))
    return _figures(accepted, outcomes)


def _created(jobs: Jobs, document: dict[str, Any]) -> bool:
    try:
        jobs.custom.create_namespaced_custom_object(
            "streamtrain.dev", "v1alpha1", jobs.namespace, "streamingtrainingjobs", document,
            field_validation="Strict")
    except kubernetes.client.ApiException:
        return False
    return True


def _rejection(jobs: Jobs, document: dict[str, Any]) -> str | None:
    """The API server's message refusing `document` (strict field validation), or None."""
    try:
        jobs.custom.create_namespaced_custom_object(
            "streamtrain.dev", "v1alpha1", jobs.namespace, "streamingtrainingjobs", document,
            field_validation="Strict")
    except kubernetes.client.ApiException as error:
        if 400 <= error.status < 500:
            return str(json.loads(error.body or "{}").get("message"))
        raise
    jobs.delete(document["metadata"]["name"])
    return None


def _patch_rejection(jobs: Jobs, name: str, spec: dict[str, Any]) -> str | None:
    try:
        jobs.patch_spec(name, spec)
    except kubernetes.client.ApiException as error:
        return str(json.loads(error.body or "{}").get("message"))
    return None


def _operator_cases(jobs: Jobs, operator: OperatorProcess) -> list[tuple[str, str, bool, str]]:
    names = []
    for index, (_, _, spec) in enumerate(OPERATOR_CASES):
        names.append(f"refused-{index}")
        jobs.create(names[-1], spec)
    missing = {**SHARED, "kafka": {"clusterRef": {"name": "nowhere"}}}
    jobs.create("unresolved", missing)
    outcomes = []
    for name, (category, path, _) in zip(names, OPERATOR_CASES, strict=True):
        failed = eventually(functools.partial(_failed, jobs, name), 45, f"{name} to fail",
                            operator.tail)
        outcomes.append((category, path, path in failed["message"],
                         f"Failed ({failed['reason']}): {failed['message']}"))
    waiting = eventually(lambda: _false(jobs.condition("unresolved", "KafkaReady")), 45,
                         "KafkaReady=False on the unresolved job", operator.tail)
    named = "nowhere" in waiting["message"] or "kafka.strimzi.io" in waiting["message"]
    outcomes.append(("reference to nothing", "spec.kafka.clusterRef",
                     named and jobs.phase("unresolved") != "Succeeded" and not jobs.pods(
                         "unresolved-train"),
                     f"waits, KafkaReady=False ({waiting['reason']}): {waiting['message']}"))
    return outcomes


def _failed(jobs: Jobs, name: str) -> dict[str, Any] | None:
    return jobs.condition(name, "Failed") if jobs.phase(name) == "Failed" else None


def _false(condition: dict[str, Any] | None) -> dict[str, Any] | None:
    return condition if condition is not None and condition["status"] == "False" else None


def _figures(accepted: bool, outcomes: list[tuple[str, str, bool, str]]) -> list[Figure]:
    total = Counter(category for category, *_ in outcomes)
    named = Counter(category for category, _, ok, _ in outcomes if ok)
    figures = [figure(SCENARIO, "control: the valid manifest", "accepted",
                      "accepted" if accepted else "refused", accepted)]
    for category in total:
        misses = [f"{path}: {message[:120]}" for c, path, ok, message in outcomes
                  if c == category and not ok]
        figures.append(figure(SCENARIO, f"{category}: refused naming the field",
                              f"{total[category]}/{total[category]}",
                              f"{named[category]}/{total[category]}"
                              + (f" (missed: {'; '.join(misses)})" if misses else ""),
                              named[category] == total[category]))
    figures.append(figure(SCENARIO, "all invalid manifests refused naming the field",
                          ">= 30, all", f"{sum(named.values())}/{len(outcomes)}",
                          len(outcomes) >= 30 and sum(named.values()) == len(outcomes)))
    return figures
