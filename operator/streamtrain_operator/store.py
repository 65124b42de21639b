"""What the watches last said: the jobs, their child Jobs and pods, as an informer's cache.

kopf delivers every watch event of the jobs and of the child Jobs and pods
(selected by the job-uid label on the API server); `Store.observe` keeps a
slim copy of each object (the fields the operator reads: no `managedFields`,
no last-applied annotation) by kind and (namespace, name), and drops it on
DELETED. A reconcile pass then reads its job and the job's children from
here, not from the API server (controller-runtime's informer caches do the
same), and a resync lists them again (`replace`) to heal anything a watch
missed.

Children are found by ownership, not by label (anyone who may create a pod
may set a label): a child Job is one the job controls (its controller
ownerReference), and a child pod one that such a Job controls. Serving
runs as a Deployment the job controls, whose ReplicaSets control its pods:
a serving pod is one controlled by a ReplicaSet that such a Deployment
controls. The progress endpoint asks the same question of the pod a token is
bound to (`pod_problem`), walking the chain through objects the watches hold
(each link labelled as the job's), never through a reference alone.

An event older than what is stored (a resourceVersion below it) is ignored,
so an object the operator just wrote and stored from the API's answer is not
taken back by a late event. Resource versions are compared as the integers
every API server since etcd3 hands out; when one is not, the newer event
wins.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from streamtrain_operator.builders import JOB_UID_LABEL
from streamtrain_operator.deployment import TEMPLATE_DIGEST
from workload.contract import API_GROUP

Kind = Literal["StreamingTrainingJob", "Job", "Deployment", "ReplicaSet", "Pod"]
Name = tuple[str, str]
"""An object by (namespace, name)."""

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
"""The annotation with which the Job controller numbers the pods of an Indexed Job."""

OWNER_KIND: dict[Kind, tuple[tuple[Kind, str], ...]] = {
    "Job": (("StreamingTrainingJob", API_GROUP),),
    "Deployment": (("StreamingTrainingJob", API_GROUP),),
    "ReplicaSet": (("Deployment", "apps"),),
    "Pod": (("Job", "batch"), ("ReplicaSet", "apps"))}
"""Of a child kind: the kinds (and API groups) of the controllers that make it a child."""


def controller_uid(body: Mapping[str, Any], kind: str, group: str) -> str | None:
    """The uid of the object's controlling owner when that is a `kind` of API `group`."""
    for owner in body["metadata"].get("ownerReferences") or []:
        api_group = str(owner.get("apiVersion", "")).rpartition("/")[0]
        if owner.get("controller") and owner.get("kind") == kind and api_group == group:
            return str(owner.get("uid"))
    return None


def controller_of(kind: Kind, body: Mapping[str, Any]) -> tuple[Kind, str] | None:
    """The kind and uid of the controller that makes an object of `kind` a child, if any."""
    for owner_kind, group in OWNER_KIND.get(kind, ()):
        uid = controller_uid(body, owner_kind, group)
        if uid is not None:
            return owner_kind, uid
    return None


def slim(kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an object the operator reads: identity, labels, owners, spec, and of the
    status what a pass reads (a pod's terminated containers, a Job's counts and conditions)."""
    meta = body["metadata"]
    kept = {key: meta[key] for key in ("name", "namespace", "uid", "generation",
                                       "resourceVersion", "labels", "ownerReferences",
                                       "deletionTimestamp") if key in meta}
    index = (meta.get("annotations") or {}).get(COMPLETION_INDEX)
    if index is not None:
        kept["annotations"] = {COMPLETION_INDEX: index}
    status: dict[str, Any] = dict(body.get("status") or {})
    found: dict[str, Any] = {"apiVersion": body.get("apiVersion"), "kind": kind,
                             "metadata": kept, "status": status}
    if kind == "StreamingTrainingJob":
        found["spec"] = body.get("spec") or {}
    elif kind == "Job":
        found["spec"] = {"suspend": (body.get("spec") or {}).get("suspend")}
        found["status"] = {key: status[key] for key in JOB_STATUS if key in status}
    elif kind == "Deployment":
        digest = (meta.get("annotations") or {}).get(TEMPLATE_DIGEST)
        if digest is not None:
            kept["annotations"] = {TEMPLATE_DIGEST: digest}
        found["spec"] = {"replicas": (body.get("spec") or {}).get("replicas")}
        found["status"] = {"readyReplicas": status.get("readyReplicas")}
    elif kind == "ReplicaSet":  # only its place in the chain of owners is read
        found["status"] = {}
    else:
        found["status"] = {"phase": status.get("phase"), "containerStatuses": [
            {"name": container.get("name"), "state": {
                "terminated": (container.get("state") or {}).get("terminated")}}
            for container in status.get("containerStatuses") or []
            if (container.get("state") or {}).get("terminated")]}
    return found


JOB_STATUS = ("active", "succeeded", "failed", "conditions", "startTime")
"""The fields of a child Job's status a pass reads (`children.observe`): a change elsewhere
(`ready`, `terminating`, ...) is not worth a pass."""


def _same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether two copies differ in nothing but their resourceVersion."""
    def without_version(body: Mapping[str, Any]) -> dict[str, Any]:
        meta = {key: value for key, value in body["metadata"].items()
                if key != "resourceVersion"}
        return {**body, "metadata": meta}

    return without_version(old) == without_version(new)


def _not_older(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Whether `new` is at least as recent as `old` (the same object)."""
    if old is None or old["metadata"].get("uid") != new["metadata"].get("uid"):
        return True
    new_rv, old_rv = (str(body["metadata"].get("resourceVersion") or "") for body in (new, old))
    if new_rv.isdigit() and old_rv.isdigit():
        return int(new_rv) >= int(old_rv)
    return True


class Store:
    """Slim copies of the watched objects, with the child index; thread-safe."""

    def __init__(self) -> None:
        self._objects: dict[Kind, dict[Name, dict[str, Any]]] = {
            "StreamingTrainingJob": {}, "Job": {}, "Deployment": {}, "ReplicaSet": {}, "Pod": {}}
        self._children: dict[tuple[Kind, str], set[Name]] = {}
        """Children by the kind and uid of their controller (a job's, a child Job's, ...)."""
        self._uids: dict[tuple[Kind, str], Name] = {}
        """Child Jobs', Deployments' and ReplicaSets' names by kind and uid."""
        self._lock = threading.Lock()

    # ------------------------------------------------------------ writes

    def observe(self, kind: Kind, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """A watch event (`event_type` `None` for the initial listing), or an object the API
        returned for a write; whether what a pass reads changed: a job or child Job added,
        removed or changed in more than its resourceVersion, a pod's ended containers."""
        meta = body["metadata"]
        name: Name = (meta["namespace"], meta["name"])
        with self._lock:
            old = self._objects[kind].get(name)
            if event_type == "DELETED":
                if old is not None and old["metadata"].get("uid") == meta.get("uid"):
                    self._remove(kind, name, old)
                    return kind != "Pod" or bool(old["status"]["containerStatuses"])
                return False
            new = slim(kind, body)
            if not _not_older(new, old):
                return False
            if kind == "Pod":  # a pass reads only how its containers ended
                same = (old["status"] if old is not None else {"containerStatuses": []}
                        )["containerStatuses"] == new["status"]["containerStatuses"]
            else:
                same = old is not None and _same(old, new)
            if old is not None:
                self._remove(kind, name, old)
            self._add(kind, name, new)
            return not same

    def replace(self, kind: Kind, listed: Iterable[Mapping[str, Any]], list_version: str,
                namespaces: Iterable[str] | None) -> list[dict[str, Any]]:
        """A fresh list of `kind` in `namespaces` (`None`: every namespace) at resourceVersion
        `list_version`: what it holds is stored unless something newer is, and what it lacks is
        dropped (its DELETED event was missed), unless it changed after the list was taken.
        Returns the objects that changed (as listed, or as they were when dropped)."""
        changed: list[dict[str, Any]] = []
        fresh: set[Name] = set()
        for item in listed:
            if self.observe(kind, "LISTED", item):
                changed.append(dict(item))
            fresh.add((item["metadata"]["namespace"], item["metadata"]["name"]))
        scope = None if namespaces is None else set(namespaces)
        with self._lock:
            for name, old in list(self._objects[kind].items()):
                if name in fresh or (scope is not None and name[0] not in scope):
                    continue
                rv = str(old["metadata"].get("resourceVersion") or "")
                if not (rv.isdigit() and list_version.isdigit()) or int(rv) <= int(list_version):
                    self._remove(kind, name, old)
                    changed.append(old)
        return changed

    def _add(self, kind: Kind, name: Name, body: dict[str, Any]) -> None:
        self._objects[kind][name] = body
        if kind not in ("StreamingTrainingJob", "Pod"):
            self._uids[(kind, str(body["metadata"]["uid"]))] = name
        owner = controller_of(kind, body)
        if owner is not None:
            self._children.setdefault(owner, set()).add(name)

    def _remove(self, kind: Kind, name: Name, body: dict[str, Any]) -> None:
        self._objects[kind].pop(name, None)
        if kind not in ("StreamingTrainingJob", "Pod"):
            self._uids.pop((kind, str(body["metadata"]["uid"])), None)
        owner = controller_of(kind, body)
        siblings = self._children.get(owner) if owner is not None else None
        if owner is not None and siblings is not None:
            siblings.discard(name)
            if not siblings:
                self._children.pop(owner, None)

    # ------------------------------------------------------------ reads

    def get(self, kind: Kind, name: Name) -> dict[str, Any] | None:
        """The stored object (a copy the caller may keep), or `None`."""
        with self._lock:
            found = self._objects[kind].get(name)
            return dict(found) if found is not None else None

    def children(self, namespace: str, job_uid: str) -> tuple[list[dict[str, Any]],
                                                               list[dict[str, Any]]]:
        """The job's child Jobs and their pods (each Job's pods controlled by that Job)."""
        with self._lock:
            jobs = self._owned("Job", "StreamingTrainingJob", job_uid, namespace)
            pods = [self._objects["Pod"][name] for job in jobs
                    for name in self._children.get(("Job", str(job["metadata"]["uid"])), ())
                    if name in self._objects["Pod"]]
            return list(jobs), list(pods)

    def deployments(self, namespace: str, job_uid: str) -> list[dict[str, Any]]:
        """The Deployments the job controls (its serving)."""
        with self._lock:
            return self._owned("Deployment", "StreamingTrainingJob", job_uid, namespace)

    def _owned(self, kind: Kind, owner_kind: Kind, owner_uid: str,
               namespace: str) -> list[dict[str, Any]]:
        """The objects of `kind` in `namespace` that the `owner_kind` `owner_uid` controls."""
        return [self._objects[kind][name]
                for name in self._children.get((owner_kind, owner_uid), ())
                if name[0] == namespace and name in self._objects[kind]]

    def pod_problem(self, namespace: str, pod: str, pod_uid: str, job_uid: str) -> str | None:
        """Why the pod `namespace/pod` with uid `pod_uid` may not speak for the job with uid
        `job_uid` (`None`: it may): it must exist now, carry the job's uid label, and be
        controlled by a child Job that carries the label and that the job controls, or (a
        serving pod) by a ReplicaSet that carries the label and that such a Deployment
        controls. Every link is an object the watches hold, in the pod's namespace."""
        with self._lock:
            found = self._objects["Pod"].get((namespace, pod))
            if found is None or found["metadata"].get("uid") != pod_uid:
                return f"pod {pod} ({pod_uid or 'no uid'}) does not exist"
            if (found["metadata"].get("labels") or {}).get(JOB_UID_LABEL) != job_uid:
                return f"pod {pod} is not labelled as the job's"
            kind: Kind = "Pod"
            body: dict[str, Any] = found
            while kind != "StreamingTrainingJob":
                owner = controller_of(kind, body)
                if owner is None:
                    return f"pod {pod} is not controlled by an object the operator knows"
                if owner[0] == "StreamingTrainingJob":
                    return None if owner[1] == job_uid else (
                        f"pod {pod} is controlled by a {kind} that the job does not own")
                name = self._uids.get(owner)
                parent = self._objects[owner[0]].get(name) if name is not None else None
                if parent is None or parent["metadata"]["namespace"] != namespace:
                    return f"pod {pod} is not controlled by a {owner[0]} the operator knows"
                if (parent["metadata"].get("labels") or {}).get(JOB_UID_LABEL) != job_uid:
                    return f"pod {pod} is controlled by a {owner[0]} that the job does not own"
                kind, body = owner[0], parent
        return None

    def count(self, kind: Kind) -> int:
        """How many objects of `kind` are stored."""
        with self._lock:
            return len(self._objects[kind])
