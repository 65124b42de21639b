"""Child Job manifests built from the spec, without a cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from streamtrain_operator.builders import (
    SOURCE_PATH,
    ClaimFolder,
    KafkaAccess,
    PodDefaults,
    build_job_manifest,
    build_service_manifest,
    child_job_name,
)
from streamtrain_operator.kueue import PRIORITY_CLASS_LABEL, QUEUE_LABEL, queue_labels

from workload.contract import (
    BOOTSTRAP_ENV,
    CLUSTER_CA_PATH,
    CREDENTIALS_ENV,
    CREDENTIALS_PATH,
    EXIT_FAILED,
    JOB_SPEC_ENV,
    JOB_UID_ENV,
    MODEL_FILE_ENV,
    MODEL_FILE_PATH,
    MODEL_SOURCE_ENV,
    OUTPUT_URI_ENV,
    PEER_LOST_EXIT,
    PERMANENT_FAILURES,
    PROGRESS_CA_CONFIGMAP,
    PROGRESS_CA_ENV,
    PROGRESS_CA_FILE,
    PROGRESS_CA_KEY,
    PROGRESS_TOKEN_DIR,
    PROGRESS_TOKEN_ENV,
    PROGRESS_URL_ENV,
    REGISTRY_CA_ENV,
    REGISTRY_CA_PATH,
    REGISTRY_CREDENTIALS_ENV,
    REGISTRY_CREDENTIALS_PATH,
    WORKER_PORT,
    WORKERS_ENV,
    progress_audience,
)
from workload.kafka.connection import connection_for
from workload.spec import MAX_REPLICAS, dump_spec, parse_spec

SPEC = parse_spec({
    "kafka": {"bootstrapServers": "kafka:9092"}, "train": {"topic": "susy-train"}, "evaluate": {"topic": "susy-test"},
    "trainer": {"resources": {"requests": {"cpu": 1, "memory": "2Gi"}}},
    "runPolicy": {"backoffLimit": 2, "activeDeadlineSeconds": 600},
    "model": {"output": {"path": "/models/susy", "volumeClaim": "models"}},
})


def _env(manifest: dict[str, Any]) -> dict[str, str]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] for item in container["env"]}


def test_child_names_are_deterministic_and_fit_63_characters() -> None:
    assert child_job_name("susy", "train") == "susy-train"
    long_a, long_b = "a" * 70, "a" * 69 + "b"
    assert len(child_job_name(long_a, "evaluate")) == 60  # room for a pod's `-<index>`
    assert child_job_name(long_a, "evaluate").endswith("-evaluate")
    assert child_job_name(long_a, "evaluate") != child_job_name(long_b, "evaluate")
    assert child_job_name(long_a, "train") == child_job_name(long_a, "train")


def test_job_is_owned_by_the_streaming_training_job() -> None:
    job = build_job_manifest("susy", "ns", "uid-1", "train", SPEC, KafkaAccess("k:9092"))
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "StreamingTrainingJob", "susy", "uid-1", True)
    assert job["metadata"]["namespace"] == "ns"
    assert job["metadata"]["labels"]["streamtrain.dev/mode"] == "train"


def test_run_policy_maps_onto_the_job() -> None:
    job = build_job_manifest("susy", "ns", "u", "train", SPEC, KafkaAccess("k:9092"))
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["suspend"] is False
    suspended = build_job_manifest("susy", "ns", "u", "train", SPEC, KafkaAccess("k:9092"),
                                   suspend=True)
    assert suspended["spec"]["suspend"] is True


def test_a_queued_job_gets_kueues_labels_and_is_created_suspended() -> None:
    labels = queue_labels({QUEUE_LABEL: "team-a", PRIORITY_CLASS_LABEL: "high", "team": "x"})
    assert labels == {QUEUE_LABEL: "team-a", PRIORITY_CLASS_LABEL: "high"}
    job = build_job_manifest("susy", "ns", "u", "train", SPEC, KafkaAccess("k:9092"),
                             suspend=False, queue=labels)
    assert job["spec"]["suspend"] is True  # Kueue resumes it once admitted
    assert {key: job["metadata"]["labels"][key] for key in labels} == labels
    assert QUEUE_LABEL not in job["spec"]["template"]["metadata"]["labels"]
    group = parse_spec({**dump_spec(SPEC), "trainer": {"replicas": 3, "resources": {
        "requests": {"cpu": "500m"}}}})
    indexed = build_job_manifest("susy", "ns", "u", "train", group, KafkaAccess("k:9092"),
                                 queue=labels)
    # One Job of three pods: one Kueue Workload, admitted whole or not at all.
    assert (indexed["spec"]["parallelism"], indexed["spec"]["completions"]) == (3, 3)
    assert indexed["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "500m"}}


def test_a_job_without_a_queue_label_gets_no_kueue_label() -> None:
    assert queue_labels({"team": "x"}) == {}
    assert queue_labels({PRIORITY_CLASS_LABEL: "high"}) == {}  # a priority without a queue
    assert queue_labels(None) == {}
    job = build_job_manifest("susy", "ns", "u", "train", SPEC, KafkaAccess("k:9092"),
                             queue=queue_labels({"team": "x"}))
    assert job["spec"]["suspend"] is False
    assert not any(key.startswith("kueue.x-k8s.io/") for key in job["metadata"]["labels"])


def test_pod_is_restricted_with_writable_scratch_and_model_volume() -> None:
    job = build_job_manifest("susy", "ns", "u", "evaluate", SPEC, KafkaAccess("k:9092"))
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert mounts == {"/tmp": "scratch", "/models/susy": "model"}
    assert {"name": "model", "persistentVolumeClaim": {"claimName": "models"}} in pod["volumes"]
    assert {"name": "model", "mountPath": "/models/susy", "subPath": "ns/susy/u"} in container[
        "volumeMounts"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["command"] == ["streamtrain", "run-mode", "evaluate"]
    assert pod["restartPolicy"] == "Never"


def test_trainer_resources_are_quantities_and_evaluator_has_none() -> None:
    train = build_job_manifest("susy", "ns", "u", "train", SPEC, KafkaAccess("k:9092"))
    evaluate = build_job_manifest("susy", "ns", "u", "evaluate", SPEC, KafkaAccess("k:9092"))
    assert train["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"}}
    assert evaluate["spec"]["template"]["spec"]["containers"][0]["resources"] == {}


def test_pod_gets_the_spec_and_the_resolved_address_the_workload_reads() -> None:
    job = build_job_manifest("susy", "ns", "u", "train", SPEC, KafkaAccess("broker:9093"))
    env = _env(job)
    assert parse_spec(json.loads(env[JOB_SPEC_ENV])) == SPEC
    assert connection_for(SPEC.kafka, env).bootstrap_servers == "broker:9093"
    assert env[BOOTSTRAP_ENV] == "broker:9093"


def test_each_job_writes_its_own_folder_of_the_claim_and_knows_its_uid() -> None:
    first = build_job_manifest("a", "ns", "uid-1", "train", SPEC, KafkaAccess("k:9092"))
    second = build_job_manifest("b", "ns", "uid-2", "train", SPEC, KafkaAccess("k:9092"))
    folders = [next(m for m in job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
                    if m["name"] == "model")["subPath"] for job in (first, second)]
    assert folders == ["ns/a/uid-1", "ns/b/uid-2"]
    assert _env(first)[JOB_UID_ENV] == "uid-1"
    assert _env(first)[OUTPUT_URI_ENV] == "pvc://models/ns/a/uid-1"
    assert MODEL_SOURCE_ENV not in _env(first)


def _mounts(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"])


def test_a_source_model_is_mounted_read_only_from_its_own_folder() -> None:
    evaluate_only = parse_spec({
        "kafka": {"bootstrapServers": "k:9092"}, "evaluate": {"topic": "susy-test"},
        "model": {"output": {"path": "/models/b", "volumeClaim": "models"},
                  "source": {"job": "a"}}})
    same_claim = build_job_manifest("b", "ns", "u", "evaluate", evaluate_only,
                                    KafkaAccess("k:9092"),
                                    source=ClaimFolder("models", "ns/a/uid-a"))
    assert {"name": "model", "mountPath": SOURCE_PATH, "subPath": "ns/a/uid-a",
            "readOnly": True} in _mounts(same_claim)
    assert len(same_claim["spec"]["template"]["spec"]["volumes"]) == 2  # scratch, one claim
    assert _env(same_claim)[MODEL_SOURCE_ENV] == SOURCE_PATH

    other_claim = build_job_manifest("b", "ns", "u", "evaluate", evaluate_only,
                                     KafkaAccess("k:9092"),
                                     source=ClaimFolder("archive", "susy/v1"))
    assert {"name": "source", "mountPath": SOURCE_PATH, "subPath": "susy/v1",
            "readOnly": True} in _mounts(other_claim)
    assert {"name": "source", "persistentVolumeClaim": {"claimName": "archive",
                                                        "readOnly": True}} in other_claim[
        "spec"]["template"]["spec"]["volumes"]


def test_kafka_user_and_cluster_ca_secrets_are_mounted() -> None:
    access = KafkaAccess("b:9093", user_secret="trainer", username="trainer",
                         cluster_ca_secret="my-cluster-cluster-ca-cert")
    job = build_job_manifest("susy", "ns", "u", "train", SPEC, access)
    pod = job["spec"]["template"]["spec"]
    secrets = {volume["secret"]["secretName"] for volume in pod["volumes"] if "secret" in volume}
    assert secrets == {"trainer", "my-cluster-cluster-ca-cert"}
    mounts = {mount["mountPath"] for mount in pod["containers"][0]["volumeMounts"]}
    assert {CREDENTIALS_PATH, CLUSTER_CA_PATH} <= mounts
    assert _env(job)[CREDENTIALS_ENV] == CREDENTIALS_PATH


def test_schema_registry_credentials_and_ca_secrets_are_mounted_not_copied() -> None:
    spec = parse_spec({**dump_spec(SPEC), "data": {
        "format": "avro", "columns": ["x", "label"], "label": "label",
        "schemaRegistry": {"url": "https://registry:8443/apis/ccompat/v7",
                           "authentication": {"type": "tls", "secretName": "trainer"},
                           "caSecretName": "registry-ca"}}})
    job = build_job_manifest("susy", "ns", "u", "train", spec, KafkaAccess("k:9092"))
    pod = job["spec"]["template"]["spec"]
    assert {"name": "registry-user", "secret": {"secretName": "trainer"}} in pod["volumes"]
    assert {"name": "registry-ca", "secret": {"secretName": "registry-ca"}} in pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "registry-user", "mountPath": REGISTRY_CREDENTIALS_PATH,
            "readOnly": True} in mounts
    assert {"name": "registry-ca", "mountPath": REGISTRY_CA_PATH, "readOnly": True} in mounts
    env = _env(job)
    assert env[REGISTRY_CREDENTIALS_ENV] == REGISTRY_CREDENTIALS_PATH
    assert env[REGISTRY_CA_ENV] == REGISTRY_CA_PATH
    assert not any("valueFrom" in item for item in pod["containers"][0]["env"])
    plain = build_job_manifest("susy", "ns", "u", "train", SPEC, KafkaAccess("k:9092"))
    assert REGISTRY_CREDENTIALS_ENV not in _env(plain)


def test_model_output_without_claim_is_an_empty_dir() -> None:
    spec = parse_spec({"kafka": {"bootstrapServers": "kafka:9092"}, "train": {"topic": "susy-train"},
        "evaluate": {"topic": "susy-test"}})
    job = build_job_manifest("susy", "ns", "u", "train", spec, KafkaAccess("k:9092"))
    assert {"name": "model", "emptyDir": {}} in job["spec"]["template"]["spec"]["volumes"]


def test_operator_package_never_imports_tensorflow() -> None:
    probe = ("import sys, streamtrain_operator.main, streamtrain_operator.crd; "
             "sys.exit(1 if 'tensorflow' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", probe], check=False, timeout=60).returncode == 0


def test_the_workload_image_is_the_operators_unless_the_job_names_one() -> None:
    defaults = PodDefaults("mirror.example/streamtrain-workload:1.2", "Always")
    job = build_job_manifest("susy", "ns", "u", "train", SPEC, KafkaAccess("k:9092"),
                             defaults=defaults)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["imagePullPolicy"]) == (
        "mirror.example/streamtrain-workload:1.2", "Always")
    own = parse_spec({**dump_spec(SPEC), "evaluator": {"image": "mine:1", "imagePullPolicy": "Never"}})
    evaluator = build_job_manifest("susy", "ns", "u", "evaluate", own, KafkaAccess("k:9092"),
                                   defaults=defaults)["spec"]["template"]["spec"]["containers"][0]
    assert (evaluator["image"], evaluator["imagePullPolicy"]) == ("mine:1", "Never")


def test_pods_get_a_job_scoped_progress_token_and_no_api_token() -> None:
    defaults = PodDefaults(progress_url="https://operator.system.svc:8081/")
    job = build_job_manifest("susy", "ns", "uid-7", "train", SPEC, KafkaAccess("k:9092"),
                             defaults=defaults)
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    projected = next(v for v in pod["volumes"] if v["name"] == "progress-token")["projected"]
    token = projected["sources"][0]["serviceAccountToken"]
    assert token["audience"] == progress_audience("ns", "susy", "uid-7")
    assert token["audience"] == "streamtrain.dev/progress/ns/susy/uid-7"
    env = _env(job)
    assert env[PROGRESS_URL_ENV] == "https://operator.system.svc:8081/progress/ns/susy"
    assert env[PROGRESS_TOKEN_ENV].startswith(PROGRESS_TOKEN_DIR)
    # The endpoint's CA, published by the operator, beside the token; optional: never waited for.
    assert projected["sources"][1] == {"configMap": {
        "name": PROGRESS_CA_CONFIGMAP, "optional": True,
        "items": [{"key": PROGRESS_CA_KEY, "path": PROGRESS_CA_FILE}]}}
    assert env[PROGRESS_CA_ENV] == f"{PROGRESS_TOKEN_DIR}/{PROGRESS_CA_FILE}"
    assert "progress-token" not in str(build_job_manifest(
        "susy", "ns", "u", "train", SPEC, KafkaAccess("k:9092")))  # no URL, no channel


def test_a_pod_that_fails_for_good_fails_the_job_without_retries_and_a_crash_is_retried() -> None:
    job = build_job_manifest("susy", "ns", "u", "evaluate", SPEC, KafkaAccess("k:9092"))
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules == [{"action": "FailJob", "onExitCodes": {
        "containerName": "evaluate", "operator": "In", "values": [2, 3, 4, 5, 6, 7, 8, 9]}}]
    fail_job = set(rules[0]["onExitCodes"]["values"])
    assert {row.exit_code for row in PERMANENT_FAILURES} == fail_job
    # A failure, a crash, an OOM kill or SIGTERM: counted against backoffLimit and retried.
    assert not fail_job & {EXIT_FAILED, 120, 137, 143}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"  # podFailurePolicy's need


GROUP_SPEC = parse_spec({
    "kafka": {"bootstrapServers": "kafka:9092"}, "train": {"topic": "susy-train"},
    "evaluate": {"topic": "susy-test"}, "trainer": {"replicas": 3}, "evaluator": {"replicas": 2},
    "model": {"output": {"path": "/models/susy", "volumeClaim": "models"}},
})


def test_a_training_group_is_an_indexed_job_whose_workers_know_each_other() -> None:
    job = build_job_manifest("susy", "ns", "uid", "train", GROUP_SPEC, KafkaAccess("k:9092"))
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert pod["subdomain"] == "susy-train"
    assert _env(job)[WORKERS_ENV] == ",".join(
        f"susy-train-{index}.susy-train.ns.svc:{WORKER_PORT}" for index in range(3))
    assert spec["podFailurePolicy"]["rules"][1:] == [{"action": "Ignore", "onExitCodes": {
        "containerName": "train", "operator": "In", "values": [PEER_LOST_EXIT]}}]
    assert spec["backoffLimit"] == GROUP_SPEC.run_policy.backoff_limit


def test_evaluators_are_an_indexed_job_without_addresses_and_one_replica_is_unchanged() -> None:
    job = build_job_manifest("susy", "ns", "uid", "evaluate", GROUP_SPEC, KafkaAccess("k:9092"))
    assert (job["spec"]["completionMode"], job["spec"]["completions"]) == ("Indexed", 2)
    assert len(job["spec"]["podFailurePolicy"]["rules"]) == 1 and WORKERS_ENV not in _env(job)
    assert "subdomain" not in job["spec"]["template"]["spec"]
    single = build_job_manifest("susy", "ns", "uid", "train", SPEC, KafkaAccess("k:9092"))
    assert "completionMode" not in single["spec"]
    assert len(single["spec"]["podFailurePolicy"]["rules"]) == 1  # no peers to ignore
    assert (single["spec"]["completions"], single["spec"]["parallelism"]) == (1, 1)
    assert WORKERS_ENV not in _env(single)


def test_the_headless_service_selects_the_groups_pods_and_is_owned_by_the_job() -> None:
    service = build_service_manifest("susy", "ns", "uid-1", "train")
    job = build_job_manifest("susy", "ns", "uid-1", "train", GROUP_SPEC, KafkaAccess("k:9092"))
    assert service["metadata"]["name"] == job["spec"]["template"]["spec"]["subdomain"]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"]
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [{"name": "worker", "port": WORKER_PORT, "protocol": "TCP"}]
    assert service["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_pod_hostnames_of_the_largest_group_stay_dns_labels() -> None:
    name = child_job_name("a" * 70, "evaluate")
    assert len(f"{name}-{MAX_REPLICAS - 1}") <= 63


def test_the_users_model_file_is_mounted_read_only_in_the_trainer_only() -> None:
    def job(claim: str, path: str) -> Any:
        return parse_spec({
            "kafka": {"bootstrapServers": "k:9092"}, "train": {"topic": "t"},
            "evaluate": {"topic": "e"},
            "model": {"output": {"path": "/models/b", "volumeClaim": "models"},
                      "file": {"volumeClaim": claim, "path": path}}})

    other = build_job_manifest("b", "ns", "u", "train", job("team", "routers/v2.keras"),
                               KafkaAccess("k:9092"))
    assert {"name": "model-file", "mountPath": MODEL_FILE_PATH, "subPath": "routers",
            "readOnly": True} in _mounts(other)
    assert {"name": "model-file", "persistentVolumeClaim": {"claimName": "team",
                                                            "readOnly": True}} in other[
        "spec"]["template"]["spec"]["volumes"]
    assert _env(other)[MODEL_FILE_ENV] == f"{MODEL_FILE_PATH}/v2.keras"

    same = build_job_manifest("b", "ns", "u", "train", job("models", "v2.keras"),
                              KafkaAccess("k:9092"))
    assert {"name": "model", "mountPath": MODEL_FILE_PATH, "readOnly": True} in _mounts(same)
    assert len(same["spec"]["template"]["spec"]["volumes"]) == 2  # scratch, one claim

    evaluator = build_job_manifest("b", "ns", "u", "evaluate", job("team", "v2.keras"),
                                   KafkaAccess("k:9092"))
    assert MODEL_FILE_ENV not in _env(evaluator)
    assert all(mount["mountPath"] != MODEL_FILE_PATH for mount in _mounts(evaluator))
