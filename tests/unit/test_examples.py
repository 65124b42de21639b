"""The numbered examples: one concept each, every job valid for the workload's own spec model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from workload.spec import FOREVER, StreamingTrainingJobSpec, dump_spec, load_job_file, parse_spec

Manifest = dict[str, Any]


def folders(repo_root: Path) -> list[Path]:
    return sorted(path for path in (repo_root / "examples").iterdir() if path.is_dir())


def documents(folder: Path) -> list[Manifest]:
    return [doc for path in sorted(folder.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def job_in(folder: Path) -> tuple[str, StreamingTrainingJobSpec]:
    return load_job_file((folder / "job.yaml").read_text())


def by_kind(folder: Path, kind: str) -> list[Manifest]:
    return [doc for doc in documents(folder) if doc["kind"] == kind]


@pytest.fixture(scope="module")
def examples(repo_root: Path) -> dict[str, Path]:
    """Example folders by number ("02", ...)."""
    return {path.name[:2]: path for path in folders(repo_root)}


def test_it_should_number_examples_uniquely_and_explain_each(repo_root: Path) -> None:
    found = folders(repo_root)
    assert found
    numbers = [path.name[:2] for path in found]
    assert len(set(numbers)) == len(numbers)
    for folder in found:
        assert re.fullmatch(r"\d\d-[a-z0-9-]+", folder.name), folder.name
        assert (folder / "README.md").exists() or folder.name.startswith("01-"), folder
        assert list(folder.glob("*.yaml")), folder


def test_it_should_parse_every_example_job_with_the_spec_model(repo_root: Path) -> None:
    names = []
    for folder in folders(repo_root):
        if (folder / "job.yaml").exists():
            name, spec = job_in(folder)
            names.append(name)
            assert spec.phases, folder
    assert len(names) >= 3
    assert len(set(names)) == len(names), "every example job has its own name"


def test_it_should_create_the_claim_each_job_names_in_its_own_folder(repo_root: Path) -> None:
    named = 0
    for folder in folders(repo_root):
        if (folder / "job.yaml").exists():
            _, spec = job_in(folder)
            parse_spec(dump_spec(spec), in_cluster=True)  # each phase a pod of its own
            wanted = {spec.model.output.volume_claim,
                      spec.model.source.volume_claim if spec.model.source else None} - {None}
            claims = {doc["metadata"]["name"]: doc
                      for doc in by_kind(folder, "PersistentVolumeClaim")}
            assert wanted <= set(claims), f"{folder.name}: kubectl apply -f {folder.name}/"
            for claim in claims.values():
                assert claim["spec"]["resources"]["requests"]["storage"]
                assert "storageClassName" not in claim["spec"]  # the cluster's default class
            named += len(wanted)
    assert named >= 6


def test_it_should_keep_namespaces_out_of_the_examples(repo_root: Path) -> None:
    for folder in folders(repo_root):
        for document in documents(folder):
            assert "namespace" not in document["metadata"], f"{folder.name}: apply with -n"


def test_it_should_reference_a_strimzi_cluster_whose_topics_are_declared(
    examples: dict[str, Path],
) -> None:
    _, spec = job_in(examples["02"])
    assert spec.kafka.cluster_ref is not None and spec.kafka.bootstrap_servers is None
    topics = {doc["metadata"]["name"]: doc for doc in by_kind(examples["02"], "KafkaTopic")}
    assert spec.train is not None and spec.evaluate is not None
    assert set(topics) == {spec.train.topic, spec.evaluate.topic}
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == spec.kafka.cluster_ref.name
    assert topics[spec.train.topic]["spec"]["partitions"] == spec.train.partitions
    assert topics[spec.evaluate.topic]["spec"]["partitions"] == spec.evaluate.partitions


def test_it_should_authenticate_as_a_scram_kafka_user(examples: dict[str, Path]) -> None:
    _, spec = job_in(examples["03"])
    (user,) = by_kind(examples["03"], "KafkaUser")
    assert spec.kafka.user_ref is not None
    assert spec.kafka.user_ref.name == user["metadata"]["name"]
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    assert not any("sasl" in key or "password" in key for key in spec.kafka.config)


def test_it_should_learn_online_forever(examples: dict[str, Path]) -> None:
    _, spec = job_in(examples["04"])
    assert spec.phases == ["online"]
    assert spec.online is not None and spec.online.stream_timeout_ms == FOREVER
    assert spec.model.output.volume_claim, "an endless job keeps its model on a volume"


def test_it_should_offer_the_kafka_cluster_the_other_examples_use(
    examples: dict[str, Path],
) -> None:
    (kafka,) = by_kind(examples["05"], "Kafka")
    (pool,) = by_kind(examples["05"], "KafkaNodePool")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    listeners = {item["name"]: item for item in kafka["spec"]["kafka"]["listeners"]}
    for number in ("02", "03"):
        _, spec = job_in(examples[number])
        assert spec.kafka.cluster_ref is not None
        assert spec.kafka.cluster_ref.name == kafka["metadata"]["name"]
        assert spec.kafka.cluster_ref.listener in listeners
    scram = listeners[job_in(examples["03"])[1].kafka.cluster_ref.listener]  # type: ignore[union-attr]
    assert scram["authentication"]["type"] == "scram-sha-512"
    assert {"topicOperator", "userOperator"} <= set(kafka["spec"]["entityOperator"])
    for number in ("02", "03"):
        for resource in by_kind(examples[number], "KafkaTopic") + by_kind(examples[number],
                                                                           "KafkaUser"):
            assert resource["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]


def test_it_should_evaluate_the_model_of_the_minimal_example(examples: dict[str, Path]) -> None:
    _, spec = job_in(examples["06"])
    trainer, _ = job_in(examples["01"])
    assert spec.phases == ["evaluate"]
    assert spec.model.source is not None and spec.model.source.job == trainer


def test_it_should_train_with_a_group_and_evaluate_with_several(
    examples: dict[str, Path],
) -> None:
    _, spec = job_in(examples["07"])
    assert spec.phases == ["train", "evaluate"]
    assert spec.trainer.replicas > 1 and spec.evaluator.replicas > 1
    assert spec.model.output.volume_claim, "several evaluators share their ledgers on a volume"


def test_it_should_queue_the_kueue_example_in_its_local_queue_with_requests_to_count(
    examples: dict[str, Path],
) -> None:
    _, spec = job_in(examples["08"])
    labels = yaml.safe_load((examples["08"] / "job.yaml").read_text())["metadata"]["labels"]
    (queue,) = by_kind(examples["08"], "LocalQueue")
    (cluster_queue,) = by_kind(examples["08"], "ClusterQueue")
    assert labels["kueue.x-k8s.io/queue-name"] == queue["metadata"]["name"]
    assert queue["spec"]["clusterQueue"] == cluster_queue["metadata"]["name"]
    covered = set(cluster_queue["spec"]["resourceGroups"][0]["coveredResources"])
    for role in (spec.trainer, spec.evaluator):  # Kueue admits by requests
        assert covered <= set(role.resources.requests), role


def test_it_should_read_avro_through_a_schema_registry_with_a_mounted_login(
        examples: dict[str, Path]) -> None:
    from streamtrain_operator.builders import KafkaAccess, build_job_manifest

    from workload.datagen.table import SUSY_COLUMNS

    _, spec = job_in(examples["12"])
    assert spec.data.format == "avro" and spec.data.schema_registry is not None
    assert spec.data.feature_names == [f"event.{name}" for name in SUSY_COLUMNS]
    auth = spec.data.schema_registry.authentication
    assert auth is not None and auth.type == "basic"
    pod = build_job_manifest("susy-avro", "ns", "u", "train", spec,
                             KafkaAccess("k:9092"))["spec"]["template"]["spec"]
    assert {"name": "registry-user", "secret": {"secretName": auth.secret_name}} in pod["volumes"]


def test_it_should_route_tickets_with_categorical_json_fields(examples: dict[str, Path]) -> None:
    _, spec = job_in(examples["09"])
    assert spec.model.task == "multiclass" and spec.data.format == "json"
    assert spec.data.categorical_names == ["channel", "product", "account.country"]
    from workload.datagen.task_families import TICKETS

    assert spec.data == TICKETS.data_spec().model_copy(
        update={"dead_letter_topic": spec.data.dead_letter_topic})


def test_it_should_forecast_a_number_and_learn_it_online(examples: dict[str, Path]) -> None:
    _, spec = job_in(examples["10"])
    assert spec.model.task == "regression" and spec.model.loss == "huber"
    assert spec.phases == ["train", "evaluate", "online"]
    from workload.datagen.task_families import DEMAND

    assert spec.data == DEMAND.data_spec()


def test_it_should_build_the_teams_model_from_its_factory_in_its_image(
        examples: dict[str, Path]) -> None:
    import importlib.util
    import sys

    _, spec = job_in(examples["11"])
    assert spec.model.factory == "team_models:build_router"
    assert spec.trainer.image == spec.evaluator.image and spec.trainer.image is not None
    dockerfile = (examples["11"] / "Dockerfile").read_text().splitlines()
    assert len(dockerfile) == 3 and dockerfile[0].startswith(
        "FROM ghcr.io/streamtrain/streamtrain-workload:")
    assert "team_models.py" in dockerfile[1] and dockerfile[2].startswith("ENV PYTHONPATH=")

    from workload.model.profile import TaskFacts
    from workload.model.user import check_shapes, model_request, prepared_width

    loaded = importlib.util.spec_from_file_location("team_models",
                                                    examples["11"] / "team_models.py")
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    sys.modules["team_models"] = module
    try:
        loaded.loader.exec_module(module)
        request = model_request(spec.data, TaskFacts("multiclass", tuple("abcdef")),
                                prepared_width(spec.data))
        assert request.input_width == 3 + 3 * 32
        check_shapes(module.build_router(request), request, "team_models:build_router")
    finally:
        del sys.modules["team_models"]
