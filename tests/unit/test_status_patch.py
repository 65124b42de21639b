"""What the handler writes to status, and when finished children expire."""

from __future__ import annotations

from streamtrain_operator.handlers import status_patch
from streamtrain_operator.reconcile import ttl_expired
from streamtrain_operator.status import Plan

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
