"""Scenario: invalid StreamingTrainingJob manifests, each refused with the field named.

Every one is refused by the real API server from the CRD's schema and CEL
rules (wrong types, out-of-range sizes, unknown enum values, unknown fields
under strict field validation, rules across fields, a credential or a
setting a job may not set among the Kafka settings, a bootstrap port
outside 1-65535, a phase without its topic or with a name Kafka refuses, a
blank consumer group, a multi-phase job without a model volume, an output
folder that is relative or climbs with `..`, several learners online or
several evaluators without a shared volume, edits that change, add or
remove a section that defines the work). Where a rule has a message of its
own (a topic name, the bootstrap list, the output folder) the refusal must
say it, not a regular expression. A reference to a Kafka that does not exist is not an
error of the manifest (the Kafka may be created later): the operator makes
the job wait with `KafkaReady=False` and a message naming what is missing.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes

from tests.e2e.harness import Jobs, OperatorProcess, eventually, install_streamtrain_crd
from tests.faults.figures import Figure, figure

SCENARIO = "invalid manifests"
VALID: dict[str, Any] = {"kafka": {"bootstrapServers": "kafka:9092"},
                         "train": {"topic": "susy-train"}, "evaluate": {"topic": "susy-test"},
                         "model": {"output": {"volumeClaim": "models"}}}
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
    ("out of range", "spec.trainer.replicas", 101),
    ("out of range", "spec.evaluator.replicas", 0),
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
    ("bad Kafka setting", "spec.kafka.bootstrapServers", "kafka:99999"),
    ("bad Kafka setting", "spec.kafka.bootstrapServers", "kafka:9092,other:0"),
    ("bad Kafka setting", "spec.kafka.config", {"sasl.password": "x"}),
    ("bad Kafka setting", "spec.kafka.config", {"ssl.key.pem": "x"}),
    ("bad Kafka setting", "spec.kafka.config", {"enable.auto.commit": "true"}),
    ("bad Kafka setting", "spec.kafka.config", {"group.id": "other"}),
    ("missing field a phase needs", "spec.train.topic", NOT_SET),
    ("missing field a phase needs", "spec.evaluate.topic", NOT_SET),
    ("missing field a phase needs", "spec.model.output.volumeClaim", NOT_SET),
    ("topic name Kafka refuses", "spec.train.topic", "ux train!"),
    ("topic name Kafka refuses", "spec.train.topic", "."),
    ("topic name Kafka refuses", "spec.evaluate.topic", ".."),
    ("topic name Kafka refuses", "spec.evaluate.topic", "t" * 250),
    ("topic name Kafka refuses", "spec.data.deadLetterTopic", "bad/letters"),
    ("blank consumer group", "spec.evaluate.consumerGroup", ""),
    ("blank consumer group", "spec.evaluate.consumerGroup", "   "),
    ("rule across fields", "spec.data.columns", ["a", "a", "b"]),
    ("output folder a pod cannot use", "spec.model.output.path", "models/x"),
    ("output folder a pod cannot use", "spec.model.output.path", "/models/../etc"),
]

RULE_WORDS: dict[str, str] = {
    "spec.kafka.bootstrapServers": "must be a comma-separated list of host:port, each port 1-65535",
    "spec.train.topic": "must be a Kafka topic name",
    "spec.evaluate.topic": "must be a Kafka topic name",
    "spec.data.deadLetterTopic": "must be a Kafka topic name",
    "spec.model.output.path": "must be an absolute folder without '..' segments",
}
"""A field whose rule has its own message: what its refusal must say (a value too long for the
field is refused for its length, which says so itself)."""

# (category, field the message must name, spec) - specs no single field makes wrong.
WHOLE_SPEC_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("a phase that can never work", "spec.evaluate",
     {"kafka": VALID["kafka"], "evaluate": {"topic": "susy-test"}}),  # no model to score
    ("rule across fields", "spec.model.source",  # two starting points for one training
     {**VALID, "model": {"source": {"job": "elsewhere"}, "factory": "team_models:build"}}),
    ("rule across fields", "spec.trainer.replicas",
     {**VALID, "online": {"topic": "susy-more"}, "trainer": {"replicas": 2}}),
    ("rule across fields", "spec.model.output.volumeClaim",
     {"kafka": VALID["kafka"], "evaluate": VALID["evaluate"], "evaluator": {"replicas": 2},
      "model": {"source": {"job": "trained-elsewhere"}}}),
]

# (field, JSON patch) - each changes, adds or removes a section that defines the work.
IMMUTABLE_EDITS: list[tuple[str, list[dict[str, Any]]]] = [
    ("spec.train", [{"op": "replace", "path": "/spec/train/topic", "value": "elsewhere"}]),
    ("spec.train", [{"op": "remove", "path": "/spec/train"}]),
    ("spec.evaluate", [{"op": "replace", "path": "/spec/evaluate/consumerGroup", "value": "x"}]),
    ("spec.evaluate", [{"op": "remove", "path": "/spec/evaluate"}]),
    ("spec.online", [{"op": "add", "path": "/spec/online", "value": {"topic": "more"}}]),
    ("spec.kafka", [{"op": "replace", "path": "/spec/kafka/bootstrapServers",
                     "value": "other:9092"}]),
    ("spec.data", [{"op": "replace", "path": "/spec/data/features", "value": 4}]),
    ("spec.model", [{"op": "replace", "path": "/spec/model/optimizer", "value": "sgd"}]),
]


def manifest(spec: dict[str, Any], name: str = "invalid") -> dict[str, Any]:
    """A StreamingTrainingJob document."""
    return {"apiVersion": "streamtrain.dev/v1alpha1", "kind": "StreamingTrainingJob",
            "metadata": {"name": name}, "spec": spec}


def with_value(path: str, value: Any) -> dict[str, Any]:
    """`VALID` with the field at `path` (`spec.a.b`, a list index as the last part) set, or
    removed when `value` is `NOT_SET`."""
    spec = copy.deepcopy(VALID)
    parts = path.split(".")[1:]
    parts[-1] = parts[-1].split("[")[0]
    target = spec
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    if value is NOT_SET:
        target.pop(parts[-1], None)
    else:
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
        outcomes.append((category, path, message is not None and path in message
                         and _says_the_rule(path, value, message), message or "accepted"))
    for category, path, spec in WHOLE_SPEC_CASES:
        message = _rejection(jobs, manifest(spec))
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


def _says_the_rule(path: str, value: Any, message: str) -> bool:
    """Whether a refusal of `path` says its rule's own message, where it has one."""
    words = RULE_WORDS.get(path)
    too_long = isinstance(value, str) and "Too long" in message
    return words is None or value is NOT_SET or too_long or (
        words in message and "should match" not in message)


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


def _patch_rejection(jobs: Jobs, name: str, patch: list[dict[str, Any]]) -> str | None:
    try:
        jobs.custom.patch_namespaced_custom_object(
            "streamtrain.dev", "v1alpha1", jobs.namespace, "streamingtrainingjobs", name, patch,
            _content_type="application/json-patch+json")
    except kubernetes.client.ApiException as error:
        return str(json.loads(error.body or "{}").get("message"))
    return None


def _operator_cases(jobs: Jobs, operator: OperatorProcess) -> list[tuple[str, str, bool, str]]:
    jobs.create("unresolved", {**VALID, "kafka": {"clusterRef": {"name": "nowhere"}}})
    waiting = eventually(lambda: _false(jobs.condition("unresolved", "KafkaReady")), 45,
                         "KafkaReady=False on the unresolved job", operator.tail)
    named = "nowhere" in waiting["message"] or "kafka.strimzi.io" in waiting["message"]
    return [("reference to nothing", "spec.kafka.clusterRef",
             named and jobs.phase("unresolved") != "Succeeded" and not jobs.pods(
                 "unresolved-train"),
             f"waits, KafkaReady=False ({waiting['reason']}): {waiting['message']}")]


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
