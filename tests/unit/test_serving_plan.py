"""Serving in the state machine and its Deployment: when it runs, how many pods, what status says."""

from __future__ import annotations

from streamtrain_operator.builders import ClaimFolder, KafkaAccess, build_job_manifest
from streamtrain_operator.deployment import TEMPLATE_DIGEST, build_deployment_manifest
from streamtrain_operator.planner import ChildObservation, KafkaState, SourceState, next_plan
from streamtrain_operator.serving import ServingObservation
from streamtrain_operator.serving_progress import JobServing

from workload.contract import SERVE_REPLICA_ENV
from workload.spec import parse_spec
from workload.status import Metrics, PodReport, ServingStatus, StreamingTrainingJobStatus

SERVE = {"inputTopic": "susy-test", "outputTopic": "susy-predictions", "replicas": 3}
SPEC = parse_spec({"kafka": {"bootstrapServers": "kafka:9092"}, "train": {"topic": "susy-train"},
                   "serve": SERVE, "model": {"output": {"volumeClaim": "models"}}},
                  in_cluster=True)
READY = KafkaState(True, "Resolved", bootstrap_servers="kafka:9092")
NOW = "2026-01-01T00:00:00Z"
TRAINED = ChildObservation(succeeded=1, complete=True,
                           report=PodReport(mode="train", ok=True, metrics=Metrics(),
                                            model_uri="pvc://models/m"))


def _conditions(status: StreamingTrainingJobStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_serving_waits_for_the_trained_model_then_runs_its_replicas_and_the_job_serves() -> None:
    plan = next_plan(SPEC, "susy", 1, StreamingTrainingJobStatus(), {}, READY, NOW)
    assert (plan.status.phase, plan.run, plan.serve_replicas) == ("Training", "train", None)
    assert _conditions(plan.status)["Serving"] == ("False", "WaitingForModel")

    plan = next_plan(SPEC, "susy", 1, plan.status, {"train": TRAINED}, READY, NOW)
    assert (plan.status.phase, plan.run, plan.serve_replicas) == ("Serving", None, 3)
    assert plan.status.serving == ServingStatus(deployment="susy-serve", replicas=3)
    assert plan.status.completion_time is None  # serving runs until the job is deleted
    assert _conditions(plan.status)["Serving"] == ("False", "Starting")

    plan = next_plan(SPEC, "susy", 1, plan.status, {"train": TRAINED}, READY, NOW,
                     serving=ServingObservation(replicas=3, ready=2))
    assert plan.status.serving is not None and plan.status.serving.ready_replicas == 2
    assert _conditions(plan.status)["Serving"] == ("True", "Serving")


def test_serving_runs_beside_online_learning_once_training_is_done() -> None:
    spec = parse_spec({**SPEC.model_dump(by_alias=True, exclude_none=True),
                       "online": {"topic": "susy-online"}}, in_cluster=True)
    plan = next_plan(spec, "susy", 1, StreamingTrainingJobStatus(), {"train": TRAINED}, READY,
                     NOW)
    assert (plan.status.phase, plan.run, plan.serve_replicas) == ("Online", "online", 3)


def test_a_job_serving_another_jobs_model_serves_once_that_model_is_there() -> None:
    spec = parse_spec({"kafka": {"bootstrapServers": "kafka:9092"}, "serve": SERVE,
                       "model": {"source": {"job": "trainer"}}}, in_cluster=True)
    waiting = SourceState(False, "ModelSourceNotReady", "job trainer has not trained yet")
    plan = next_plan(spec, "susy", 1, StreamingTrainingJobStatus(), {}, READY, NOW, waiting)
    assert (plan.status.phase, plan.serve_replicas) == ("Serving", None)
    there = SourceState(True, "Resolved", folder=ClaimFolder("models", "ns/trainer/uid"))
    plan = next_plan(spec, "susy", 1, plan.status, {}, READY, NOW, there)
    assert plan.serve_replicas == 3


def test_suspending_or_failing_scales_serving_to_zero_and_nothing_is_made_before() -> None:
    suspended = parse_spec({**SPEC.model_dump(by_alias=True, exclude_none=True),
                            "runPolicy": {"suspend": True}}, in_cluster=True)
    running = ServingObservation(replicas=3, ready=3)
    plan = next_plan(suspended, "susy", 1, StreamingTrainingJobStatus(), {"train": TRAINED},
                     READY, NOW, serving=running)
    assert (plan.status.phase, plan.serve_replicas) == ("Suspended", 0)
    assert _conditions(plan.status)["Serving"] == ("True", "Serving")  # until the pods stop
    plan = next_plan(suspended, "susy", 1, StreamingTrainingJobStatus(), {"train": TRAINED},
                     READY, NOW)
    assert plan.serve_replicas is None
    failed = ChildObservation(failed=4, failed_for_good=True, failure_reason="BackoffLimitExceeded")
    plan = next_plan(SPEC, "susy", 1, StreamingTrainingJobStatus(), {"train": failed}, READY,
                     NOW, serving=running)
    assert (plan.status.phase, plan.serve_replicas) == ("Failed", 0)


def test_the_serving_deployment_runs_the_same_pods_as_the_phases_until_deleted() -> None:
    access = KafkaAccess("kafka:9092")
    deployment = build_deployment_manifest("susy", "ns", "uid-1", SPEC, access, 3)
    job = build_job_manifest("susy", "ns", "uid-1", "train", SPEC, access)
    assert deployment["metadata"]["name"] == "susy-serve"
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert deployment["spec"]["replicas"] == 3
    template = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    pod, job_pod = template["spec"], job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Always"
    assert pod["securityContext"] == job_pod["securityContext"]
    container, job_container = pod["containers"][0], job_pod["containers"][0]
    assert container["securityContext"] == job_container["securityContext"]
    assert container["command"] == ["streamtrain", "run-mode", "serve"]
    assert container["volumeMounts"] == job_container["volumeMounts"]
    replica = next(item for item in container["env"] if item["name"] == SERVE_REPLICA_ENV)
    assert replica["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_the_deployments_digest_changes_with_its_replicas_and_image_only() -> None:
    access = KafkaAccess("kafka:9092")

    def digest(spec: object, replicas: int) -> str:
        manifest = build_deployment_manifest("susy", "ns", "u", spec, access, replicas)  # type: ignore[arg-type]
        return str(manifest["metadata"]["annotations"][TEMPLATE_DIGEST])

    other_image = parse_spec({**SPEC.model_dump(by_alias=True, exclude_none=True),
                              "serve": {**SERVE, "image": "registry/serve:2"}}, in_cluster=True)
    assert digest(SPEC, 3) == digest(SPEC, 3)
    assert len({digest(SPEC, 3), digest(SPEC, 1), digest(other_image, 3)}) == 3


def test_records_served_add_up_over_pods_and_their_restarts_and_a_new_version_moves_since() -> None:
    serving = JobServing("uid", base=100, version="trained-aa", since="t0")
    assert not serving.post("susy-serve-x-1", 40, "trained-aa", "t1")
    assert not serving.post("susy-serve-x-2", 10, "trained-aa", "t1")
    assert not serving.post("susy-serve-x-1", 5, "trained-aa", "t2")  # restarted in its pod
    assert serving.status(None).records_served == 100 + 40 + 5 + 10
    assert serving.post("susy-serve-x-2", 20, "online-bb", "t3")
    assert not serving.post("susy-serve-x-1", 6, "trained-aa", "t4")  # not swapped yet
    status = serving.status(ServingStatus(replicas=2, ready_replicas=2))
    assert (status.version, status.since, status.replicas) == ("online-bb", "t3", 2)
