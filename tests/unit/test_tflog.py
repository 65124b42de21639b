"""Routine tensorflow-io log lines are dropped from stderr; real errors always get through."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, sys
from workload import tflog
tflog.filter_routine_stderr()
os.write(2, b"2026 E kafka_kernels.cc:198] EOF Message: Broker: No more messages\\n")
os.write(2, b"E cuda_fft.cc:479] Unable to register cuFFT factory: Attempting\\n")
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"I0000 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\\n")
os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error (303)\\n")
os.write(2, b"E kafka_kernels.cc:41] Failed to consume: Broker: Unknown topic\\n")
print("python traceback line", file=sys.stderr, flush=True)
if sys.argv[1] == "abort":
    os.write(2, b"last words before a crash\\n")
    os.abort()
"""


def run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True,
                          text=True, timeout=30, check=False)


def test_routine_lines_are_dropped_and_errors_pass() -> None:
    result = run("exit")
    assert result.returncode == 0
    assert "EOF Message" not in result.stderr and "cuFFT" not in result.stderr
    assert "absl" not in result.stderr and "cuda" not in result.stderr.lower()
    assert "Failed to consume: Broker: Unknown topic" in result.stderr
    assert "python traceback line" in result.stderr


def test_what_a_crashing_process_wrote_last_still_arrives() -> None:
    result = run("abort")
    assert result.returncode != 0
    assert "last words before a crash" in result.stderr
