"""A phase of several replicas run locally: N processes, as the pods of an Indexed Job.

`streamtrain run` runs a phase with `replicas: N` (`spec.trainer` or
`spec.evaluator`) as N processes of `streamtrain run-mode <mode>`, each given
what a pod gets: the spec and job name, its index (`WORKER_INDEX_ENV`), for
training every worker's address (`WORKERS_ENV`, ports on 127.0.0.1 picked
here, the same for the whole phase as a headless Service's names are), the
output folder and a termination log of its own. So the path pods take is
the path a local run takes.

Failures are handled as the Job controller and its pod failure policy
handle them: a process that fails is started again with the same index,
and the phase fails once more than `runPolicy.backoffLimit` processes have
failed; a training worker that exits with `PEER_LOST_EXIT` (its group lost a
peer) is started again without being counted, and one that exits with a
permanent failure's code (`contract.PERMANENT_FAILURES`) fails the phase at
once. Replica 0's report speaks for the phase, as the operator reads it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workload.artifacts import Artifacts
from workload.contract import (
    BOOTSTRAP_ENV,
    JOB_NAME_ENV,
    JOB_SPEC_ENV,
    MODEL_SOURCE_ENV,
    NOT_RETRIED_EXIT_CODES,
    PEER_LOST_EXIT,
    TERMINATION_LOG_ENV,
    WORKER_INDEX_ENV,
    WORKERS_ENV,
    Mode,
)
from workload.replica import replicas_of
from workload.spec import StreamingTrainingJobSpec, dump_spec
from workload.status import PodReport

POLL_S = 0.2
"""Seconds between looks at the processes."""

LOGS = "logs"
"""Folder of the output folder where each process's output goes (`<mode>-<index>.log`)."""


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 now."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class _Replica:
    index: int
    environment: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def termination_log(self) -> Path:
        return Path(self.environment[TERMINATION_LOG_ENV])

    def start(self, command: Sequence[str]) -> None:
        self.termination_log.write_text("")
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(list(command), env=self.environment, stdout=sink,
                                            stderr=subprocess.STDOUT)

    def report(self, mode: Mode) -> PodReport:
        """The process's termination message, or a failed report with its log's tail."""
        found = PodReport.from_message(self.termination_log.read_text() or "null")
        if found is not None:
            return found
        tail = self.log.read_text(errors="replace")[-1000:] if self.log.exists() else ""
        return PodReport(mode=mode, ok=False,
                         message=f"replica {self.index} left no report; its output ends: {tail}")


def run_local_group(mode: Mode, name: str, spec: StreamingTrainingJobSpec, bootstrap: str,
                    artifacts: Artifacts, *, command: Sequence[str] | None = None,
                    environ: Mapping[str, str] | None = None) -> PodReport:
    """Run `mode` as `spec`'s replicas of it, each a process; replica 0's report (or the report
    of the process that failed once too often)."""
    count = replicas_of(mode, spec)
    base = {**(os.environ if environ is None else environ), JOB_SPEC_ENV: json.dumps(dump_spec(spec), sort_keys=True),
            JOB_NAME_ENV: name, BOOTSTRAP_ENV: bootstrap}
    if artifacts.source is not None:
        base[MODEL_SOURCE_ENV] = str(artifacts.source)
    if mode == "train":
        base[WORKERS_ENV] = ",".join(f"127.0.0.1:{port}" for port in free_ports(count))
    argv = list(command or [sys.executable, "-m", "workload.cli", "run-mode", mode,
                            "--output-dir", str(artifacts.root)])
    logs = artifacts.root / LOGS
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"streamtrain-{mode}-") as scratch:
        replicas = [_Replica(index, {**base, WORKER_INDEX_ENV: str(index),
                                     TERMINATION_LOG_ENV: str(Path(scratch) / f"{index}.log")},
                             logs / f"{mode}-{index}.log") for index in range(count)]
        try:
            return _supervise(mode, replicas, argv, spec.run_policy.backoff_limit)
        finally:
            for replica in replicas:
                if replica.process is not None and replica.process.poll() is None:
                    replica.process.kill()
                    replica.process.wait()


def _supervise(mode: Mode, replicas: list[_Replica], argv: list[str],
               backoff_limit: int) -> PodReport:
    for replica in replicas:
        replica.start(argv)
    failures, done = 0, set[int]()
    while len(done) < len(replicas):
        time.sleep(POLL_S)
        for replica in replicas:
            assert replica.process is not None
            code = replica.process.poll()
            if code is None or replica.index in done:
                continue
            if code == 0:
                done.add(replica.index)
                continue
            if code in NOT_RETRIED_EXIT_CODES:  # as the Job's pod failure policy: no retry
                return replica.report(mode)
            if code != PEER_LOST_EXIT:
                failures += 1
                if failures > backoff_limit:
                    report = replica.report(mode)
                    return report.model_copy(update={"message": (
                        f"{mode} failed ({failures} failed processes, runPolicy.backoffLimit "
                        f"{backoff_limit}); replica {replica.index}: {report.message}")})
            replica.start(argv)
    return replicas[0].report(mode)
