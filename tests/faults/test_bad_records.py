"""Malformed records: 1% are set aside by reason, 30% fail the run with a clear message."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import KafkaHandle
from tests.faults.bad_records import malformed_records
from tests.faults.figures import describe, unmet


def test_one_percent_bad_records_are_set_aside_and_thirty_percent_fail_clearly(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    figures = malformed_records(kafka.bootstrap_servers, tmp_path)
    assert len(figures) == 2 * 4 + 2
    assert not unmet(figures), describe(figures)
