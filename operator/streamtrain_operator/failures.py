"""How a failure reads, and when a phase that makes no progress has failed. Pure functions.

A condition or event message is one sentence: what failed, why (the pod's
own message, or the last line of the exception it died of) and where to
look; the traceback stays in the pod's log. A running phase whose records
have not grown for `runPolicy.progressDeadlineSeconds` fails with reason
`ProgressDeadlineExceeded`, measured from the live progress the pods post
(`status.progress.lastProgressTime`) or, before the first post, from the
start of its child Job.
"""

from __future__ import annotations

import re

from streamtrain_operator.clock import seconds_between
from workload.contract import Mode
from workload.spec import FOREVER, StreamingTrainingJobSpec
from workload.status import PodReport, Progress

MESSAGE_LIMIT = 1024
"""Characters of a pod's failure text copied into conditions and events."""

EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Available|"
                            r"Refused|Timeout|Failure)\b(?::.*)?$")
"""The last line of a Python traceback: `package.SomeError: what happened`."""

DEADLINE_REASON = "ProgressDeadlineExceeded"


def one_sentence(text: str) -> str:
    """The gist of a failure text: of a traceback, the exception's line; else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and
             not set(line.strip()) <= set("^~ ")]
    if not lines:
        return ""
    for line in reversed(lines):
        if EXCEPTION_LINE.match(line):
            return line[:MESSAGE_LIMIT]
    return lines[-1][:MESSAGE_LIMIT]


def failure_text(report_text: str | None, job_message: str = "") -> str:
    """A failed pod's reason in one sentence: its report's message, else the gist of its
    termination text (a crash's log tail), else the Job's own message."""
    if report_text:
        report = PodReport.from_message(report_text)
        if report is not None and report.message:
            return report.message[:MESSAGE_LIMIT]
        return one_sentence(report_text)
    return one_sentence(job_message)


def failure_message(mode: Mode, reason: str, why: str, child: str) -> str:
    """The condition and event message of a failed phase."""
    cause = f": {why.rstrip('.')}" if why else ""
    return f"{mode} failed ({reason}){cause}; the pod log has the rest (kubectl logs job/{child})"


def deadline_exempt(spec: StreamingTrainingJobSpec, mode: Mode) -> bool:
    """Whether `mode` may wait without progress for ever (it streams with no timeout)."""
    timeout: int | None = getattr(getattr(spec, mode), "stream_timeout_ms", None)
    return timeout == FOREVER


def seconds_left(spec: StreamingTrainingJobSpec, mode: Mode, started: str | None,
                 progress: Progress | None, now: str) -> float | None:
    """Seconds until `mode` exceeds its progress deadline (<= 0: exceeded); `None` when no
    deadline applies (none set, exempt, suspended, or its pods have not started)."""
    deadline = spec.run_policy.progress_deadline_seconds
    if deadline is None or spec.run_policy.suspend or started is None or deadline_exempt(
            spec, mode):
        return None
    last = started
    if (progress is not None and progress.mode == mode and progress.last_progress_time
            and progress.last_progress_time > last):
        last = progress.last_progress_time
    return deadline - seconds_between(last, now)


def deadline_message(mode: Mode, spec: StreamingTrainingJobSpec, child: str) -> str:
    """Why a phase was stopped for making no progress."""
    deadline = spec.run_policy.progress_deadline_seconds
    return (f"{mode} made no progress for {deadline} s (runPolicy.progressDeadlineSeconds), so "
            f"its pods were stopped; the pod log says where it stood (kubectl logs job/{child})")

