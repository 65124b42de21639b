"""What the watches hold: a job's children by ownership (not by label), the pods that may speak
for it (a pod that exists now, name and uid, labelled with the job's uid, controlled by a child
Job that the job controls, or by a ReplicaSet of the serving Deployment it controls), late
events that do not take newer objects back, and a fresh list that heals a missed DELETED."""

from __future__ import annotations

from typing import Any

from streamtrain_operator.builders import JOB_UID_LABEL
from streamtrain_operator.store import Store

JOB_UID = "job-uid-1"


def _job(uid: str = "child-1", label: str = JOB_UID, owner: str | None = JOB_UID,
         kind: str = "StreamingTrainingJob") -> dict[str, Any]:
    """A child Job named after its uid's role (`susy-train` for the job's own)."""
    owners = [{"apiVersion": "streamtrain.dev/v1alpha1", "kind": kind, "name": "susy",
               "uid": owner, "controller": True}] if owner else []
    name = "susy-train" if uid == "child-1" else f"susy-train-{uid}"
    return {"metadata": {"namespace": "ns", "name": name, "uid": uid,
                         "labels": {JOB_UID_LABEL: label}, "ownerReferences": owners}}


def _pod(name: str = "susy-train-abcde", uid: str = "pod-1", label: str | None = JOB_UID,
         job: str | None = "child-1", namespace: str = "ns", version: str = "1") -> dict[str, Any]:
    owners = [{"apiVersion": "batch/v1", "kind": "Job", "name": "susy-train", "uid": job,
               "controller": True}] if job else []
    return {"metadata": {"namespace": namespace, "name": name, "uid": uid,
                         "resourceVersion": version, "managedFields": [{"big": "x" * 1000}],
                         "labels": {JOB_UID_LABEL: label} if label else {},
                         "ownerReferences": owners}}


def _members(*events: tuple[Any, str | None, dict[str, Any]]) -> Store:
    members = Store()
    for kind, event_type, body in events:
        members.observe(kind, event_type, body)
    return members


def test_the_pod_of_the_jobs_own_child_job_may_speak_for_it() -> None:
    members = _members(("Job", None, _job()), ("Pod", "ADDED", _pod()))
    assert members.pod_problem("ns", "susy-train-abcde", "pod-1", JOB_UID) is None


def test_a_pod_made_again_under_the_same_name_or_gone_may_not() -> None:
    members = _members(("Job", None, _job()), ("Pod", "ADDED", _pod()))
    assert members.pod_problem("ns", "susy-train-abcde", "pod-0", JOB_UID) is not None
    members.observe("Pod", "ADDED", _pod(uid="pod-2"))
    members.observe("Pod", "DELETED", _pod(uid="pod-1"))  # the old one's late DELETED
    assert members.pod_problem("ns", "susy-train-abcde", "pod-2", JOB_UID) is None
    members.observe("Pod", "DELETED", _pod(uid="pod-2"))
    assert members.pod_problem("ns", "susy-train-abcde", "pod-2", JOB_UID) is not None


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
        assert members.pod_problem("ns", name, uid, JOB_UID) is not None, name
    assert members.pod_problem("ns", "elsewhere", "p6", JOB_UID) is not None
    assert members.pod_problem("other-ns", "elsewhere", "p6", JOB_UID) is not None  # Job is in ns


def test_a_child_job_that_is_gone_takes_its_pods_standing_with_it() -> None:
    members = _members(("Job", None, _job()), ("Pod", None, _pod()))
    members.observe("Job", "DELETED", _job())
    assert members.pod_problem("ns", "susy-train-abcde", "pod-1", JOB_UID) is not None


def _owned(kind: str, name: str, uid: str, owner_kind: str, owner: str | None,
           label: str = JOB_UID) -> dict[str, Any]:
    """A Deployment, ReplicaSet or serving pod controlled by `owner_kind` `owner`."""
    group = {"StreamingTrainingJob": "streamtrain.dev/v1alpha1", "Deployment": "apps/v1",
             "ReplicaSet": "apps/v1"}[owner_kind]
    owners = [{"apiVersion": group, "kind": owner_kind, "name": "x", "uid": owner,
               "controller": True}] if owner else []
    return {"kind": kind, "metadata": {"namespace": "ns", "name": name, "uid": uid,
                                       "labels": {JOB_UID_LABEL: label},
                                       "ownerReferences": owners}}


def _serving(*extra: tuple[Any, str | None, dict[str, Any]]) -> Store:
    """The job's serving Deployment, its ReplicaSet and one pod of it, with `extra` events."""
    return _members(
        ("Deployment", None, _owned("Deployment", "susy-serve", "dep-1", "StreamingTrainingJob",
                                    JOB_UID)),
        ("ReplicaSet", None, _owned("ReplicaSet", "susy-serve-5f", "rs-1", "Deployment", "dep-1")),
        ("Pod", None, _owned("Pod", "susy-serve-5f-abcde", "sp-1", "ReplicaSet", "rs-1")),
        *extra)


def test_a_pod_of_the_jobs_serving_deployment_may_speak_for_it() -> None:
    members = _serving()
    assert members.pod_problem("ns", "susy-serve-5f-abcde", "sp-1", JOB_UID) is None
    assert [body["metadata"]["name"] for body in members.deployments("ns", JOB_UID)] == [
        "susy-serve"]
    assert members.children("ns", JOB_UID) == ([], [])  # serving pods are no phase's


def test_serving_pods_without_the_whole_chain_of_owners_may_not() -> None:
    members = _serving(
        # a ReplicaSet of someone else's Deployment, and one forged to point at the job's
        ("Deployment", None, _owned("Deployment", "theirs", "dep-2", "StreamingTrainingJob",
                                    "other", label="other")),
        ("ReplicaSet", None, _owned("ReplicaSet", "rs-theirs", "rs-2", "Deployment", "dep-2",
                                    label="other")),
        ("ReplicaSet", None, _owned("ReplicaSet", "rs-unknown", "rs-3", "Deployment", "nobody")),
        ("ReplicaSet", None, _owned("ReplicaSet", "rs-unlabelled", "rs-4", "Deployment", "dep-1",
                                    label="other")),
        ("Pod", None, _owned("Pod", "of-theirs", "sp-2", "ReplicaSet", "rs-2")),
        ("Pod", None, _owned("Pod", "of-unknown", "sp-3", "ReplicaSet", "rs-3")),
        ("Pod", None, _owned("Pod", "of-unlabelled", "sp-4", "ReplicaSet", "rs-4")),
        ("Pod", None, _owned("Pod", "of-nothing", "sp-5", "ReplicaSet", "rs-none")),
        # a pod claiming the job, or its Deployment, as its direct controller
        ("Pod", None, _owned("Pod", "of-the-job", "sp-6", "StreamingTrainingJob", JOB_UID)),
        ("Pod", None, _owned("Pod", "of-the-deployment", "sp-7", "Deployment", "dep-1")))
    for name, uid in [("of-theirs", "sp-2"), ("of-unknown", "sp-3"), ("of-unlabelled", "sp-4"),
                      ("of-nothing", "sp-5"), ("of-the-job", "sp-6"),
                      ("of-the-deployment", "sp-7")]:
        assert members.pod_problem("ns", name, uid, JOB_UID) is not None, name
    members.observe("Deployment", "DELETED", _owned("Deployment", "susy-serve", "dep-1",
                                                    "StreamingTrainingJob", JOB_UID))
    assert members.pod_problem("ns", "susy-serve-5f-abcde", "sp-1", JOB_UID) is not None
    assert members.deployments("ns", JOB_UID) == []


def test_a_jobs_children_are_the_jobs_it_controls_and_their_pods_not_any_labelled_ones() -> None:
    store = _members(("Job", None, _job()), ("Job", None, _job("impostor", owner=None)),
                     ("Pod", None, _pod()), ("Pod", None, _pod("of-impostor", "p3",
                                                                job="impostor")),
                     ("Pod", None, _pod("bare", "p1", job=None)))
    jobs, pods = store.children("ns", JOB_UID)
    assert [job["metadata"]["uid"] for job in jobs] == ["child-1"]
    assert [pod["metadata"]["name"] for pod in pods] == ["susy-train-abcde"]
    assert "managedFields" not in pods[0]["metadata"]  # slim copies
    assert store.children("other-ns", JOB_UID) == ([], [])


def test_a_late_event_does_not_take_back_a_newer_object() -> None:
    store = _members(("Pod", None, _pod(version="7")))
    store.observe("Pod", "MODIFIED", _pod(version="5"))
    found = store.get("Pod", ("ns", "susy-train-abcde"))
    assert found is not None and found["metadata"]["resourceVersion"] == "7"


def test_a_fresh_list_heals_a_missed_deletion_but_keeps_what_changed_after_it() -> None:
    store = _members(("Job", None, _job()), ("Pod", None, _pod(version="3")),
                     ("Pod", None, _pod("newer", "p9", version="12")))
    store.replace("Pod", [], "10", ["ns"])
    assert store.get("Pod", ("ns", "susy-train-abcde")) is None  # deleted before the list
    assert store.get("Pod", ("ns", "newer")) is not None  # made after it
    assert [pod["metadata"]["name"] for pod in store.children("ns", JOB_UID)[1]] == ["newer"]
    store.replace("Pod", [_pod(version="11")], "11", ["other-ns"])
    assert store.get("Pod", ("ns", "newer")) is not None  # another namespace's list


def test_only_what_a_pass_reads_counts_as_a_change() -> None:
    store = _members(("Pod", None, _pod(version="1")))
    scheduled = {**_pod(version="2"), "status": {"conditions": [{"type": "PodScheduled"}]}}
    assert not store.observe("Pod", "MODIFIED", scheduled)  # a condition: no pass
    ended = {**_pod(version="3"), "status": {"containerStatuses": [
        {"name": "train", "state": {"terminated": {"exitCode": 0, "message": "{}"}}}]}}
    assert store.observe("Pod", "MODIFIED", ended)
    ready = {**_job(), "metadata": {**_job()["metadata"], "resourceVersion": "4"},
             "status": {"ready": 1}}
    store.observe("Job", "ADDED", _job())
    assert not store.observe("Job", "MODIFIED", ready)
    assert store.observe("Job", "MODIFIED", {**ready, "status": {"active": 1}})
