"""Hand a pod's final figures to the operator through the container termination message.

The kubelet copies the file at the container's `terminationMessagePath`
(default `/dev/termination-log`) into the pod's status, at most 4 KiB; the
operator reads it from there, so pods need no API access. Outside a pod the
path usually does not exist or is not writable: the report is then only
logged, never an error, because losing the message must not fail the work.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from workload.contract import TERMINATION_LOG, TERMINATION_LOG_ENV
from workload.status import PodReport

DEFAULT_TERMINATION_LOG = Path(TERMINATION_LOG)
"""Kubernetes' default `terminationMessagePath`."""

log = logging.getLogger(__name__)


def termination_log_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the termination message goes: the environment's override or Kubernetes' default."""
    env = os.environ if environ is None else environ
    override = env.get(TERMINATION_LOG_ENV)
    return Path(override) if override else DEFAULT_TERMINATION_LOG


def write_termination_message(report: PodReport, path: Path | None = None) -> bool:
    """Write `report` (compact JSON, <= 4 KiB) to the termination log; `False` if it could not."""
    target = path if path is not None else termination_log_path()
    try:
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(report.to_message())
    except OSError as error:
        log.warning("could not write the termination message to %s: %s", target, error)
        return False
    return True
