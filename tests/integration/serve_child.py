"""Run one serving replica in its own process (the fault and scaling tests kill and stop it).

Usage: python serve_child.py SPEC_JSON OUTPUT_DIR REPLICA
SIGUSR1 prints every thread's stack to stderr (what a test that times out shows). Prints the
pod report, then whether TensorFlow was loaded; exit code 0 when serving ended cleanly (SIGTERM, or idle for the
spec's `serve.streamTimeoutMs`), 1 when it failed.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from workload.artifacts import Artifacts
from workload.kafka.connection import connection_for
from workload.modes.serve import run_serve
from workload.spec import parse_spec


def main() -> int:
    faulthandler.register(signal.SIGUSR1)  # a stuck test asks where every thread is
    spec = parse_spec(json.loads(Path(sys.argv[1]).read_text()))
    report = run_serve("child", spec, connection_for(spec.kafka), Artifacts(Path(sys.argv[2])),
                       progress=False, replica=sys.argv[3])
    print(report.to_message(), flush=True)
    # What the process loaded: a replica scoring with LiteRT never imports TensorFlow.
    print(json.dumps({"tensorflowLoaded": "tensorflow" in sys.modules}), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)  # a hung librdkafka call may still hold its thread: no teardown
