"""What a pass writes to status, and when a finished job's children expire."""

from __future__ import annotations

from streamtrain_operator.controller import status_patch
from streamtrain_operator.planner import Plan
from streamtrain_operator.reconcile import ttl_due_in, ttl_expired

from workload.status import Progress, StreamingTrainingJobStatus


def test_patch_holds_only_changes_and_removes_vanished_fields() -> None:
    old = {"phase": "Training", "conditions": [], "observedGeneration": 1, "stale": "x"}
    plan = Plan(StreamingTrainingJobStatus(phase="Training", observed_generation=2))
    assert status_patch(old, plan) == {"observedGeneration": 2, "stale": None}


def test_a_field_gone_from_a_nested_object_is_removed_by_name() -> None:
    old = {"phase": "Training", "conditions": [],
           "progress": {"mode": "train", "percent": 32.1, "etaSeconds": 40}}
    plan = Plan(StreamingTrainingJobStatus(phase="Suspended", progress=Progress(
        mode="train", percent=32.1)))
    assert status_patch(old, plan) == {"phase": "Suspended", "progress": {"etaSeconds": None}}


def test_unchanged_status_gives_an_empty_patch() -> None:
    status = StreamingTrainingJobStatus(phase="Pending", observed_generation=1)
    old = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert status_patch(old, Plan(status)) == {}


def test_children_expire_ttl_seconds_after_completion_only_when_finished() -> None:
    done = StreamingTrainingJobStatus(phase="Succeeded", completion_time="2026-01-01T00:00:00Z")
    assert not ttl_expired(done, 60, "2026-01-01T00:00:59Z")
    assert ttl_expired(done, 60, "2026-01-01T00:01:00Z")
    assert not ttl_expired(done, None, "2027-01-01T00:00:00Z")
    running = StreamingTrainingJobStatus(phase="Training")
    assert not ttl_expired(running, 0, "2027-01-01T00:00:00Z")


def test_the_ttl_is_read_from_the_raw_resource_for_jobs_found_finished() -> None:
    job = {"spec": {"runPolicy": {"ttlSecondsAfterFinished": 60}},
           "status": {"phase": "Failed", "completionTime": "2026-01-01T00:00:00Z"}}
    assert ttl_due_in(job, "2026-01-01T00:00:45Z") == 15
    assert ttl_due_in({**job, "spec": {}}, "2026-01-01T00:00:45Z") is None
    assert ttl_due_in({**job, "status": {"phase": "Training"}}, "2026-01-01T00:00:45Z") is None
