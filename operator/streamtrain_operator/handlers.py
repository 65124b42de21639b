"""kopf handler registration: thin wrappers that call `reconcile` and write status.

One timer per job does all the work: it fires as soon as a job appears and
then every `reconcile_interval_s`, so edits, finished pods and a restarted
operator are all handled by the same idempotent pass. Status is written
only through the status subresource (kopf patches `status` there because
the CRD declares it); spec and metadata are never written.

Without kopf's finalizer, kopf does not stop a deleted job's timer by itself:
the DELETED event marks the job's uid as gone, and the timer's filter, which
kopf re-checks on that same event, then no longer matches, so kopf stops it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import kopf
import kubernetes

from streamtrain_operator.metrics import OperatorMetrics
from streamtrain_operator.planner import Plan
from streamtrain_operator.reconcile import reconcile
from streamtrain_operator.settings import OperatorSettings
from workload.spec import API_GROUP, API_VERSION, PLURAL

RETRY_DELAY_S = 10.0
"""Seconds before a failed reconcile pass is retried (API errors usually heal)."""

REMEMBERED_DELETIONS = 10_000
"""Uids of deleted jobs kept (oldest forgotten first); one is needed only until its timer stops."""


class DeletedJobs:
    """The uids of jobs seen deleted, most recent `REMEMBERED_DELETIONS` of them."""

    def __init__(self, capacity: int = REMEMBERED_DELETIONS) -> None:
        self.capacity = capacity
        self._uids: OrderedDict[str, None] = OrderedDict()

    def add(self, uid: str) -> None:
        """Remember `uid` as deleted."""
        self._uids[uid] = None
        while len(self._uids) > self.capacity:
            self._uids.popitem(last=False)

    def __contains__(self, uid: object) -> bool:
        return uid in self._uids


def status_patch(old: Mapping[str, Any], plan: Plan) -> dict[str, Any]:
    """A merge patch from `old` to the plan's status (`None` removes a field); empty if equal."""
    new = plan.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    patch: dict[str, Any] = {key: value for key, value in new.items() if old.get(key) != value}
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def _api_message(error: kubernetes.client.ApiException) -> str:
    """The API server's own message (it names the verb and resource that failed)."""
    try:
        return str(json.loads(error.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return str(error.reason)


def _client() -> kubernetes.client.ApiClient:
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    return kubernetes.client.ApiClient()


def _without_finalizer(registry: kopf.OperatorRegistry) -> None:
    """Let timers run without kopf's finalizer on the job.

    kopf puts a finalizer on every object with a timer so it can stop the timer
    first; this operator has nothing to clean up on deletion (ownerReferences
    do it), and a finalizer would leave jobs undeletable while the operator is
    down. kopf (pinned) offers no switch, so its frozen handler is replaced.
    """
    handlers: list[Any] = registry._spawning._handlers
    handlers[:] = [dataclasses.replace(handler, requires_finalizer=False) for handler in handlers]


def register(settings: OperatorSettings, metrics: OperatorMetrics,
             registry: kopf.OperatorRegistry) -> None:
    """Register the handlers with `registry`, using `settings` for their timing."""
    api: list[kubernetes.client.ApiClient] = []
    deleted = DeletedJobs()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    def connect(**_: Any) -> None:
        api.append(_client())

    @kopf.timer(API_GROUP, API_VERSION, PLURAL, interval=settings.reconcile_interval_s,
                registry=registry, when=lambda uid, **_: uid not in deleted)
    def reconcile_job(name: str, namespace: str | None, uid: str, meta: kopf.Meta, spec: kopf.Spec,
                      status: kopf.Status, body: kopf.Body, patch: kopf.Patch,
                      **_: Any) -> None:
        started = time.monotonic()
        try:
            plan = reconcile(api[0], name, namespace or "", uid, int(meta.get("generation") or 0),
                             dict(spec), dict(status))
        except kubernetes.client.ApiException as error:
            metrics.reconcile_errors.inc()
            raise kopf.TemporaryError(f"API error {error.status}: {_api_message(error)}",
                                      delay=RETRY_DELAY_S) from error
        except Exception:
            metrics.reconcile_errors.inc()
            raise
        finally:
            metrics.reconcile_seconds.observe(time.monotonic() - started)
        changes = status_patch(dict(status), plan)
        if changes:
            patch.status.update(changes)
        for event in plan.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        metrics.observe_phase(f"{namespace}/{name}", plan.status.phase)

    _without_finalizer(registry)

    @kopf.on.event(API_GROUP, API_VERSION, PLURAL, registry=registry)
    def forget_job(name: str, namespace: str | None, uid: str, type: str, **_: Any) -> None:
        # An event handler, not on.delete: it needs neither a finalizer nor kopf's annotations.
        if type == "DELETED":
            deleted.add(uid)
            metrics.observe_phase(f"{namespace}/{name}", None)
