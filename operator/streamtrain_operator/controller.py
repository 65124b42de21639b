"""When to look at which job, and one reconcile pass per look.

kopf delivers watch events: of the jobs, and of their child Jobs and pods
(selected by label on the API server). The handlers hand them to
`Controller.observe_job` / `observe_child`, which keep each object in the
store (`store.py`: what a pass reads, and which pods belong to which job for
the progress endpoint) and put the job's key in a work queue; worker threads
take keys and run one pass each: take the job from the store, `reconcile`,
write the status patch (whose answer goes back into the store), hand the
events to a thread that posts them and schedule the next timed look (a TTL or a progress deadline
coming due, a retry after an API error). A pass reads nothing from the API
server but a Strimzi resource a job names. One operator-wide resync every
`resync_interval_s` lists the jobs, child Jobs, serving Deployments,
ReplicaSets and pods again (five lists per watched namespace, not per job,
from the API server's watch cache) and queues the unfinished jobs whose objects a watch had missed; with no
unfinished job it does nothing. What a pass waits for in time (a TTL, a
deadline, a retry, an object the job waits for) is scheduled by the pass
itself, so a resync need not look at every job, and 1,000 jobs do not all
come due at once. A finished job costs nothing: its children's events are
ignored and it is looked at again only when its TTL is due.

A job's own status writes come back as watch events; those with an
unchanged `metadata.generation` are ignored, so writing status never
triggers another pass. The one exception: a job that `model.source.job`
names is watched for its dependants, which are queued on each of its
events (they wait for it to finish training).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes
from pydantic import ValidationError

from streamtrain_operator import events
from streamtrain_operator.builders import JOB_UID_LABEL
from streamtrain_operator.clock import now_text
from streamtrain_operator.metrics import OperatorMetrics
from streamtrain_operator.planner import Event, Plan
from streamtrain_operator.reconcile import reconcile, ttl_due_in
from streamtrain_operator.settings import OperatorSettings
from streamtrain_operator.store import Kind, Store
from streamtrain_operator.tls import CaPublisher
from streamtrain_operator.workqueue import WorkQueue
from workload.contract import API_GROUP, TERMINAL_PHASES
from workload.spec import API_VERSION, PLURAL
from workload.status import Progress

Key = tuple[str, str]
"""A job by (namespace, name)."""

RETRY_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""Seconds before a failed pass is retried: the n-th failure in a row waits the n-th value."""

log = logging.getLogger("streamtrain_operator")


@dataclass(frozen=True)
class Known:
    """What the watch last said about a job."""

    uid: str
    generation: int
    phase: str | None
    source: Key | None = None
    """The job whose model it reads (`model.source.job`), if any."""

    @property
    def finished(self) -> bool:
        """Whether the job reached Succeeded or Failed."""
        return self.phase in TERMINAL_PHASES


def _source_of(body: Mapping[str, Any]) -> Key | None:
    model = (body.get("spec") or {}).get("model") or {}
    name = (model.get("source") or {}).get("job")
    return (body["metadata"]["namespace"], name) if name else None


def status_patch(old: Mapping[str, Any], plan: Plan) -> dict[str, Any]:
    """A merge patch from `old` to the plan's status (`None` removes a field); empty if equal."""
    return merge_patch(old, plan.status.model_dump(mode="json", by_alias=True, exclude_none=True))


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) from `old` to `new`: changed fields, objects patched field by
    field (a merge patch keeps what it does not name, so a field gone from a nested object must be
    named `None`), lists whole."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif before != value:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def _json(response: Any) -> dict[str, Any]:
    """The JSON document of an API answer read without the client's models."""
    document: dict[str, Any] = json.loads(response.data)
    return document


def api_message(error: kubernetes.client.ApiException) -> str:
    """The API server's own message (it names the verb and resource that failed)."""
    try:
        return str(json.loads(error.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return str(error.reason)


class Controller:
    """The work queue, its worker threads and the resync, for one operator process."""

    def __init__(self, api: kubernetes.client.ApiClient, settings: OperatorSettings,
                 metrics: OperatorMetrics, ca: CaPublisher | None = None) -> None:
        self.api = api
        self.settings = settings
        self.metrics = metrics
        self.ca = ca
        """Publishes the progress endpoint's CA where pods are made (`None`: no channel)."""
        self.store = Store()
        self.queue: WorkQueue[Key] = WorkQueue()
        self._known: dict[Key, Known] = {}
        self._owners: dict[str, Key] = {}
        self._dependants: dict[Key, set[Key]] = {}
        """Jobs by the job their `model.source` names."""
        self._failures: dict[Key, int] = {}
        self._events: queue.SimpleQueue[tuple[Mapping[str, Any], Event, str] | None] = (
            queue.SimpleQueue())
        """Events to post, in order, off the passes: a pass's own requests are only the ones its
        job waits for (a child Job, the status)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ life

    def start(self) -> None:
        """Start the workers and the resync."""
        for index in range(self.settings.workers):
            self._threads.append(threading.Thread(target=self._work, name=f"reconcile-{index}",
                                                  daemon=True))
        self._threads.append(threading.Thread(target=self._resync, name="resync", daemon=True))
        self._threads.append(threading.Thread(target=self._post_events, name="events",
                                              daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop taking work; a pass under way finishes."""
        self._stop.set()
        self.queue.close()
        self._events.put(None)
        for thread in self._threads:
            thread.join(timeout=30)

    def known(self, key: Key) -> Known | None:
        """What the operator last saw of a job (`None`: no such job)."""
        with self._lock:
            return self._known.get(key)

    def post_event(self, key: Key, uid: str, event: Event) -> None:
        """Post an Event on the job (as the store holds it) off the caller's thread; none when
        the job is gone or made anew."""
        body = self.store.get("StreamingTrainingJob", key)
        if body is not None and body["metadata"].get("uid") == uid:
            self._events.put((body, event, now_text()))

    def progress(self, key: Key, uid: str) -> Progress | None:
        """The job's `status.progress` as the store holds it: the watch's, or the last write's
        if newer (`None`: none, or the job is gone or made anew)."""
        body = self.store.get("StreamingTrainingJob", key)
        if body is None or body["metadata"].get("uid") != uid:
            return None
        found = (body.get("status") or {}).get("progress")
        try:
            return Progress.model_validate(found) if found else None
        except ValidationError:
            return None

    # ------------------------------------------------------------ events

    def observe_job(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of a job: queue it when it is new or its spec changed."""
        meta = body["metadata"]
        key: Key = (meta["namespace"], meta["name"])
        phase = (body.get("status") or {}).get("phase")
        self.store.observe("StreamingTrainingJob", event_type, body)
        if event_type == "DELETED":
            self._forget(key)
            return
        seen = Known(meta["uid"], int(meta.get("generation") or 0), phase, _source_of(body))
        with self._lock:
            before = self._known.get(key)
            self._known[key] = seen
            self._owners[seen.uid] = key
            if before is not None and before.source is not None:
                self._dependants.get(before.source, set()).discard(key)
            if seen.source is not None:
                self._dependants.setdefault(seen.source, set()).add(key)
            waiting = [other for other in self._dependants.get(key, ())
                       if (found := self._known.get(other)) is not None and not found.finished]
        for other in waiting:
            self.queue.add(other)
        if phase is not None:
            self.metrics.observe_phase(f"{key[0]}/{key[1]}", phase)
        new = before is None or before.uid != seen.uid
        if not new and before is not None and before.generation == seen.generation:
            return  # a status write (most often this operator's own)
        if new and seen.finished:
            due = ttl_due_in(body, now_text())
            if due is not None:
                self.queue.add_after(key, due)
            return
        self.queue.add(key, first=True)  # new, or its spec changed: it waits for its pass

    def _forget(self, key: Key) -> None:
        """A job is gone."""
        with self._lock:
            known = self._known.pop(key, None)
            if known is not None:
                self._owners.pop(known.uid, None)
                if known.source is not None:
                    self._dependants.get(known.source, set()).discard(key)
        self.metrics.observe_phase(f"{key[0]}/{key[1]}", None)

    def observe_child(self, kind: Kind, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of a child Job, Deployment, ReplicaSet or pod: store it, and queue its
        job when what a pass reads of the child changed, unless the job is finished."""
        if not self.store.observe(kind, event_type, body):
            return  # a pod condition, a Job's `ready` count: nothing a pass reads
        uid = (body["metadata"].get("labels") or {}).get(JOB_UID_LABEL)
        with self._lock:
            key = self._owners.get(uid or "")
            known = self._known.get(key) if key is not None else None
        if key is not None and known is not None and not known.finished:
            self.queue.add(key)

    # ------------------------------------------------------------ work

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                self.process(key)
            finally:
                self.queue.done(key)

    def _post_events(self) -> None:
        while (item := self._events.get()) is not None:
            body, event, now = item
            try:
                events.post(self.api, body, event, now)
            except Exception as error:  # the status is the record
                message = (api_message(error) if isinstance(error, kubernetes.client.ApiException)
                           else str(error))
                log.warning("%s/%s: event %s not posted: %s", body["metadata"]["namespace"],
                            body["metadata"]["name"], event.reason, message)

    def _resync(self) -> None:
        while not self._stop.wait(self.settings.resync_interval_s):
            with self._lock:
                if all(known.finished for known in self._known.values()):
                    continue  # nothing waits on a watch: a missed event can wait for the next job
            try:
                missed = self.refresh()
            except Exception as error:  # the passes still run on what the store holds
                log.warning("resync: listing failed (%s); the store stays as the watches left it",
                            error)
                continue
            for key in missed:
                self.queue.add(key)

    def refresh(self) -> set[Key]:
        """List the jobs and their children again into the store (per watched namespace, or
        the whole cluster; from the API server's watch cache), so that an event a watch missed
        is healed; jobs the list lacks are forgotten, jobs it adds are queued. Returns the
        unfinished jobs whose objects the watches had missed (the ones a pass must look at)."""
        custom: Any = kubernetes.client.CustomObjectsApi(self.api)
        batch: Any = kubernetes.client.BatchV1Api(self.api)
        core: Any = kubernetes.client.CoreV1Api(self.api)
        apps: Any = kubernetes.client.AppsV1Api(self.api)
        cached = {"resource_version": "0"}
        selector = {"label_selector": JOB_UID_LABEL, "_preload_content": False, **cached}
        missed: set[Key] = set()
        for namespace in self.settings.namespaces or (None,):
            scope = [namespace] if namespace is not None else None
            if namespace is None:
                listings: list[tuple[Kind, Any]] = [
                    ("StreamingTrainingJob", lambda: custom.list_cluster_custom_object(
                        API_GROUP, API_VERSION, PLURAL, **cached)),
                    ("Job", lambda: _json(batch.list_job_for_all_namespaces(**selector))),
                    ("Deployment", lambda: _json(
                        apps.list_deployment_for_all_namespaces(**selector))),
                    ("ReplicaSet", lambda: _json(
                        apps.list_replica_set_for_all_namespaces(**selector))),
                    ("Pod", lambda: _json(core.list_pod_for_all_namespaces(**selector)))]
            else:
                listings = [
                    ("StreamingTrainingJob", lambda ns=namespace: custom.list_namespaced_custom_object(
                        API_GROUP, API_VERSION, ns, PLURAL, **cached)),
                    ("Job", lambda ns=namespace: _json(batch.list_namespaced_job(ns, **selector))),
                    ("Deployment", lambda ns=namespace: _json(
                        apps.list_namespaced_deployment(ns, **selector))),
                    ("ReplicaSet", lambda ns=namespace: _json(
                        apps.list_namespaced_replica_set(ns, **selector))),
                    ("Pod", lambda ns=namespace: _json(core.list_namespaced_pod(ns, **selector)))]
            for kind, listing in listings:
                self.metrics.resync_lists.inc()
                document = listing()
                changed = self.store.replace(
                    kind, document.get("items") or [],
                    str((document.get("metadata") or {}).get("resourceVersion")), scope)
                if kind == "StreamingTrainingJob":
                    self._heal_jobs(document.get("items") or [], scope)
                missed |= self._jobs_of(kind, changed)
        with self._lock:
            return {key for key in missed if (known := self._known.get(key)) is not None
                    and not known.finished}

    def _heal_jobs(self, listed: list[Mapping[str, Any]], scope: list[str] | None) -> None:
        """Bring the known jobs in line with a fresh list of them."""
        for body in listed:
            meta = body["metadata"]
            known = self.known((meta["namespace"], meta["name"]))
            if known is None or known.uid != meta["uid"]:
                self.observe_job("LISTED", body)
        with self._lock:
            gone = [key for key in self._known if (scope is None or key[0] in scope)
                    and self.store.get("StreamingTrainingJob", key) is None]
        for key in gone:
            self._forget(key)

    def _jobs_of(self, kind: Kind, changed: list[dict[str, Any]]) -> set[Key]:
        """The jobs the changed objects belong to (by their job-uid label: a hint to look)."""
        if kind == "StreamingTrainingJob":
            return {(body["metadata"]["namespace"], body["metadata"]["name"]) for body in changed}
        with self._lock:
            return {key for body in changed if (key := self._owners.get(
                (body["metadata"].get("labels") or {}).get(JOB_UID_LABEL) or "")) is not None}

    def process(self, key: Key) -> None:
        """One pass over one job; errors are counted, logged and retried later."""
        started = time.monotonic()
        try:
            wake = self._pass(key)
            self._failures.pop(key, None)
        except Exception as error:
            self.metrics.reconcile_errors.inc()
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            wake = RETRY_DELAYS_S[min(failures, len(RETRY_DELAYS_S)) - 1]
            if isinstance(error, kubernetes.client.ApiException):
                log.warning("%s/%s: API error %s: %s; retrying in %.0f s", *key, error.status,
                            api_message(error), wake)
            else:
                log.exception("%s/%s: reconcile failed; retrying in %.0f s", *key, wake)
        finally:
            self.metrics.reconcile_seconds.observe(time.monotonic() - started)
        if wake is not None:
            self.queue.add_after(key, wake)

    def _pass(self, key: Key) -> float | None:
        namespace, name = key
        custom: Any = kubernetes.client.CustomObjectsApi(self.api)
        body = self.store.get("StreamingTrainingJob", key)
        if body is None:
            return None  # deleted; its DELETED event forgot it
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        status = body.get("status") or {}
        now = now_text()
        plan = reconcile(self.api, self.store, name, namespace, meta["uid"],
                         int(meta.get("generation") or 0), body.get("spec") or {}, status, now,
                         self.settings.pods, meta.get("labels"), self.ca)
        changes = status_patch(status, plan)
        if changes:
            written = custom.patch_namespaced_custom_object_status(
                API_GROUP, API_VERSION, namespace, PLURAL, name, {"status": changes})
            self.store.observe("StreamingTrainingJob", "PATCHED", written)
        for event in plan.events:
            self._events.put((body, event, now))
        with self._lock:
            known = self._known.get(key)
            if known is not None and known.uid == meta["uid"]:
                self._known[key] = dataclasses.replace(known, phase=plan.status.phase)
        self.metrics.observe_phase(f"{namespace}/{name}", plan.status.phase)
        return plan.wake_after_s
