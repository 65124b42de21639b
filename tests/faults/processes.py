"""Child processes of the fault scenarios: the workload modes run apart from the test process.

Why children: the faults are SIGKILLs of the workload itself, and a process
that has used tensorflow-io crashes when its broker goes away while it
lives, so every mode that meets a broker restart runs in a child.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workload.spec import StreamingTrainingJobSpec, dump_spec

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
EVALUATE_CHILD = INTEGRATION / "evaluate_child.py"
ONLINE_CHILD = INTEGRATION / "online_child.py"
TRAIN_CHILD = Path(__file__).with_name("train_child.py")
QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def spec_file(spec: StreamingTrainingJobSpec, path: Path) -> Path:
    """Write `spec` as JSON for a child's command line."""
    path.write_text(json.dumps(dump_spec(spec)))
    return path


def command(script: Path, *arguments: object) -> list[str]:
    """`python script arguments...` with this interpreter."""
    return [sys.executable, str(script), *(str(argument) for argument in arguments)]


def start(arguments: list[str], output: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a child; its output goes to `output` (appended) or nowhere."""
    if output is None:
        return subprocess.Popen(arguments, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=QUIET)
    with output.open("ab") as sink:
        return subprocess.Popen(arguments, stdout=sink, stderr=subprocess.STDOUT, env=QUIET)


def run_to_end(arguments: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run a child to its end (stdout kept: the last line is its pod report)."""
    return subprocess.run(arguments, capture_output=True, text=True, timeout=timeout_s,
                          env=QUIET, check=False)


def wait_for(condition: Callable[[], bool], child: subprocess.Popen[bytes], timeout_s: float,
             what: str) -> None:
    """Poll `condition` every 10 ms while `child` runs; raise after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if child.poll() is not None:
            return
        if time.monotonic() > deadline:
            child.kill()
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


def sigkill(child: subprocess.Popen[bytes]) -> int:
    """SIGKILL the child and reap it; its return code (-9 when it was still running)."""
    child.send_signal(signal.SIGKILL)
    return child.wait(30)


def wait_for_thread(condition: Callable[[], bool], thread: threading.Thread, timeout_s: float,
                    what: str) -> None:
    """Poll `condition` every 10 ms while `thread` runs; raise after `timeout_s` or if the thread
    ends first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if not thread.is_alive():
            raise RuntimeError(f"the run ended before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


def kill_pid(pid: int) -> None:
    """SIGKILL a process another part of the test started (and reaps)."""
    os.kill(pid, signal.SIGKILL)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's content, or None when it does not exist (yet)."""
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return document
