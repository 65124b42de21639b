"""One source of spec validity: the pydantic model and the real API server agree on every spec.

Hypothesis writes valid spec documents, varied within what is valid (odd
topic names, both Kafka addresses, ports at both ends of their range, JSON
records, output folders), and breaks one rule in two of three of them (a
phase without a topic, names Kafka refuses, both or neither Kafka address,
a port out of range, credentials and unknown keys in `kafka.config`, labels
that are not a column, duplicate columns, layers of both kinds, a
multi-phase job without a model volume, an output folder that is relative
or climbs with `..`, blank consumer groups, several learners online,
several evaluators without a model volume, serving into the topic it reads,
serving that stops when idle, classes or a loss of another task, a
multiclass job with nothing to learn its classes from, categorical fields
that are not columns, a user's model factory without training). Each is
judged by `parse_spec` as the operator calls it and by a
server-side dry run against the generated CRD; the verdicts must be the
same.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Kube, KubeCluster
from tests.e2e.harness import install_streamtrain_crd
from workload.contract import MODES
from workload.spec import API_GROUP, API_VERSION, KIND, PLURAL, SpecError, parse_spec

TOPICS = st.sampled_from(["susy-train", "a.b_c-9", "...", "x" * 249])
"""Names Kafka accepts, the odd ones included."""

ADDRESSES = st.sampled_from([{"bootstrapServers": "kafka:9092"}, {"bootstrapServers": "a:1,b:2"},
                             {"bootstrapServers": "b-0.kafka.svc:65535"},
                             {"clusterRef": {"name": "my-cluster", "listener": "tls"}}])
CONFIGS = st.dictionaries(st.sampled_from(["session.timeout.ms", "fetch.max.bytes", "debug"]),
                          st.just("1"), max_size=2)
DATA = st.one_of(
    st.just({}),
    st.builds(lambda columns, label, json: {"columns": columns, "label": label,
                                            **({"format": "json"} if json else {})},
              st.just(["a", "b", "y"]), st.sampled_from(["key", "y"]), st.booleans()))
LAYERS = st.lists(st.one_of(st.builds(lambda units: {"dense": units}, st.integers(1, 8)),
                            st.just({"dense": 4, "activation": "tanh"}),
                            st.just({"dropout": 0.2})), min_size=1, max_size=3)
OUTPUTS = st.sampled_from([{"path": "/models/m", "volumeClaim": "models"},
                           {"path": "/m/..x/y", "volumeClaim": "models"},
                           {"volumeClaim": "models"}])
PHASES = st.sets(st.sampled_from(MODES), min_size=1)
TASKS = st.sampled_from([{}, {"task": "regression"}, {"task": "regression", "loss": "huber"},
                         {"task": "multiclass", "classes": ["cat", "dog", "0"]}])


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A spec every rule accepts, varied within what is valid."""
    spec: dict[str, Any] = {"kafka": {**draw(ADDRESSES), "config": draw(CONFIGS)},
                            "data": draw(DATA),
                            "model": {"layers": draw(LAYERS), "output": draw(OUTPUTS)}}
    for mode in draw(PHASES):
        spec[mode] = _section(mode, draw(TOPICS))
    if "train" in spec:
        spec["train"]["epochs"] = draw(st.integers(1, 3))
    spec["model"].update(draw(TASKS))
    return spec


def _section(mode: str, topic: str) -> dict[str, Any]:
    """A mode's section with its topic (serving reads one topic and writes another)."""
    if mode == "serve":
        return {"inputTopic": topic, "outputTopic": f"{topic[:240]}-out"}
    return {"topic": topic}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets `path` (dotted; `None` deletes it), creating sections on the way."""
    def mutate(spec: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = spec
        for part in parents:
            target = target.setdefault(part, _section(part, "t") if part in MODES else {})
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return mutate


def _config(key: str) -> Callable[[dict[str, Any]], None]:
    """A mutation that adds a librdkafka setting (its name holds dots) to `kafka.config`."""
    return lambda spec: spec["kafka"]["config"].update({key: "x"})


def _unshared(spec: dict[str, Any]) -> None:
    spec.update(train={"topic": "t"}, evaluate={"topic": "e"})
    spec["model"]["output"] = {"path": "/models/m"}


def _no_phase(spec: dict[str, Any]) -> None:
    for mode in MODES:
        spec.pop(mode, None)


MUTATIONS: list[Callable[[dict[str, Any]], None]] = [
    _no_phase, _unshared,
    _set("train.topic", None), _set("evaluate.topic", "."), _set("online.topic", ".."),
    _set("train.topic", "ux train!"), _set("evaluate.topic", "x" * 250), _set("online.topic", ""),
    _set("evaluate.consumerGroup", " "), _set("online.consumerGroup", ""),
    _set("train.epochs", 0),
    _set("kafka.clusterRef", {"name": "c"}), _set("kafka.bootstrapServers", "no-port"),
    _set("kafka.bootstrapServers", "kafka:99999"), _set("kafka.bootstrapServers", "a:1,b:0"),
    _set("data.deadLetterTopic", "bad/letters"),
    _set("model.output.path", "models/x"), _set("model.output.path", "/models/../etc"),
    _config("sasl.password"), _config("group.id"),
    _set("data.columns", ["a", "a", "y"]), _set("data.label", "z"),
    _set("data", {"format": "json"}),
    _set("model.layers", [{"dense": 4, "dropout": 0.1}]),
    _set("model.layers", [{"dropout": 0.1, "activation": "relu"}]),
    _set("trainer.replicas", 2), _set("evaluator.replicas", 3),
    _set("serve.outputTopic", "t"), _set("serve.maxLatencyMs", 0),
    _set("serve.streamTimeoutMs", 5000), _set("serve.replicas", 101),
    _set("data.deadLetterTopic", "t-out"),
    _set("model.task", "multiclass"), _set("model.classes", ["a", "b"]),
    _set("model.classes", ["a", "a"]), _set("model.loss", "huber"),
    _set("data.categorical", ["a"]), _set("data.categorical", ["y"]),
    _set("model.factory", "teams.models:build"), _set("model.factory", "not a function"),
]
"""Each breaks one rule of a valid spec (a few break it only in some specs)."""


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid spec, with one rule broken two times in three."""
    spec = draw(valid_specs())
    mutation = draw(st.one_of(st.none(), st.sampled_from(MUTATIONS)))
    if mutation is not None:
        mutation(spec)
    return spec


def _pydantic_accepts(spec: dict[str, Any]) -> bool:
    try:
        parse_spec(spec, in_cluster=True)
    except SpecError:
        return False
    return True


def _server_accepts(custom: Any, namespace: str, spec: dict[str, Any]) -> tuple[bool, str]:
    body = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND,
            "metadata": {"name": "parity"}, "spec": spec}
    try:
        custom.create_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, body,
                                               dry_run="All", field_validation="Strict")
    except kubernetes.client.ApiException as error:
        if error.status != 422:
            raise
        return False, str(json.loads(error.body or "{}").get("message"))
    return True, "accepted"


@pytest.fixture
def custom(kube: Kube, kube_cluster: KubeCluster) -> Any:
    install_streamtrain_crd(kube_cluster.api)
    return kubernetes.client.CustomObjectsApi(kube_cluster.api)


def test_pydantic_and_the_api_server_agree_on_every_generated_spec(custom: Any, kube: Kube) -> None:
    verdicts: list[bool] = []

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(specs())
    def agree(spec: dict[str, Any]) -> None:
        server, message = _server_accepts(custom, kube.namespace, spec)
        assert _pydantic_accepts(spec) == server, f"{spec}\nAPI server: {message}"
        verdicts.append(server)

    agree()
    # Both verdicts occur often enough for the agreement to mean something.
    assert 0.1 < sum(verdicts) / len(verdicts) < 0.9, sum(verdicts)
