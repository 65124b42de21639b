"""Post Kubernetes Events on a job (core/v1), from any thread.

kopf's own `kopf.event` works only inside its handlers; reconcile passes run
on the operator's worker threads, so they post through the API client.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import kubernetes

from streamtrain_operator.failures import MESSAGE_LIMIT
from streamtrain_operator.planner import Event
from workload.contract import API_GROUP
from workload.spec import API_VERSION, KIND

COMPONENT = "streamtrain-operator"
"""The `source.component` (and reporting controller) of every event."""


def event_body(job: Mapping[str, Any], event: Event, now: str) -> dict[str, Any]:
    """A core/v1 Event about `job` (its metadata as the API returned it)."""
    meta = job["metadata"]
    return {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND,
                           "name": meta["name"], "namespace": meta["namespace"],
                           "uid": meta["uid"], "resourceVersion": meta.get("resourceVersion")},
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:MESSAGE_LIMIT],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": socket.gethostname(),
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def post(api: kubernetes.client.ApiClient, job: Mapping[str, Any], event: Event,
         now: str) -> None:
    """Post one event; the caller decides what a failure means."""
    core: Any = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_event(job["metadata"]["namespace"], event_body(job, event, now))
