"""The progress endpoint: pods post their live figures here, and they land in `status.progress`.

The pattern of Kubeflow Trainer (KEP-2779): a pod proves which job it
belongs to with a projected service-account token whose audience is that
one job (`contract.progress_audience`: namespace, name and uid), and the
operator checks it with a TokenReview: authenticated, of that audience, of
a service account of the job's namespace, bound to a pod of one of the
job's child Jobs. A verified token is remembered for `TOKEN_CACHE_S`, so a
pod costs one TokenReview per few minutes, not one per post. No pod gets
any verb on the Kubernetes API, and the token is useless anywhere else (the
API server accepts only its own audience).

A post for a phase the job is not in (a late post of a finished phase) is
ignored. The figures are written with a merge patch of `status.progress`
only, at most every `PROGRESS_MIN_INTERVAL_S` per job, except a post that
starts a phase or enters a new `PROGRESS_STEP_PERCENT` step of it, which
is written at once (at most 11 such writes per phase); `lastProgressTime`
moves when the records (or the epoch) grew, which is what
`runPolicy.progressDeadlineSeconds` measures.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

import kubernetes
from aiohttp import web
from pydantic import ValidationError

from streamtrain_operator.builders import child_job_name
from streamtrain_operator.clock import now_text
from streamtrain_operator.controller import Controller, Key
from workload.contract import (
    API_GROUP,
    MODE,
    MODES,
    PROGRESS_MIN_INTERVAL_S,
    progress_audience,
    progress_step,
)
from workload.spec import API_VERSION, PLURAL
from workload.status import Progress, ProgressReport

TOKEN_CACHE_S = 300.0
"""Seconds a verified token is trusted without asking the API server again."""

BODY_LIMIT = 16 * 1024
"""Bytes of a post the endpoint reads (a report is a few hundred)."""

POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
"""The TokenReview `user.extra` key naming the pod a projected token is bound to."""

log = logging.getLogger("streamtrain_operator")


def progress_status(report: ProgressReport, previous: Progress | None, now: str) -> Progress:
    """`status.progress` from a pod's report; `lastProgressTime` moves only when work was done."""
    moved = (previous is None or previous.mode != report.mode
             or (report.records or 0) > (previous.records or 0)
             or (report.epoch or 0) > (previous.epoch or 0))
    figures = report.model_dump(exclude={"mode"})
    return Progress(mode=report.mode, **figures, last_update_time=now,
                    last_progress_time=now if moved or previous is None
                    else previous.last_progress_time)


def stepped(report: ProgressReport, previous: Progress | None) -> bool:
    """Whether `report` starts a phase or enters a higher step of its percent than the last
    written (`PROGRESS_STEP_PERCENT`): the records' own cadence, whatever the clock says."""
    if previous is None or previous.mode != report.mode:
        return True
    return progress_step(report.percent) > progress_step(previous.percent)


class TokenChecker:
    """TokenReviews, with verified tokens remembered for a while."""

    def __init__(self, api: kubernetes.client.ApiClient,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.clock = clock
        self._verified: dict[tuple[str, str], float] = {}

    def problem(self, token: str, audience: str, namespace: str, job_name: str) -> str | None:
        """Why `token` may not post for the job (`None`: it may)."""
        key = (hashlib.sha256(token.encode()).hexdigest(), audience)
        now = self.clock()
        if self._verified.get(key, 0.0) > now:
            return None
        reviews: Any = kubernetes.client.AuthenticationV1Api(self.api)
        review = reviews.create_token_review({"spec": {"token": token, "audiences": [audience]}})
        status = review.status
        if not status.authenticated or audience not in (status.audiences or []):
            return "the token is not valid for this job"
        user = status.user
        if not str(user.username).startswith(f"system:serviceaccount:{namespace}:"):
            return "the token is not of a service account of the job's namespace"
        pod = ((user.extra or {}).get(POD_NAME_EXTRA) or [""])[0]
        if not any(pod.startswith(child_job_name(job_name, mode) + "-") for mode in MODES):
            return "the token is not bound to a pod of the job"
        self._verified = {k: v for k, v in self._verified.items() if v > now}
        self._verified[key] = now + TOKEN_CACHE_S
        return None


class ProgressEndpoint:
    """An aiohttp server on kopf's event loop; blocking API calls go to worker threads."""

    def __init__(self, api: kubernetes.client.ApiClient, controller: Controller,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.controller = controller
        self.tokens = TokenChecker(api, clock)
        self.clock = clock
        # Per job (and its uid: a job made again under the same name starts afresh): when
        # progress was last written, and what.
        self._written: dict[Key, tuple[str, float, Progress]] = {}
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        """The web application (one route)."""
        app = web.Application(client_max_size=BODY_LIMIT)
        app.router.add_post("/progress/{namespace}/{name}", self.handle)
        return app

    async def start(self, address: str, port: int) -> None:
        """Listen on `address:port`."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, address, port).start()

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        """One post: authenticate, validate, write `status.progress`."""
        key: Key = (request.match_info["namespace"], request.match_info["name"])
        known = self.controller.known(key)
        if known is None:
            return web.Response(status=404, text="no such job")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not token:
            return web.Response(status=401, text="a bearer token is required")
        audience = progress_audience(*key, known.uid)
        loop = asyncio.get_running_loop()
        try:
            problem = await loop.run_in_executor(None, self.tokens.problem, token, audience,
                                                 *key)
        except kubernetes.client.ApiException as error:
            log.warning("%s/%s: TokenReview failed: %s", *key, error.reason)
            return web.Response(status=503, text="the token could not be checked")
        if problem is not None:
            return web.Response(status=403, text=problem)
        try:
            report = ProgressReport.model_validate_json(await request.read())
        except ValidationError as error:
            return web.Response(status=400, text=str(error.errors()[0]["msg"]))
        if MODE[report.mode].phase != known.phase:
            return web.Response(status=409, text=f"the job is not in {report.mode}")
        self._forget_gone()
        await loop.run_in_executor(None, self._write, key, known.uid, report)
        return web.Response(status=204)

    def _forget_gone(self) -> None:
        """Drop what was written for jobs that no longer exist (or exist anew), so memory stays
        bounded by the jobs the operator knows."""
        for key, (uid, _, _) in list(self._written.items()):
            known = self.controller.known(key)
            if known is None or known.uid != uid:
                self._written.pop(key, None)

    def _write(self, key: Key, uid: str, report: ProgressReport) -> None:
        """Patch `status.progress`, at most every `PROGRESS_MIN_INTERVAL_S` per job, and at once
        for a phase's first post and each new step of its percent (`stepped`)."""
        written_uid, last, previous = self._written.get(
            key, (uid, -PROGRESS_MIN_INTERVAL_S, None))
        if written_uid != uid:
            last, previous = -PROGRESS_MIN_INTERVAL_S, None
        now = self.clock()
        if now - last < PROGRESS_MIN_INTERVAL_S and not stepped(report, previous):
            return
        progress = progress_status(report, previous, now_text())
        custom: Any = kubernetes.client.CustomObjectsApi(self.api)
        # Every field written, absent ones as null: a merge patch would keep stale ones.
        body = {"status": {"progress": progress.model_dump(mode="json", by_alias=True)}}
        custom.patch_namespaced_custom_object_status(API_GROUP, API_VERSION, key[0], PLURAL,
                                                     key[1], body)
        self._written[key] = (uid, now, progress)
