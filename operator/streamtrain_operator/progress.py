"""The progress endpoint: a job's own pods post their live figures here, over TLS, and they land
in `status.progress`.

The pattern of Kubeflow Trainer (KEP-2779): a pod proves which job it
belongs to with a projected service-account token whose audience is that
one job (`contract.progress_audience`: namespace, name and uid). A post is
accepted only when a TokenReview says the token is authentic, of that
audience, of a service account of the job's namespace, and bound to a pod
(name and uid) that exists now, carries the job's uid label and is
controlled by a child Job that the job controls (a serving pod: by a
ReplicaSet of the serving Deployment the job controls): the last three are checked
against what the watches hold (`store.py`), with no API call. A
verified token is remembered for `TOKEN_CACHE_S` (a pod costs one
TokenReview per few minutes, not one per post); the pod is checked at every
post. No pod gets any verb on the Kubernetes API, and the token is useless
anywhere else (the API server accepts only its own audience).

A refused post changes nothing, and every refusal reads the same, whether
the job exists or not: nobody learns job names by probing. The reason is in
the operator's log. The figures are validated where they enter
(`workload.status.ProgressReport`: each in its range, finite, records within
their total): a bad body gets 400 naming the field; no body gets a 500.

A post for a phase the job is not in (a late post of a finished phase) is
ignored. A serving pod's post (`mode: serve`, beside the phases) is summed
per pod into `status.serving` (`serving_progress.py`), the pod known by the
name its reviewed token is bound to, never by what it says. Within a phase
progress never goes backwards (a resumed pod may count from its checkpoint).
The figures are written with a merge patch of `status.progress` only, at most every `PROGRESS_MIN_INTERVAL_S` per job,
except a post that starts a phase or enters a new `PROGRESS_STEP_PERCENT`
step of it, which is written at once (at most 11 such writes per phase);
`lastProgressTime` moves when the pod's records (or epoch) grew since its
last post, which is what `runPolicy.progressDeadlineSeconds` measures.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes
import urllib3
from aiohttp import web
from pydantic import ValidationError

from streamtrain_operator.clock import now_text
from streamtrain_operator.controller import Controller, Key
from streamtrain_operator.planner import Event
from streamtrain_operator.serving_progress import JobServing
from streamtrain_operator.store import Store
from workload.contract import (
    API_GROUP,
    MODE,
    PROGRESS_MIN_INTERVAL_S,
    TERMINAL_PHASES,
    progress_audience,
    progress_step,
)
from workload.spec import API_VERSION, PLURAL
from workload.status import Progress, ProgressReport, PromotionReport, ServingStatus

TOKEN_CACHE_S = 300.0
"""Seconds a verified token is trusted without asking the API server again."""

BODY_LIMIT = 16 * 1024
"""Bytes of a post the endpoint reads (a report is a few hundred)."""

SWEEP_S = 60.0
"""Seconds between two sweeps of what was written for jobs that are gone."""

POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
"""The TokenReview `user.extra` key naming the pod a projected token is bound to."""

POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid"
"""The TokenReview `user.extra` key with that pod's uid."""

REFUSED = "refused: no job of this name accepts progress with this token"
"""The one answer (403) to every post that may not write: no token, a bad one, one of another
job or pod, or a job that does not exist."""

API_ERRORS = (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError)
"""What a call to the API server may raise: answered 503 (the pod posts again), never 500."""

log = logging.getLogger("streamtrain_operator")


def progress_status(report: ProgressReport, previous: Progress | None, now: str,
                    previous_report: ProgressReport | None = None) -> Progress:
    """`status.progress` from a pod's report.

    Within the phase of `previous`, `percent` never goes backwards. `lastProgressTime` moves
    when work was done: the phase is new, or the records (or the epoch) grew since the pod's
    `previous_report` (or, without one, beyond `previous`)."""
    same_phase = previous is not None and previous.mode == report.mode
    before = previous_report if previous_report is not None and previous_report.mode == \
        report.mode else previous if same_phase else None
    moved = (not same_phase or before is None
             or report.records > (before.records or 0)
             or (report.epoch or 0) > (before.epoch or 0))
    figures = report.model_dump(exclude={"mode", "model_version", "runtime", "promotions"})
    if same_phase and previous is not None and previous.percent is not None:
        figures["percent"] = max(previous.percent, report.percent or 0.0)
    return Progress(mode=report.mode, **figures, last_update_time=now,
                    last_progress_time=now if moved or previous is None
                    else previous.last_progress_time)


def stepped(report: ProgressReport, previous: Progress | None) -> bool:
    """Whether `report` starts a phase or enters a higher step of its percent than the last
    written (`PROGRESS_STEP_PERCENT`): the records' own cadence, whatever the clock says."""
    if previous is None or previous.mode != report.mode:
        return True
    return progress_step(report.percent) > progress_step(previous.percent)


def _body_problem(error: ValidationError) -> str:
    """Each invalid field and why, for the 400 answer (never the value of anything else)."""
    problems = []
    for item in error.errors()[:5]:
        field = ".".join(str(part) for part in item["loc"])
        problems.append(f"{field}: {item['msg']}" if field else str(item["msg"]))
    return "invalid progress report: " + "; ".join(problems)


@dataclass(frozen=True)
class Reviewed:
    """What a TokenReview said of a token."""

    username: str
    pod: str
    pod_uid: str
    until: float
    """When to ask again (monotonic clock)."""


class TokenChecker:
    """TokenReviews, with reviewed tokens remembered for a while; the pod's membership is
    checked at every post against the watches."""

    def __init__(self, api: kubernetes.client.ApiClient, store: Store,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.store = store
        self.clock = clock
        self._reviewed: dict[tuple[str, str], Reviewed] = {}

    def problem(self, token: str, audience: str, namespace: str, job_uid: str) -> str | None:
        """Why `token` may not post for the job (`None`: it may)."""
        key = (hashlib.sha256(token.encode()).hexdigest(), audience)
        now = self.clock()
        reviewed = self._reviewed.get(key)
        if reviewed is None or reviewed.until <= now:
            found = self._review(token, audience)
            if isinstance(found, str):
                return found
            reviewed = Reviewed(*found, until=now + TOKEN_CACHE_S)
            self._reviewed = {k: v for k, v in self._reviewed.items() if v.until > now}
            self._reviewed[key] = reviewed
        if not reviewed.username.startswith(f"system:serviceaccount:{namespace}:"):
            return "the token is not of a service account of the job's namespace"
        if not reviewed.pod:
            return "the token is not bound to a pod"
        return self.store.pod_problem(namespace, reviewed.pod, reviewed.pod_uid, job_uid)

    def _review(self, token: str, audience: str) -> tuple[str, str, str] | str:
        """(user name, pod name, pod uid) of an authentic token of `audience`, else why not."""
        reviews: Any = kubernetes.client.AuthenticationV1Api(self.api)
        review = reviews.create_token_review({"spec": {"token": token, "audiences": [audience]}})
        status = review.status
        if not status.authenticated or audience not in (status.audiences or []):
            return "the token is not valid for this job"
        extra = status.user.extra or {}
        return (str(status.user.username), (extra.get(POD_NAME_EXTRA) or [""])[0],
                (extra.get(POD_UID_EXTRA) or [""])[0])

    def pod(self, token: str, audience: str) -> str:
        """The pod a token that `problem` accepted is bound to ("" when it reviewed none)."""
        reviewed = self._reviewed.get((hashlib.sha256(token.encode()).hexdigest(), audience))
        return reviewed.pod if reviewed is not None else ""


class ProgressEndpoint:
    """An aiohttp server on kopf's event loop; blocking API calls go to worker threads."""

    def __init__(self, api: kubernetes.client.ApiClient, controller: Controller,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.controller = controller
        self.tokens = TokenChecker(api, controller.store, clock)
        self.clock = clock
        # Per job (and its uid: a job made again under the same name starts afresh): when
        # progress was last written, and the report written then.
        self._written: dict[Key, tuple[str, float, ProgressReport]] = {}
        self._serving: dict[Key, JobServing] = {}
        """Per job: what its serving pods posted (`serving_progress`)."""
        self._runner: web.AppRunner | None = None
        self._swept = -SWEEP_S

    def app(self) -> web.Application:
        """The web application (one route)."""
        app = web.Application(client_max_size=BODY_LIMIT)
        app.router.add_post("/progress/{namespace}/{name}", self.handle)
        return app

    async def start(self, address: str, port: int, tls: ssl.SSLContext | None) -> None:
        """Listen on `address:port` (HTTPS with `tls`)."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, address, port, ssl_context=tls).start()

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        """One post: authenticate, validate, write `status.progress`."""
        key: Key = (request.match_info["namespace"], request.match_info["name"])
        known = self.controller.known(key)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if known is None or not token:
            log.debug("%s/%s: progress post refused: %s", *key,
                      "no such job" if known is None else "no token")
            return web.Response(status=403, text=REFUSED)
        audience = progress_audience(*key, known.uid)
        loop = asyncio.get_running_loop()
        try:
            problem = await loop.run_in_executor(None, self.tokens.problem, token, audience,
                                                 key[0], known.uid)
        except API_ERRORS as error:
            log.warning("%s/%s: TokenReview failed: %s", *key, getattr(error, "reason", error))
            return web.Response(status=503, text="the token could not be checked")
        if problem is not None:
            log.warning("%s/%s: progress post refused: %s", *key, problem)
            return web.Response(status=403, text=REFUSED)
        try:
            report = ProgressReport.model_validate_json(await request.read())
        except ValidationError as error:
            return web.Response(status=400, text=_body_problem(error))
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text=f"a report is at most {BODY_LIMIT} bytes")
        self._forget_gone()
        try:
            if report.mode == "serve":  # serving runs beside the phases, until the job ends
                if known.phase in TERMINAL_PHASES:
                    return web.Response(status=409, text="the job has ended")
                await loop.run_in_executor(None, self._write_serving, key, known.uid,
                                           self.tokens.pod(token, audience), report)
                return web.Response(status=204)
            if report.promotions and known.phase not in TERMINAL_PHASES:
                # Taken even from a learner's last post after its phase ended: its replicas
                # serve what it promoted, so the decision must be on record.
                await loop.run_in_executor(None, self._write_promotions, key, known.uid,
                                           report.promotions)
            if MODE[report.mode].phase != known.phase:
                return web.Response(status=409, text=f"the job is not in {report.mode}")
            await loop.run_in_executor(None, self._write, key, known.uid, report)
        except API_ERRORS as error:
            log.warning("%s/%s: progress not written: %s", *key, getattr(error, "reason", error))
            return web.Response(status=503, text="the progress could not be written")
        return web.Response(status=204)

    def _forget_gone(self) -> None:
        """Drop what was written for jobs that no longer exist (or exist anew), so memory stays
        bounded by the jobs the operator knows; at most every `SWEEP_S` (a sweep visits every
        job that posted)."""
        now = self.clock()
        if now - self._swept < SWEEP_S:
            return
        self._swept = now
        for key, (uid, _, _) in list(self._written.items()):
            known = self.controller.known(key)
            if known is None or known.uid != uid:
                self._written.pop(key, None)
        for key, serving in list(self._serving.items()):
            known = self.controller.known(key)
            if known is None or known.uid != serving.uid:
                self._serving.pop(key, None)

    def _write_serving(self, key: Key, uid: str, pod: str, report: ProgressReport) -> None:
        """Sum a serving pod's post into `status.serving`, written at most every
        `PROGRESS_MIN_INTERVAL_S` per job, and at once when the version changes."""
        serving = self._job_serving(key, uid)
        changed = serving.post(pod, report.records, report.model_version, now_text(),
                               report.runtime)
        now = self.clock()
        if (not changed and serving.written_at is not None
                and now - serving.written_at < PROGRESS_MIN_INTERVAL_S):
            return
        self._patch_serving(key, serving, {"records_served", "version", "since", "runtime"})
        serving.written_at = now

    def _job_serving(self, key: Key, uid: str) -> JobServing:
        """What this operator knows of the job's serving, begun from its status (as the watch
        last showed it)."""
        serving = self._serving.get(key)
        if serving is None or serving.uid != uid:
            body = self.controller.store.get("StreamingTrainingJob", key) or {}
            current = ServingStatus.model_validate((body.get("status") or {}).get("serving")
                                                   or {})
            serving = self._serving[key] = JobServing(uid, current.records_served or 0,
                                                      current.version, current.since,
                                                      last_decision=current.last_decision)
        return serving

    def _patch_serving(self, key: Key, serving: JobServing, fields: set[str]) -> None:
        figures = serving.status(None).model_dump(mode="json", by_alias=True, include=fields)
        custom: Any = kubernetes.client.CustomObjectsApi(self.api)
        written = custom.patch_namespaced_custom_object_status(
            API_GROUP, API_VERSION, key[0], PLURAL, key[1], {"status": {"serving": figures}})
        self.controller.store.observe("StreamingTrainingJob", "PATCHED", written)

    def _write_promotions(self, key: Key, uid: str, decisions: list[PromotionReport]) -> None:
        """The online learner's decisions not seen before: `status.serving` and an Event each."""
        serving = self._job_serving(key, uid)
        fresh = [decision for decision in decisions if serving.decided(decision)]
        if not fresh:
            return
        self._patch_serving(key, serving, {"promotions", "rejections", "last_decision"})
        for decision in fresh:
            self.controller.post_event(key, uid, Event(
                "Normal", "ModelPromoted",
                f"challenger promoted: {decision.version} serves now; {decision.why}")
                if decision.promoted else Event(
                "Normal", "PromotionRejected",
                f"challenger not promoted, {decision.version} serves on; {decision.why}"))

    def _write(self, key: Key, uid: str, report: ProgressReport) -> None:
        """Patch `status.progress`, at most every `PROGRESS_MIN_INTERVAL_S` per job, and at once
        for a phase's first post and each new step of its percent (`stepped`)."""
        written_uid, last, previous_report = self._written.get(
            key, (uid, -PROGRESS_MIN_INTERVAL_S, None))
        if written_uid != uid:
            last, previous_report = -PROGRESS_MIN_INTERVAL_S, None
        now = self.clock()
        previous = self.controller.progress(key, uid)
        if now - last < PROGRESS_MIN_INTERVAL_S and not stepped(report, previous):
            return
        progress = progress_status(report, previous, now_text(), previous_report)
        custom: Any = kubernetes.client.CustomObjectsApi(self.api)
        # Every field written, absent ones as null: a merge patch would keep stale ones.
        body = {"status": {"progress": progress.model_dump(mode="json", by_alias=True)}}
        written = custom.patch_namespaced_custom_object_status(API_GROUP, API_VERSION, key[0],
                                                               PLURAL, key[1], body)
        self.controller.store.observe("StreamingTrainingJob", "PATCHED", written)
        self._written[key] = (uid, now, report)
