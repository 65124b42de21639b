"""The termination message: written where Kubernetes reads it, never fatal when it cannot be."""

from __future__ import annotations

from pathlib import Path

from workload.contract import TERMINATION_LOG_ENV
from workload.status import Metrics, PodReport
from workload.termination import (
    DEFAULT_TERMINATION_LOG,
    termination_log_path,
    write_termination_message,
)


def test_report_is_written_and_parses_back(tmp_path: Path) -> None:
    report = PodReport(mode="evaluate", ok=True, metrics=Metrics(eval_accuracy=0.8))
    path = tmp_path / "termination-log"
    assert write_termination_message(report, path)
    assert PodReport.from_message(path.read_text()) == report


def test_long_failure_message_stays_within_four_kib(tmp_path: Path) -> None:
    report = PodReport(mode="evaluate", ok=False, message="why " * 5000)
    path = tmp_path / "termination-log"
    write_termination_message(report, path)
    assert len(path.read_bytes()) <= 4096
    parsed = PodReport.from_message(path.read_text())
    assert parsed is not None and not parsed.ok


def test_unwritable_path_is_reported_not_raised(tmp_path: Path) -> None:
    report = PodReport(mode="online", ok=True)
    assert not write_termination_message(report, tmp_path / "missing-folder" / "log")


def test_environment_overrides_the_default_path() -> None:
    assert termination_log_path({}) == DEFAULT_TERMINATION_LOG
    assert termination_log_path({TERMINATION_LOG_ENV: "/tmp/x"}) == Path("/tmp/x")
