"""Live progress from a pod to the operator, without ever getting in the way of the work.

The progress displays (training's `TrainProgress`, evaluation's progress
bar, online learning's status line) call `report(...)`, which only stores
the latest figures and returns. A daemon thread posts them to the
operator's progress endpoint (`STREAMTRAIN_PROGRESS_URL`) with the pod's
projected service-account token (`STREAMTRAIN_PROGRESS_TOKEN`, valid for
that one job): when they changed, at most every `PROGRESS_MIN_INTERVAL_S`,
and at least every `PROGRESS_MAX_INTERVAL_S` as a heartbeat. Records per
second, percent and the time left are worked out here, from what was done
between two posts. An endpoint that cannot be reached is logged once and
then ignored: the pod keeps working, and its final figures still travel
in the termination message. Outside a pod (no URL in the environment)
`report` does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from workload.contract import (
    PROGRESS_MAX_INTERVAL_S,
    PROGRESS_MIN_INTERVAL_S,
    PROGRESS_TOKEN_ENV,
    PROGRESS_URL_ENV,
    Mode,
)
from workload.status import ProgressReport

SEND_TIMEOUT_S = 2.0
"""Seconds one post may take; the next one tries again."""

RATE_SMOOTHING = 0.5
"""Weight of the newest rate in the moving average (the rest is the previous average)."""

log = logging.getLogger(__name__)

Sender = Callable[[str, str, bytes], None]
"""Posts a body to a URL with a bearer token; raises `OSError` when it cannot."""


def post_json(url: str, token: str, body: bytes) -> None:
    """POST `body` (JSON) to `url` with `token` as the bearer credential."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as response:
        response.read()


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


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
        self._last_sent = (-math.inf, 0)
        """(when, records) of the last post."""
        self._failed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def update(self, **figures: Any) -> None:
        """Store the latest figures (`records`, `records_total`, `epoch`, `epochs`, `loss`,
        `accuracy`, `auc`); cheap, never blocks on the network."""
        with self._lock:
            self._figures.update({key: value for key, value in figures.items()
                                  if value is not None})
            self._changed = True

    def start(self) -> Reporter:
        """Start posting in the background."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Post what changed since the last post, then stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=SEND_TIMEOUT_S + 1)
        self.flush(force=False)

    def _run(self) -> None:
        while not self._stop.wait(PROGRESS_MIN_INTERVAL_S):
            self.flush(force=self._clock() - self._last_sent[0] >= PROGRESS_MAX_INTERVAL_S)

    def snapshot(self) -> ProgressReport | None:
        """The report the next post would carry (`None` before any figures)."""
        with self._lock:
            figures = dict(self._figures)
        if "records" not in figures:
            return None
        now = self._clock()
        then, records_then = self._last_sent
        records, total = int(figures["records"]), figures.get("records_total")
        if math.isfinite(then) and now > then and records >= records_then:
            rate = (records - records_then) / (now - then)
            self._rate = rate if self._rate is None else (
                RATE_SMOOTHING * rate + (1 - RATE_SMOOTHING) * self._rate)
        percent = round(min(100.0, 100.0 * records / total), 1) if total else None
        eta = (round((total - records) / self._rate)
               if total and self._rate and records <= total else None)
        return ProgressReport(
            mode=self.mode, records=records, records_total=total, epoch=figures.get("epoch"),
            epochs=figures.get("epochs"), records_per_second=_finite(self._rate),
            percent=percent, eta_seconds=eta, loss=_finite(figures.get("loss")),
            accuracy=_finite(figures.get("accuracy")), auc=_finite(figures.get("auc")))

    def flush(self, force: bool) -> bool:
        """Post the figures if they changed (or `force`); `False` if the post failed."""
        with self._lock:
            if not (self._changed or force):
                return True
            self._changed = False
        report = self.snapshot()
        if report is None:
            return True
        self._last_sent = (self._clock(), report.records)
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
            send: Sender = post_json) -> Iterator[Reporter | None]:
    """Report `mode`'s progress while the block runs, when the environment names a channel."""
    global _current
    env = os.environ if environ is None else environ
    url, token = env.get(PROGRESS_URL_ENV), env.get(PROGRESS_TOKEN_ENV)
    if not url or not token:
        yield None
        return
    reporter = Reporter(mode, url, Path(token), send).start()
    _current = reporter
    try:
        yield reporter
    finally:
        _current = None
        reporter.close()

