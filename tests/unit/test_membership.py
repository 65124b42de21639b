"""Which pods may speak for a job: a pod that exists now (name and uid), labelled with the job's
uid, controlled by a child Job that the job controls; all from watch events."""

from __future__ import annotations

from typing import Any

from streamtrain_operator.builders import JOB_UID_LABEL
from streamtrain_operator.membership import Membership

JOB_UID = "job-uid-1"


def _job(uid: str = "child-1", label: str = JOB_UID, owner: str | None = JOB_UID,
         kind: str = "StreamingTrainingJob") -> dict[str, Any]:
    owners = [{"apiVersion": "streamtrain.dev/v1alpha1", "kind": kind, "name": "susy",
               "uid": owner, "controller": True}] if owner else []
    return {"metadata": {"namespace": "ns", "name": "susy-train", "uid": uid,
                         "labels": {JOB_UID_LABEL: label}, "ownerReferences": owners}}


def _pod(name: str = "susy-train-abcde", uid: str = "pod-1", label: str | None = JOB_UID,
         job: str | None = "child-1", namespace: str = "ns") -> dict[str, Any]:
    owners = [{"apiVersion": "batch/v1", "kind": "Job", "name": "susy-train", "uid": job,
               "controller": True}] if job else []
    return {"metadata": {"namespace": namespace, "name": name, "uid": uid,
                         "labels": {JOB_UID_LABEL: label} if label else {},
                         "ownerReferences": owners}}


def _members(*events: tuple[str, str | None, dict[str, Any]]) -> Membership:
    members = Membership()
    for kind, event_type, body in events:
        members.observe(kind, event_type, body)
    return members


def test_the_pod_of_the_jobs_own_child_job_may_speak_for_it() -> None:
    members = _members(("Job", None, _job()), ("Pod", "ADDED", _pod()))
    assert members.problem("ns", "susy-train-abcde", "pod-1", JOB_UID) is None


def test_a_pod_made_again_under_the_same_name_or_gone_may_not() -> None:
    members = _members(("Job", None, _job()), ("Pod", "ADDED", _pod()))
    assert members.problem("ns", "susy-train-abcde", "pod-0", JOB_UID) is not None
    members.observe("Pod", "ADDED", _pod(uid="pod-2"))
    members.observe("Pod", "DELETED", _pod(uid="pod-1"))  # the old one's late DELETED
    assert members.problem("ns", "susy-train-abcde", "pod-2", JOB_UID) is None
    members.observe("Pod", "DELETED", _pod(uid="pod-2"))
    assert members.problem("ns", "susy-train-abcde", "pod-2", JOB_UID) is not None


def test_pods_without_the_jobs_chain_of_owners_may_not() -> None:
    members = _members(("Job", None, _job()), ("Job", None, _job("impostor", owner=None)),
                       ("Job", None, _job("other-child", label="other", owner="other")),
                       ("Pod", None, _pod("bare", "p1", job=None)),
                       ("Pod", None, _pod("unlabelled", "p2", label=None)),
                       ("Pod", None, _pod("of-impostor", "p3", job="impostor")),
                       ("Pod", None, _pod("of-other", "p4", label="other", job="other-child")),
                       ("Pod", None, _pod("of-unknown-job", "p5", job="nobody")),
                       ("Pod", None, _pod("elsewhere", "p6", namespace="other-ns")))
    for name, uid in [("bare", "p1"), ("unlabelled", "p2"), ("of-impostor", "p3"),
                      ("of-other", "p4"), ("of-unknown-job", "p5"), ("never-seen", "p0")]:
        assert members.problem("ns", name, uid, JOB_UID) is not None, name
    assert members.problem("ns", "elsewhere", "p6", JOB_UID) is not None
    assert members.problem("other-ns", "elsewhere", "p6", JOB_UID) is not None  # Job is in ns


def test_a_child_job_that_is_gone_takes_its_pods_standing_with_it() -> None:
    members = _members(("Job", None, _job()), ("Pod", None, _pod()))
    members.observe("Job", "DELETED", _job())
    assert members.problem("ns", "susy-train-abcde", "pod-1", JOB_UID) is not None
