"""Run one evaluation in its own process (the exactly-once test kills it with SIGKILL).

Usage: python evaluate_child.py SPEC_JSON OUTPUT_DIR CHUNK_RECORDS
Prints the pod report; exit code 0 when the evaluation completed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from workload.artifacts import Artifacts
from workload.kafka.connection import connection_for
from workload.modes.evaluate import run_evaluate
from workload.spec import parse_spec


def main() -> int:
    spec = parse_spec(json.loads(Path(sys.argv[1]).read_text()))
    artifacts = Artifacts(Path(sys.argv[2]))
    report = run_evaluate("child", spec, connection_for(spec.kafka), artifacts,
                          progress=False, chunk_records=int(sys.argv[3]))
    print(report.to_message(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
