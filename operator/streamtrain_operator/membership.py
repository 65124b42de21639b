"""Which pods belong to which job, as the watches last said: the progress endpoint's proof.

kopf delivers the events of every child Job and pod (selected by the job-uid
label); `Membership.observe` keeps, per pod, its uid, that label and the
Job that controls it, and per child Job, its uid, label and the
StreamingTrainingJob that controls it; a DELETED event drops the object. A
progress post is then checked against memory, with no API call: the token's
pod must exist now under that name *and* uid (a pod made again under the
same name has another), carry the job's uid label, and be controlled by a
child Job that carries the label too and is controlled by the job.

The label alone proves nothing (anyone who may create a pod may set it);
the owner chain is what the Job controller and the operator wrote.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamtrain_operator.builders import JOB_UID_LABEL
from workload.contract import API_GROUP
from workload.spec import KIND

Name = tuple[str, str]
"""An object by (namespace, name)."""


@dataclass(frozen=True)
class Member:
    """What the membership check needs of one pod or child Job."""

    uid: str
    job_uid: str
    """Its `JOB_UID_LABEL`."""
    owner_uid: str | None
    """The uid of its controller of the expected kind (a pod's Job, a Job's
    StreamingTrainingJob), if it has one."""


def _controller(body: Mapping[str, Any], kind: str, group: str) -> str | None:
    """The uid of the object's controlling owner when that is a `kind` of API `group`."""
    for owner in body["metadata"].get("ownerReferences") or []:
        api_group = str(owner.get("apiVersion", "")).rpartition("/")[0]
        if owner.get("controller") and owner.get("kind") == kind and api_group == group:
            return str(owner.get("uid"))
    return None


class Membership:
    """Pods and child Jobs by the watch events; thread-safe."""

    def __init__(self) -> None:
        self._pods: dict[Name, Member] = {}
        self._jobs: dict[str, tuple[str, Member]] = {}
        """Child Jobs by uid: (namespace, what is known)."""
        self._lock = threading.Lock()

    def observe(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of a child Job (`kind` "Job") or pod ("Pod")."""
        meta = body["metadata"]
        name: Name = (meta["namespace"], meta["name"])
        member = Member(str(meta["uid"]), str((meta.get("labels") or {}).get(JOB_UID_LABEL, "")),
                        _controller(body, "Job", "batch") if kind == "Pod"
                        else _controller(body, KIND, API_GROUP))
        with self._lock:
            if kind == "Pod":
                if event_type == "DELETED":
                    if self._pods.get(name, member).uid == member.uid:
                        self._pods.pop(name, None)
                else:
                    self._pods[name] = member
            elif event_type == "DELETED":
                self._jobs.pop(member.uid, None)
            else:
                self._jobs[member.uid] = (name[0], member)

    def problem(self, namespace: str, pod: str, pod_uid: str, job_uid: str) -> str | None:
        """Why the pod `namespace/pod` with uid `pod_uid` may not speak for the job with uid
        `job_uid` (`None`: it may)."""
        with self._lock:
            found = self._pods.get((namespace, pod))
            if found is None or found.uid != pod_uid:
                return f"pod {pod} ({pod_uid or 'no uid'}) does not exist"
            if found.job_uid != job_uid:
                return f"pod {pod} is not labelled as the job's"
            child = self._jobs.get(found.owner_uid or "")
        if child is None or child[0] != namespace:
            return f"pod {pod} is not controlled by a Job the operator knows"
        if child[1].job_uid != job_uid or child[1].owner_uid != job_uid:
            return f"pod {pod} is controlled by a Job that the job does not own"
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._pods) + len(self._jobs)
