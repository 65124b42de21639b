"""Run training in its own process (the fault scenarios kill it with SIGKILL).

Usage: python train_child.py SPEC_JSON OUTPUT_DIR
Prints the pod report; exit code 0 when training completed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from workload.artifacts import Artifacts
from workload.kafka_connection import connection_for
from workload.modes.train import run_train
from workload.spec import parse_spec


def main() -> int:
    spec = parse_spec(json.loads(Path(sys.argv[1]).read_text()))
    report = run_train("child", spec, connection_for(spec.kafka), Artifacts(Path(sys.argv[2])),
                       progress=False)
    print(report.to_message(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
