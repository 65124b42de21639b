"""A phase of several replicas run locally retries as a Job would: not after a permanent failure."""

from __future__ import annotations

import sys
from pathlib import Path

from workload.artifacts import Artifacts
from workload.local_group import run_local_group
from workload.spec import parse_spec
from workload.status import PodReport

FAKE_POD = """
import os, sys
from pathlib import Path
from workload.status import PodReport
with open(sys.argv[1], "a") as starts:  # appends: replicas start side by side
    starts.write(os.environ["JOB_COMPLETION_INDEX"])
reason, code = sys.argv[2], int(sys.argv[3])
report = PodReport(mode="evaluate", ok=False, message="why", reason=reason or None)
Path(os.environ["STREAMTRAIN_TERMINATION_LOG"]).write_text(report.to_message())
sys.exit(code)
"""


def _run(tmp_path: Path, reason: str, code: int) -> tuple[PodReport, str]:
    spec = parse_spec({"kafka": {"bootstrapServers": "k:9092"}, "evaluate": {"topic": "t"},
                       "model": {"source": {"job": "a"}}, "evaluator": {"replicas": 2},
                       "runPolicy": {"backoffLimit": 2}})
    starts = tmp_path / "starts"
    report = run_local_group("evaluate", "susy", spec, "k:9092", Artifacts(tmp_path / "out"),
                             command=[sys.executable, "-c", FAKE_POD, str(starts), reason,
                                      str(code)])
    return report, starts.read_text()


def test_a_permanent_failure_ends_the_phase_without_starting_the_process_again(
        tmp_path: Path) -> None:
    report, starts = _run(tmp_path, "TopicNotFound", 6)
    assert report.reason == "TopicNotFound" and report.message == "why"
    # None started again (a replica still starting when the other fails may be stopped first).
    assert starts and len(starts) == len(set(starts)) and set(starts) <= {"0", "1"}


def test_another_failure_is_retried_up_to_the_backoff_limit(tmp_path: Path) -> None:
    report, starts = _run(tmp_path, "", 1)
    assert report.reason is None and len(starts) > 2  # started again after failing
    assert "(3 failed processes, runPolicy.backoffLimit 2)" in report.message
