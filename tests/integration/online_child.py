"""Run online learning in its own process (the SIGTERM test stops it with a signal).

Usage: python online_child.py SPEC_JSON OUTPUT_DIR [LEARNED_LOG]
Prints the pod report; exit code 0 when the run ended cleanly.

With LEARNED_LOG, every learned record is appended to that file as one
`LEARNED` row (a fingerprint of its value, and the `time.monotonic()` at which
its batch was learned: the system-wide monotonic clock, so comparable with
other processes' on this machine), flushed after each batch, so a fault
scenario can tell which records were learned more than once, and when.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from workload.artifacts import Artifacts
from workload.kafka.connection import connection_for
from workload.modes.online import run_online
from workload.spec import parse_spec

LEARNED = np.dtype([("fingerprint", "<u8"), ("seconds", "<f8")])
"""One learned record: 64-bit fingerprint of its value, monotonic time of its batch."""


def fingerprints(values: Iterable[bytes]) -> npt.NDArray[np.uint64]:
    """64-bit BLAKE2b fingerprints of record values (stable across processes)."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(value, digest_size=8).digest(), "little")
                        for value in values), dtype=np.uint64)


def read_learned(path: Path) -> npt.NDArray[np.void]:
    """The rows of a learned-records log (empty when it does not exist; a torn last row,
    from a child killed mid-write, is left out)."""
    data = path.read_bytes() if path.exists() else b""
    return np.frombuffer(data[:len(data) - len(data) % LEARNED.itemsize], dtype=LEARNED)


class LearnedLog:
    """A batch observer for `run_online` that appends each learned batch to a file."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink

    def __call__(self, keys: list[bytes], values: list[bytes]) -> None:
        prints = fingerprints(values)
        rows = np.empty(len(prints), dtype=LEARNED)
        rows["fingerprint"] = prints
        rows["seconds"] = time.monotonic()
        self._sink.write(rows.tobytes())
        self._sink.flush()


def main() -> int:
    spec = parse_spec(json.loads(Path(sys.argv[1]).read_text()))
    artifacts = Artifacts(Path(sys.argv[2]))
    with contextlib.ExitStack() as files:
        on_batch = None
        if len(sys.argv) > 3:
            on_batch = LearnedLog(files.enter_context(Path(sys.argv[3]).open("ab")))
        report = run_online("child", spec, connection_for(spec.kafka), artifacts,
                            progress=False, on_batch=on_batch)
    print(report.to_message(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
