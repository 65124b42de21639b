"""What the handler writes to status, when finished children expire, which deletions it keeps."""

from __future__ import annotations

from streamtrain_operator.handlers import DeletedJobs, status_patch
from streamtrain_operator.planner import Plan
from streamtrain_operator.reconcile import ttl_expired

from workload.status import StreamingTrainingJobStatus


def test_patch_holds_only_changes_and_removes_vanished_fields() -> None:
    old = {"phase": "Training", "conditions": [], "observedGeneration": 1, "stale": "x"}
    plan = Plan(StreamingTrainingJobStatus(phase="Training", observed_generation=2))
    assert status_patch(old, plan) == {"observedGeneration": 2, "stale": None}


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


def test_deleted_jobs_remember_the_most_recent_uids_only() -> None:
    deleted = DeletedJobs(capacity=2)
    for uid in ("a", "b", "c"):
        deleted.add(uid)
    assert "a" not in deleted and "b" in deleted and "c" in deleted
