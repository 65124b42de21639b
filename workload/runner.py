"""Run a job's phases in this process: what `streamtrain run` and each pod do.

A pod runs one mode (`run_mode`), chosen by the operator; a local run runs
every phase the spec asks for, in order (`run_phases`), and stops at the
first failure. Each mode returns a `PodReport`; the reports are the job's
result.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workload import tflog
from workload.artifacts import Artifacts
from workload.contract import JOB_NAME_ENV, JOB_SPEC_ENV, MODEL_SOURCE_ENV, OUTPUT_URI_ENV, Mode
from workload.data.kafka_login import login_refusal
from workload.kafka_connection import KafkaConnection
from workload.spec import StreamingTrainingJobSpec, parse_spec
from workload.status import PodReport

OUTPUT_DIR_ENV = "STREAMTRAIN_OUTPUT_DIR"
"""Environment variable that moves the output folder away from `spec.model.output.path`."""


def run_mode(
    mode: Mode,
    name: str,
    spec: StreamingTrainingJobSpec,
    connection: KafkaConnection,
    artifacts: Artifacts,
    *,
    progress: bool = True,
    stop_event: threading.Event | None = None,
    job_uid: str | None = None,
) -> PodReport:
    """Run one phase; errors the phase anticipates come back as a failed report.

    `job_uid` is the job's uid in a cluster (`None` locally): only checkpoints and ledgers
    of that job are resumed from.
    """
    tflog.quiet()
    artifacts.prepare()
    refused = login_refusal(connection)
    if refused is not None:
        return PodReport(mode=mode, ok=False, message=refused)
    if mode == "train":
        from workload.modes.train import run_train

        return run_train(name, spec, connection, artifacts, progress=progress, job_uid=job_uid)
    if mode == "evaluate":
        from workload.modes.evaluate import run_evaluate

        return run_evaluate(name, spec, connection, artifacts, progress=progress,
                            job_uid=job_uid)
    from workload.modes.online import run_online

    return run_online(name, spec, connection, artifacts, progress=progress,
                      stop_event=stop_event)


def run_phases(
    name: str,
    spec: StreamingTrainingJobSpec,
    connection: KafkaConnection,
    artifacts: Artifacts,
    *,
    progress: bool = True,
    on_report: Callable[[PodReport], None] | None = None,
) -> list[PodReport]:
    """Run train -> evaluate -> online as the spec asks; stop at the first failed phase."""
    reports: list[PodReport] = []
    for mode in spec.phases:
        report = run_mode(mode, name, spec, connection, artifacts, progress=progress)
        reports.append(report)
        if on_report is not None:
            on_report(report)
        if not report.ok:
            break
    return reports


def results_document(name: str, reports: list[PodReport], **extra: Any) -> dict[str, Any]:
    """A run's result as JSON: ok when every phase ran and succeeded, then each phase's report."""
    return {
        "job": name,
        "ok": bool(reports) and all(report.ok for report in reports),
        **extra,
        "phases": [report.model_dump(mode="json", by_alias=True, exclude_none=True)
                   for report in reports],
    }


def spec_from_environment(environ: Mapping[str, str] | None = None) -> tuple[str, StreamingTrainingJobSpec]:
    """The job name and spec handed to a pod by the operator."""
    env = os.environ if environ is None else environ
    if JOB_SPEC_ENV not in env:
        raise ValueError(f"{JOB_SPEC_ENV} is not set: run-mode reads the job spec from it")
    document: dict[str, Any] = json.loads(env[JOB_SPEC_ENV])
    return env.get(JOB_NAME_ENV, "job"), parse_spec(document)


def output_folder(spec: StreamingTrainingJobSpec, override: Path | None,
                  environ: Mapping[str, str] | None = None) -> Artifacts:
    """A pod's folders: output in the command line's choice, the environment's or
    `model.output.path` (where the operator mounts the job's folder of the claim); the
    source model where the operator mounted it."""
    env = os.environ if environ is None else environ
    root = override or Path(env.get(OUTPUT_DIR_ENV) or spec.model.output.path)
    source = env.get(MODEL_SOURCE_ENV)
    return Artifacts(root, location=env.get(OUTPUT_URI_ENV) or None,
                     source=Path(source) if source else None)


def local_folders(spec: StreamingTrainingJobSpec, output: Path,
                  source: Path | None = None) -> Artifacts:
    """A local run's folders: `output`, and the source model in `source`, or else for
    `model.source.job` the folder beside `output` named after that job (where a local run of
    it writes by default)."""
    named = spec.model.source
    if source is None and named is not None:
        if named.job is None:
            raise ValueError("spec.model.source.path names a folder on a volume claim: "
                             "give the local copy with --source-dir")
        source = output.resolve().parent / named.job
    return Artifacts(output, source=source)
