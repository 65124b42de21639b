"""One replica of a phase, as `streamtrain run-mode` runs it in a pod, with what the fault
scenarios watch (run by `workload.local_group` in place of `run-mode`, with the same environment).

Usage: python replica_child.py MODE OUTPUT_DIR WATCH_DIR SEED [CHUNK_RECORDS]
Writes its pid to WATCH_DIR/pid-<index> (so a scenario can SIGKILL it); a training worker is
seeded with SEED + index and appends each batch it is about to train to
WATCH_DIR/learned-<index> (`LEARNED` rows: epoch, fingerprint of the record's features); an
evaluator scores in chunks of CHUNK_RECORDS. Leaves its report in the termination log and exits
as `run-mode` does (`PEER_LOST_EXIT` when its group lost a peer).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from workload.artifacts import Artifacts
from workload.contract import PEER_LOST_EXIT
from workload.kafka.connection import connection_for
from workload.replica import PeerLost, replica_for
from workload.runner import spec_from_environment
from workload.status import PodReport
from workload.termination import write_termination_message

LEARNED = np.dtype([("epoch", "<u4"), ("fingerprint", "<u8")])
"""One record a worker is about to train: the epoch (0-based), a 64-bit fingerprint of it."""


def fingerprints(features: npt.NDArray[np.float32]) -> npt.NDArray[np.uint64]:
    """64-bit BLAKE2b fingerprints of feature rows (stable across processes)."""
    rows = np.ascontiguousarray(features, dtype=np.float32)
    return np.fromiter((int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(),
                                       "little") for row in rows), dtype=np.uint64)


def read_learned(path: Path) -> npt.NDArray[np.void]:
    """The rows of a learned log (a torn last row, of a worker killed mid-write, left out)."""
    data = path.read_bytes() if path.exists() else b""
    return np.frombuffer(data[:len(data) - len(data) % LEARNED.itemsize], dtype=LEARNED)


class LearnedLog:
    """A batch observer that appends each batch to the worker's learned log."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink

    def __call__(self, epoch: int, features: npt.NDArray[np.float32]) -> None:
        rows = np.empty(len(features), dtype=LEARNED)
        rows["epoch"], rows["fingerprint"] = epoch, fingerprints(features)
        self._sink.write(rows.tobytes())
        self._sink.flush()


def main() -> int:
    mode, output, watch, seed = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    name, spec = spec_from_environment()
    replica = replica_for(mode, spec, os.environ)  # type: ignore[arg-type]
    pid_file = watch / f"pid-{replica.index}"
    pid_file.with_suffix(".new").write_text(str(os.getpid()))
    pid_file.with_suffix(".new").replace(pid_file)  # never seen half written
    connection, artifacts = connection_for(spec.kafka), Artifacts(output)
    try:
        with contextlib.ExitStack() as files:
            if mode == "train":
                import keras

                from workload.modes.train import run_train

                keras.utils.set_random_seed(seed + replica.index)
                log = files.enter_context((watch / f"learned-{replica.index}").open("ab"))
                report = run_train(name, spec, connection, artifacts, progress=False,
                                   replica=replica, on_batch=LearnedLog(log))
            else:
                from workload.modes.evaluate import run_evaluate

                report = run_evaluate(name, spec, connection, artifacts, progress=False,
                                      replica=replica, chunk_records=int(sys.argv[5]))
    except PeerLost as lost:
        write_termination_message(PodReport(mode=mode, ok=False, message=str(lost)))  # type: ignore[arg-type]
        return PEER_LOST_EXIT
    write_termination_message(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # no interpreter teardown, as the CLI (tensorflow-io's clients)
