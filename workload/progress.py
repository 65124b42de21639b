"""Live progress from a pod to the operator, without ever getting in the way of the work.

The progress displays (training's `TrainProgress`, evaluation's progress
bar, online learning's status line) call `report(...)`, which only stores
the latest figures and returns. A daemon thread posts them to the
operator's progress endpoint (`STREAMTRAIN_PROGRESS_URL`, HTTPS, its
certificate verified against the CA in `STREAMTRAIN_PROGRESS_CA`) with the
pod's projected service-account token (`STREAMTRAIN_PROGRESS_TOKEN`, valid for
that one job): when they changed, at most every `PROGRESS_MIN_INTERVAL_S`,
and at least every `PROGRESS_MAX_INTERVAL_S` as a heartbeat; and, whatever
the clock says, the figures of the moment a phase's percent enters a new
step of `PROGRESS_STEP_PERCENT` (10 %, 20 %, ...), each of them in order:
so a phase that ends within one interval on a fast machine still shows its
progress rising. Records per second, percent and the time left are worked
out here, from what was done between two posts, and for the first post
from the phase's start (so it has a time left too). An endpoint that cannot be reached is logged once and
then ignored: the pod keeps working, and its final figures still travel
in the termination message. The token and the CA are read again for every
post, since the kubelet renews the token and refreshes the CA (an operator
that restarted has a new one). Outside a pod (no URL in the environment)
`report` does nothing.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from workload.contract import (
    PROGRESS_CA_ENV,
    PROGRESS_MAX_INTERVAL_S,
    PROGRESS_MIN_INTERVAL_S,
    PROGRESS_STEP_PERCENT,
    PROGRESS_TOKEN_ENV,
    PROGRESS_URL_ENV,
    Mode,
    progress_step,
)
from workload.status import ProgressReport

SEND_TIMEOUT_S = 2.0
"""Seconds one post may take; the next one tries again."""

FINAL_ATTEMPTS = 3
"""Times the last post of a phase is tried before the pod ends without it (its figures still
travel in the termination message)."""

RATE_SMOOTHING = 0.5
"""Weight of the newest rate in the moving average (the rest is the previous average)."""

PENDING_STEPS = int(100 // PROGRESS_STEP_PERCENT) + 1
"""Step posts waiting at most (every step of a phase): an endpoint slower than the steps loses
the oldest first."""

log = logging.getLogger(__name__)

Sender = Callable[[str, str, bytes], None]
"""Posts a body to a URL with a bearer token; raises `OSError` when it cannot."""


def post_json(url: str, token: str, body: bytes, ca_file: Path | None = None) -> None:
    """POST `body` (JSON) to `url` with `token` as the bearer credential; an HTTPS server is
    verified against the CA in `ca_file` (the system's CAs without one)."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S, context=context) as response:
        response.read()


def verified_sender(ca_file: Path | None) -> Sender:
    """A sender that verifies the endpoint against the CA in `ca_file`, read at every post."""
    return lambda url, token, body: post_json(url, token, body, ca_file)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _percent(figures: Mapping[str, Any]) -> float | None:
    """Share of the phase's records done (0-100, one decimal); `None` without a total."""
    total = figures.get("records_total")
    if not total or "records" not in figures:
        return None
    return round(min(100.0, 100.0 * int(figures["records"]) / int(total)), 1)


class Reporter:
    """Keeps a phase's latest figures and posts them from a thread of its own."""

    def __init__(self, mode: Mode, url: str, token_file: Path, send: Sender = post_json,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.mode = mode
        self.url = url
        self.token_file = token_file
        self._send = send
        self._clock = clock
        self._lock = threading.Lock()
        self._figures: dict[str, Any] = {}
        self._changed = False
        self._rate: float | None = None
        self._last_sent = (clock(), 0)
        """(when, records) of the last post; before the first, the phase's start and 0 records,
        so the first post's rate and time left count from the start."""
        self._posted = False
        """Whether a post went out: a first post with nothing done yet sets no rate (a rate of 0
        would weigh on the average after it)."""
        self._steps: collections.deque[tuple[float, dict[str, Any]]] = collections.deque(
            maxlen=PENDING_STEPS)
        """(when, figures) of each step entered and not yet posted, oldest first."""
        self._step = -1
        """The highest step of `PROGRESS_STEP_PERCENT` entered so far."""
        self._failed = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def update(self, **figures: Any) -> None:
        """Store the latest figures (`records`, `records_total`, `epoch`, `epochs`, `loss`,
        `accuracy`, `auc`); cheap, never blocks on the network. Figures that enter a new step of
        the percent are kept as they are to be posted at once."""
        with self._lock:
            self._figures.update({key: value for key, value in figures.items()
                                  if value is not None})
            self._changed = True
            step = progress_step(_percent(self._figures))
            if step > self._step:
                self._step = step
                self._steps.append((self._clock(), dict(self._figures)))
                self._wake.set()

    def start(self) -> Reporter:
        """Start posting in the background."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Post the steps not posted yet and what changed since the last post, then stop. That
        last post is the phase's final word (e.g. the online learner's last promotion decision),
        so it is tried up to `FINAL_ATTEMPTS` times (the operator takes a repeated post once)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=SEND_TIMEOUT_S + 1)
        self.post_steps()
        for attempt in range(FINAL_ATTEMPTS):
            if self.flush(force=attempt > 0):
                return

    def _run(self) -> None:
        due = self._clock() + PROGRESS_MIN_INTERVAL_S
        while not self._stop.is_set():
            self._wake.wait(max(0.0, due - self._clock()))
            self._wake.clear()
            if self._stop.is_set():
                return
            self.post_steps()
            if self._clock() >= due:
                self.flush(force=self._clock() - self._last_sent[0] >= PROGRESS_MAX_INTERVAL_S)
                due = self._clock() + PROGRESS_MIN_INTERVAL_S

    def snapshot(self, figures: Mapping[str, Any] | None = None,
                 at: float | None = None) -> ProgressReport | None:
        """The report of `figures` at time `at` (default: the latest, now), as the next post
        would carry it (`None` before any figures)."""
        if figures is None:
            with self._lock:
                figures = dict(self._figures)
        if "records" not in figures:
            return None
        now = self._clock() if at is None else at
        then, records_then = self._last_sent
        records, total = int(figures["records"]), figures.get("records_total")
        if now > then and records >= records_then and (self._posted or records > 0):
            rate = (records - records_then) / (now - then)
            self._rate = rate if self._rate is None else (
                RATE_SMOOTHING * rate + (1 - RATE_SMOOTHING) * self._rate)
        eta = (round((total - records) / self._rate)
               if total and self._rate and records <= total else None)
        return ProgressReport(
            mode=self.mode, records=records, records_total=total, epoch=figures.get("epoch"),
            epochs=figures.get("epochs"), records_per_second=_finite(self._rate),
            percent=_percent(figures), eta_seconds=eta, loss=_finite(figures.get("loss")),
            accuracy=_finite(figures.get("accuracy")), auc=_finite(figures.get("auc")),
            model_version=figures.get("model_version"), runtime=figures.get("runtime"),
            promotions=figures.get("promotions"))

    def post_steps(self) -> None:
        """Post the figures of each step entered since the last call, in order."""
        while True:
            with self._lock:
                if not self._steps:
                    return
                at, figures = self._steps.popleft()
                if figures == self._figures:
                    self._changed = False  # this post carries the latest figures
            report = self._checked(figures, at)
            if report is not None:
                self._post(report, at)

    def flush(self, force: bool) -> bool:
        """Post the figures if they changed (or `force`); `False` if the post failed."""
        with self._lock:
            if not (self._changed or force):
                return True
            self._changed = False
        report = self._checked()
        if report is None:
            return True
        return self._post(report, self._clock())

    def _checked(self, figures: Mapping[str, Any] | None = None,
                 at: float | None = None) -> ProgressReport | None:
        """`snapshot`, or `None` when a figure is out of its range (the operator would refuse
        the post; the pod's work goes on)."""
        try:
            return self.snapshot(figures, at)
        except ValidationError as error:
            log.warning("live progress not posted: %s", error.errors()[0]["msg"])
            return None

    def _post(self, report: ProgressReport, at: float) -> bool:
        self._last_sent, self._posted = (at, report.records), True
        try:
            token = self.token_file.read_text().strip()
            self._send(self.url, token, report.model_dump_json(by_alias=True,
                                                               exclude_none=True).encode())
        except OSError as error:
            level = logging.DEBUG if self._failed else logging.WARNING
            log.log(level, "live progress not delivered to %s (%s); training goes on, the final "
                    "figures go in the termination message", self.url, error)
            self._failed = True
            return False
        return True


_current: Reporter | None = None


def active() -> bool:
    """Whether this process reports live progress (a pod with a channel)."""
    return _current is not None


def report(**figures: Any) -> None:
    """Hand the current phase's figures to the reporter, if this process has one."""
    reporter = _current
    if reporter is not None:
        reporter.update(**figures)


@contextlib.contextmanager
def channel(mode: Mode, environ: Mapping[str, str] | None = None,
            send: Sender | None = None) -> Iterator[Reporter | None]:
    """Report `mode`'s progress while the block runs, when the environment names a channel
    (`send`: how to post; by default HTTPS verified against the channel's CA)."""
    global _current
    env = os.environ if environ is None else environ
    url, token = env.get(PROGRESS_URL_ENV), env.get(PROGRESS_TOKEN_ENV)
    if not url or not token:
        yield None
        return
    ca = env.get(PROGRESS_CA_ENV)
    reporter = Reporter(mode, url, Path(token),
                        send or verified_sender(Path(ca) if ca else None)).start()
    _current = reporter
    try:
        yield reporter
    finally:
        _current = None
        reporter.close()

