"""The spec model: tutorial defaults, errors that name the field, a faithful wire form."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workload.spec import (
    SpecError,
    StreamingTrainingJobSpec,
    dump_spec,
    load_job_file,
    parse_spec,
)

MINIMAL: dict[str, Any] = {"kafka": {"bootstrapServers": "127.0.0.1:9092"}, "train": {"topic": "susy-train"},
    "evaluate": {"topic": "susy-test"}}


def with_(**sections: Any) -> dict[str, Any]:
    return {**MINIMAL, **sections}


def test_defaults_reproduce_the_tutorial() -> None:
    spec = parse_spec(MINIMAL)
    assert spec.train is not None and spec.evaluate is not None
    assert (spec.train.topic, spec.train.epochs, spec.train.batch_size, spec.train.shuffle_buffer) == (
        "susy-train", 10, 64, 64)
    assert (spec.evaluate.topic, spec.evaluate.consumer_group, spec.evaluate.stream_timeout_ms) == (
        "susy-test", "testcg", 10000)
    assert [layer.dense or layer.dropout for layer in spec.model.layers] == [128, 0.2, 256, 0.4, 128, 0.4]
    assert spec.data.label == "key" and len(spec.data.feature_names) == 18
    assert spec.phases == ["train", "evaluate"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"kafka": {}}, "spec.kafka: set exactly one of clusterRef and bootstrapServers"),
        ({"kafka": {"bootstrapServers": "a:1", "clusterRef": {"name": "c"}}}, "spec.kafka: set exactly one"),
        ({"kafka": {"bootstrapServers": "no-port"}}, "spec.kafka.bootstrapServers: must be a "
         "comma-separated list of host:port, each port 1-65535"),
        (with_(kafka={"bootstrapServers": "k:99999"}), "spec.kafka.bootstrapServers: must be"),
        (with_(kafka={"bootstrapServers": "a:9092,b:0"}), "spec.kafka.bootstrapServers: must be"),
        (with_(kafka={"bootstrapServers": "a:65536"}), "spec.kafka.bootstrapServers: must be"),
        (with_(train={"topic": "ux train!"}), "spec.train.topic: must be a Kafka topic name: "
         "letters, digits, '.', '_' and '-' only, and not '.' or '..' alone"),
        (with_(evaluate={"topic": ".."}), "spec.evaluate.topic: must be a Kafka topic name"),
        (with_(data={"deadLetterTopic": "bad/letters"}), "spec.data.deadLetterTopic: must be a "
         "Kafka topic name"),
        (with_(model={"output": {"path": "models/x"}}), "spec.model.output.path: must be an "
         "absolute folder without '..' segments (the pods mount the model volume there)"),
        (with_(model={"output": {"path": "/models/../etc"}}), "spec.model.output.path: must be"),
        (with_(model={"output": {"path": "/models/.."}}), "spec.model.output.path: must be"),
        (with_(model={"output": {"path": "s3://bucket/m"}}), "spec.model.output.path: must be"),
        (with_(train={"epochs": 0}), "spec.train.epochs: Input should be greater than or equal to 1"),
        (with_(train={"batchSize": "big"}), "spec.train.batchSize"),
        (with_(evaluate={"streamTimeoutMs": -2}), "spec.evaluate.streamTimeoutMs"),
        (with_(model={"layers": [{"dense": 8, "dropout": 0.1}]}), "spec.model.layers.0: a layer sets exactly one"),
        (with_(model={"layers": [{"dropout": 1.5}]}), "spec.model.layers.0.dropout"),
        (with_(model={"optimizer": "adamw2"}), "spec.model.optimizer"),
        (with_(data={"label": "class"}), "spec.data.label: label must be 'key' or one of columns"),
        (with_(data={"format": "json"}), "format json needs columns"),
        (with_(data={"format": "json", "columns": ["e.p.x", "e.p", "y"], "label": "y"}),
         "spec.data.columns: column 'e.p' is also the path of other columns"),
        (with_(data={"maxBadRecordsRatio": 2}), "spec.data.maxBadRecordsRatio"),
        (with_(runPolicy={"backoffLimit": -1}), "spec.runPolicy.backoffLimit"),
        (with_(model={"source": {"job": "a"}, "factory": "team.models:build"}),
         "spec.model.source: model.source with train is the starting point of training"),
        ({"kafka": {"bootstrapServers": "a:1"}, "evaluate": {"topic": "susy-test"}, "model": {"source": {}}},
         "spec.model.source: set exactly one of job and path"),
        ({"kafka": {"bootstrapServers": "a:1"}, "evaluate": {"topic": "susy-test"}, "model": {"source": {"path": "x"}}},
         "spec.model.source.volumeClaim: path and volumeClaim go together"),
        ({"kafka": {"bootstrapServers": "a:1"}, "evaluate": {"topic": "susy-test"},
          "model": {"source": {"path": "/abs", "volumeClaim": "c"}}}, "spec.model.source.path"),
        ({"kafka": {"bootstrapServers": "a:1"}}, "set at least one of train, evaluate, online and serve"),
        (with_(unknownField=1), "spec.unknownField: Extra inputs are not permitted"),
        (with_(trainer={"replicas": 101}), "spec.trainer.replicas"),
        (with_(evaluator={"replicas": 0}), "spec.evaluator.replicas"),
        (with_(online={"topic": "more"}, trainer={"replicas": 2}),
         "spec.trainer.replicas: online learning runs one learner: trainer.replicas must be 1 "
         "when online is set (averaging the parameters of several learners is not built)"),
        ({"kafka": {"bootstrapServers": "a:1", "config": {"sasl.password": "x"}}},
         "spec.kafka.config: credentials never go in the spec"),
        ({"kafka": {"bootstrapServers": "a:1", "config": {"enable.auto.commit": "true"}}},
         "spec.kafka.config: streamtrain sets the other librdkafka settings itself"),
        (with_(model={"task": "ranking"}), "spec.model.task"),
        (with_(model={"classes": ["a", "b"]}), "spec.model.classes: classes belong to task multiclass"),
        (with_(model={"task": "multiclass", "classes": ["a"]}), "spec.model.classes"),
        (with_(model={"task": "multiclass", "classes": ["a", "a"]}), "spec.model.classes"),
        (with_(model={"loss": "huber"}), "spec.model.loss: loss chooses between mse and huber"),
        (with_(data={"categorical": ["f1"]}), "spec.data.categorical: categorical names columns"),
        (with_(data={"columns": ["a", "y"], "label": "y", "categorical": ["y"]}),
         "spec.data.categorical: categorical names columns (other than the label)"),
        (with_(model={"factory": "teams.models"}), "spec.model.factory"),
        ({"kafka": {"bootstrapServers": "a:1"}, "evaluate": {"topic": "t"},
          "model": {"factory": "teams.models:build"}}, "spec.model: the user's own model"),
    ],
)
def test_invalid_specs_are_rejected_with_the_field_named(document: dict[str, Any], expected: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(document)
    assert expected in str(raised.value)


@pytest.mark.parametrize("servers", ["k:1", "k:65535", "a:9092,b.example.com:19092",
                                     "[::1]:9092", "10.0.0.1:9093"])
def test_bootstrap_lists_with_ports_1_to_65535_are_accepted(servers: str) -> None:
    assert parse_spec(with_(kafka={"bootstrapServers": servers})).kafka.bootstrap_servers == servers


@pytest.mark.parametrize("path", ["/models/susy", "/m", "/models/..hidden/x", "/a/b..c/"])
def test_absolute_output_paths_without_dot_dot_segments_are_accepted(path: str) -> None:
    assert parse_spec(with_(model={"output": {"path": path}})).model.output.path == path


def test_a_manifest_of_another_kind_or_version_is_refused() -> None:
    with pytest.raises(SpecError, match="no StreamingTrainingJob document"):
        load_job_file("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(SpecError, match=r"apiVersion: expected streamtrain\.dev/v1alpha1"):
        load_job_file("apiVersion: streamtrain.dev/v2\nkind: StreamingTrainingJob\n"
                      "metadata: {name: x}\nspec: {}\n")


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=30)


@given(
    epochs=st.integers(1, 10000),
    batch_size=st.integers(1, 1 << 20),
    topic=names,
    group=names,
    timeout=st.integers(-1, 10**7),
    layers=st.lists(st.one_of(
        st.builds(lambda units: {"dense": units}, st.integers(1, 65536)),
        st.builds(lambda rate: {"dropout": rate}, st.floats(0.0, 0.99)),
    ), min_size=1, max_size=8),
    ratio=st.floats(0.0, 1.0),
)
def test_the_wire_form_parses_back_to_the_same_spec(
    epochs: int, batch_size: int, topic: str, group: str, timeout: int,
    layers: list[dict[str, Any]], ratio: float,
) -> None:
    spec = parse_spec(with_(
        train={"topic": topic, "epochs": epochs, "batchSize": batch_size},
        evaluate={"topic": topic, "consumerGroup": group, "streamTimeoutMs": timeout},
        online={"topic": topic, "consumerGroup": group, "streamTimeoutMs": timeout},
        model={"layers": layers},
        data={"maxBadRecordsRatio": ratio},
    ))
    assert parse_spec(dump_spec(spec)) == spec


@given(st.dictionaries(st.text(max_size=12), st.one_of(st.integers(), st.text(max_size=5), st.none()),
                       max_size=4))
def test_arbitrary_sections_either_parse_or_raise_a_spec_error(section: dict[str, Any]) -> None:
    for key in ("train", "evaluate", "data", "model", "runPolicy"):
        try:
            parsed = parse_spec(with_(**{key: section}))
        except SpecError as error:
            assert str(error).startswith("spec.")
        else:
            assert isinstance(parsed, StreamingTrainingJobSpec)


def test_phases_after_train_need_a_claim_in_a_cluster_but_not_in_one_process() -> None:
    unshared = {"kafka": {"bootstrapServers": "k:1"}, "train": {"topic": "a"},
                "evaluate": {"topic": "b"}}
    parse_spec(unshared)  # a local run: every phase in one process, one folder
    with pytest.raises(SpecError, match=r"^spec\.model\.output\.volumeClaim: required when"):
        parse_spec(unshared, in_cluster=True)
    for fine in ({**unshared, "model": {"output": {"volumeClaim": "models"}}},
                 {**unshared, "evaluate": None}):
        parse_spec(fine, in_cluster=True)


def test_several_evaluators_share_a_claim_in_a_cluster() -> None:
    several = {"kafka": {"bootstrapServers": "k:1"}, "evaluate": {"topic": "b"},
               "model": {"source": {"job": "other"}}, "evaluator": {"replicas": 2}}
    parse_spec(several)  # a local run: the processes share the output folder
    with pytest.raises(SpecError, match=r"^spec\.model\.output\.volumeClaim: required when "
                                        "evaluator.replicas is above 1"):
        parse_spec(several, in_cluster=True)
    parse_spec({**several, "model": {"source": {"job": "other"},
                                     "output": {"volumeClaim": "models"}}}, in_cluster=True)
    parse_spec({**several, "evaluator": {"replicas": 1}}, in_cluster=True)


def test_a_multiclass_job_learning_online_from_nothing_names_its_classes_in_a_cluster() -> None:
    online = {"kafka": {"bootstrapServers": "a:1"}, "online": {"topic": "t"},
              "model": {"task": "multiclass"}}
    with pytest.raises(SpecError, match="must name its classes"):
        parse_spec(online, in_cluster=True)
    assert parse_spec(online).model.task == "multiclass"  # locally its folder may hold a model
    named = parse_spec({**online, "model": {"task": "multiclass", "classes": ["a", "b"]}},
                       in_cluster=True)
    assert named.model.classes == ["a", "b"]


def test_categorical_fields_split_the_features_in_record_order() -> None:
    data = parse_spec(with_(data={"columns": ["a", "city", "b", "y"], "label": "y",
                                  "categorical": ["city"]})).data
    assert data.numeric_names == ["a", "b"] and data.categorical_names == ["city"]
