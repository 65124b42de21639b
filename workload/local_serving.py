"""Serving run locally: `serve.replicas` processes, as the pods of the job's Deployment.

`streamtrain run` starts serving once there is a model to serve (before
online learning, which runs beside it) as processes of `streamtrain run-mode
serve`, each given what a pod gets: the spec and job name, its replica name
(`SERVE_REPLICA_ENV`, `0..replicas-1`; its Kafka `transactional.id` is made
of it), the output folder and a termination log of its own. Their output
goes to `<output>/logs/serve-<i>.log`; they run in sessions of their own, so
Ctrl-C reaches this process only, which stops them with SIGTERM (each then
commits what it answered and leaves its consumer group).

A replica that fails is started again, as the Deployment's pod would be,
until `runPolicy.backoffLimit` failures in all. Serving ends when every
replica has ended: idle for `serve.streamTimeoutMs`, or stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from workload.artifacts import Artifacts
from workload.contract import (
    BOOTSTRAP_ENV,
    JOB_NAME_ENV,
    JOB_SPEC_ENV,
    MODEL_SOURCE_ENV,
    SERVE_REPLICA_ENV,
    TERMINATION_LOG_ENV,
)
from workload.data.decode import sum_counts
from workload.local_group import LOGS, POLL_S
from workload.spec import StreamingTrainingJobSpec, dump_spec
from workload.status import Metrics, PodReport

STOP_WAIT_S = 60.0
"""Seconds a replica has, once asked to stop, to commit and leave before it is killed."""


class LocalServing:
    """Serving replicas running as local processes."""

    def __init__(self, name: str, spec: StreamingTrainingJobSpec, bootstrap: str,
                 artifacts: Artifacts, environ: Mapping[str, str] | None = None) -> None:
        assert spec.serve is not None
        self._backoff_limit = spec.run_policy.backoff_limit
        self._scratch = tempfile.TemporaryDirectory(prefix="streamtrain-serve-")
        base = {**(os.environ if environ is None else environ),
                JOB_SPEC_ENV: json.dumps(dump_spec(spec), sort_keys=True), JOB_NAME_ENV: name,
                BOOTSTRAP_ENV: bootstrap}
        if artifacts.source is not None:
            base[MODEL_SOURCE_ENV] = str(artifacts.source)
        logs = artifacts.root / LOGS
        logs.mkdir(parents=True, exist_ok=True)
        self._argv = [sys.executable, "-m", "workload.cli", "run-mode", "serve", "--output-dir",
                      str(artifacts.root)]
        self._environments = [{**base, SERVE_REPLICA_ENV: str(index), TERMINATION_LOG_ENV: str(
            Path(self._scratch.name) / f"{index}.log")} for index in range(spec.serve.replicas)]
        self._logs = [logs / f"serve-{index}.log" for index in range(spec.serve.replicas)]
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * spec.serve.replicas
        self.failures = 0
        for index in range(spec.serve.replicas):
            self._start(index)

    def _start(self, index: int) -> None:
        Path(self._environments[index][TERMINATION_LOG_ENV]).write_text("")
        with self._logs[index].open("ab") as sink:
            self._processes[index] = subprocess.Popen(
                self._argv, env=self._environments[index], stdout=sink,
                stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self) -> PodReport:
        """Until every replica has ended (restarting failed ones); their merged report.
        Ctrl-C stops them first."""
        try:
            while any(process is not None and process.poll() is None
                      for process in self._processes):
                time.sleep(POLL_S)
                self._restart_failed()
        except KeyboardInterrupt:
            self.stop()
        return self._merged()

    def _restart_failed(self) -> None:
        for index, process in enumerate(self._processes):
            if process is None or process.poll() in (None, 0):
                continue
            self.failures += 1
            if self.failures > self._backoff_limit:
                self.stop()
                return
            self._start(index)

    def stop(self) -> None:
        """Ask every replica to stop (SIGTERM), kill what has not ended after `STOP_WAIT_S`."""
        running = [p for p in self._processes if p is not None and p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _merged(self) -> PodReport:
        """Every replica's report as one: records and bad records summed; failed if one did."""
        reports = [self._report(index) for index in range(len(self._processes))]
        self._scratch.cleanup()
        served = sum(report.metrics.records_served or 0 for report in reports)
        bad: dict[str, int] = {}
        for report in reports:
            sum_counts(bad, report.metrics.bad_records_by_reason or {})
        failed = [report for report in reports if not report.ok]
        message = "; ".join(f"replica {index}: {report.message}"
                            for index, report in enumerate(reports) if not report.ok)
        if failed and self.failures > self._backoff_limit:
            message = (f"serving failed ({self.failures} failed processes, runPolicy."
                       f"backoffLimit {self._backoff_limit}); {message}")
        rates = [report.records_per_second for report in reports if report.records_per_second]
        return PodReport(mode="serve", ok=not failed, message=message,
                         model_uri=reports[0].model_uri,
                         records_per_second=sum(rates) if rates else None,
                         metrics=Metrics(records_served=served, bad_records=sum(bad.values()),
                                         bad_records_by_reason=dict(sorted(bad.items()))))

    def _report(self, index: int) -> PodReport:
        text = Path(self._environments[index][TERMINATION_LOG_ENV]).read_text()
        found = PodReport.from_message(text or "null")
        if found is not None:
            return found
        tail = self._logs[index].read_text(errors="replace")[-1000:]
        return PodReport(mode="serve", ok=False,
                         message=f"serving replica {index} left no report; its output ends: {tail}")
