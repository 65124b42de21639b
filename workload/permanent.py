"""Failures no retry can fix, as exceptions that carry their reason.

Each reason is a row of `contract.PERMANENT_FAILURES` (with the exit code on
which the child Job fails at once). A mode lets such an error rise or catches
it; either way the pod's report names the reason (`reason_of`), the pod exits
with its code, and the job shows it as REASON with the error's message.
"""

from __future__ import annotations

from typing import ClassVar

from workload.contract import FailureReason


class PermanentError(Exception):
    """A failure another pod would meet too: the same spec, topic, data or Kafka."""

    reason: ClassVar[FailureReason]
    """Its row in `contract.PERMANENT_FAILURES`."""


def reason_of(error: BaseException) -> FailureReason | None:
    """The permanent reason of `error`, or `None` when a retry may help."""
    return error.reason if isinstance(error, PermanentError) else None


class ShapeMismatch(PermanentError, ValueError):
    """A saved model takes another number of features than the job's data has."""

    reason = "ShapeMismatch"
