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
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workload import tflog
from workload.artifacts import Artifacts, read_json, write_json_atomic
from workload.contract import (
    JOB_NAME_ENV,
    JOB_SPEC_ENV,
    MODEL_FILE_ENV,
    MODEL_SOURCE_ENV,
    OUTPUT_URI_ENV,
    SERVE_REPLICA_ENV,
    FailureReason,
    Mode,
)
from workload.data.avro_schema import SchemaError
from workload.data.schema_registry import RegistryError
from workload.kafka.admin import TopicMissing, topic_partitions
from workload.kafka.connection import KafkaConnection
from workload.kafka.probe import (
    UNREACHABLE,
    connection_refusal,
    tensorflow_io_missing,
    tensorflow_io_refusal,
)
from workload.local_group import run_local_group
from workload.permanent import PermanentError
from workload.replica import SINGLE, Replica, replicas_of
from workload.spec import StreamingTrainingJobSpec, parse_spec
from workload.status import PodReport

if TYPE_CHECKING:
    from workload.local_serving import LocalServing

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
    first_phase: bool = True,
    replica: Replica = SINGLE,
) -> PodReport:
    """Run one phase (as `replica` of its replicas); errors the phase anticipates come back as
    a failed report.

    `job_uid` is the job's uid in a cluster (`None` locally): only checkpoints and ledgers
    of that job are resumed from. A phase that succeeds adds its wall time to its results
    file as `phaseSeconds`: what a user waits for, counted from the process's start for the
    first phase of a process (a pod: interpreter, imports, model load, group join included),
    else from this call.
    """
    started = process_started() if first_phase else time.monotonic()
    report = _run_mode(mode, name, spec, connection, artifacts, progress, stop_event, job_uid,
                       replica)
    # A failed phase may have written no results: an earlier run's stay as they are; replica 0
    # writes a phase's results.
    if report.ok and replica.chief:
        record_phase_time(artifacts.results(mode), time.monotonic() - started)
        if spec.data.format == "avro":
            record_schemas(artifacts.results(mode), spec, mode)
    return report


def _run_mode(mode: Mode, name: str, spec: StreamingTrainingJobSpec,
              connection: KafkaConnection, artifacts: Artifacts, progress: bool,
              stop_event: threading.Event | None, job_uid: str | None,
              replica: Replica) -> PodReport:
    tflog.quiet()
    artifacts.prepare()
    refused = kafka_refusal(spec, connection)
    if refused is not None:
        reason, message = refused
        return PodReport(mode=mode, ok=False, message=message, reason=reason)
    try:
        check_topic(spec, mode, connection)
        return _start_mode(mode, name, spec, connection, artifacts, progress, stop_event,
                           job_uid, replica)
    except PermanentError as error:  # one a mode did not catch itself
        return PodReport(mode=mode, ok=False, message=str(error), reason=error.reason)
    except (SchemaError, RegistryError) as error:  # the reader's schema, as a phase starts
        return PodReport(mode=mode, ok=False, message=f"schema registry: {error}")


def _start_mode(mode: Mode, name: str, spec: StreamingTrainingJobSpec,
                connection: KafkaConnection, artifacts: Artifacts, progress: bool,
                stop_event: threading.Event | None, job_uid: str | None,
                replica: Replica) -> PodReport:
    if mode == "train":
        from workload.modes.train import run_train

        return run_train(name, spec, connection, artifacts, progress=progress, job_uid=job_uid,
                         replica=replica)
    if mode == "evaluate":
        from workload.modes.evaluate import run_evaluate

        return run_evaluate(name, spec, connection, artifacts, progress=progress,
                            job_uid=job_uid, replica=replica)
    if mode == "serve":
        from workload.modes.serve import run_serve

        return run_serve(name, spec, connection, artifacts, progress=progress,
                         stop_event=stop_event, job_uid=job_uid,
                         replica=os.environ.get(SERVE_REPLICA_ENV) or str(replica.index))
    from workload.modes.online import run_online

    return run_online(name, spec, connection, artifacts, progress=progress,
                      stop_event=stop_event, job_uid=job_uid)


MANAGED_TOPIC_WAIT_S = 60.0
"""Seconds a pod waits for a topic of a job with `kafka.manageTopics` to appear: the operator
has just declared its `KafkaTopic`, and Strimzi's Topic Operator creates it within seconds."""


def check_topic(spec: StreamingTrainingJobSpec, mode: Mode, connection: KafkaConnection,
                poll_s: float = 1.0) -> None:
    """Raise `TopicMissing` (`TopicNotFound`) when the topic `mode` reads does not exist: asked
    before TensorFlow loads, so the pod fails in seconds and the Job starts no other. A topic
    the job's `KafkaTopic` declares gets `MANAGED_TOPIC_WAIT_S` to appear first."""
    section = getattr(spec, mode)
    if section is None:
        return  # the mode says itself that its section is missing
    deadline = time.monotonic() + (MANAGED_TOPIC_WAIT_S if spec.kafka.manage_topics else 0.0)
    while True:
        try:
            topic_partitions(connection, section.topic)
            return
        except TopicMissing:
            if time.monotonic() >= deadline:
                break
        time.sleep(poll_s)
    waited = (f" after waiting {MANAGED_TOPIC_WAIT_S:.0f} s for its KafkaTopic"
              if spec.kafka.manage_topics else "")
    raise TopicMissing(
        f"topic {section.topic!r} (spec.{mode}.{'inputTopic' if mode == 'serve' else 'topic'}) "
        "does not exist on "
        f"{connection.bootstrap_servers}{waited}: create it, or name a topic that exists")


def process_started() -> float:
    """`time.monotonic()` at which this process started (Linux; else now)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return time.monotonic()
    age = uptime - ticks / os.sysconf("SC_CLK_TCK")
    return time.monotonic() - max(age, 0.0)


def record_phase_time(results: Path, seconds: float) -> None:
    """Add the phase's wall time (and records per second of it) to its results file."""
    document = read_json(results)
    if not isinstance(document, dict):
        return
    records = document.get("recordsThisRun")
    document["phaseSeconds"] = round(seconds, 3)
    if isinstance(records, int) and seconds > 0:
        document["phaseRecordsPerSecond"] = round(records / seconds, 1)
    write_json_atomic(results, document)


def record_schemas(results: Path, spec: StreamingTrainingJobSpec, mode: Mode) -> None:
    """Add an Avro phase's schemas to its results file: the reader's (subject, version, id) and
    the records this pod read per writer schema id (`schemaIds`)."""
    from workload.data.avro_decode import made_for
    from workload.data.decode import for_topic

    document = read_json(results)
    decoder = made_for(for_topic(spec.data, getattr(spec, mode).topic))
    if not isinstance(document, dict) or decoder is None:
        return
    document["readerSchema"] = {"subject": decoder.subject, "version": decoder.reader_version,
                                "id": decoder.reader_id}
    document["schemaIds"] = {str(key): count for key, count in sorted(decoder.schema_ids.items())}
    write_json_atomic(results, document)


def kafka_refusal(spec: StreamingTrainingJobSpec,
                  connection: KafkaConnection) -> tuple[FailureReason, str] | None:
    """Why this job cannot use its brokers, as (reason, one sentence), or `None`: checked before
    a phase starts, so none hangs or dies obscurely. The reason is one of
    `contract.KAFKA_FAILURES`: a client this environment does not have (checked first: nothing
    else matters then), unreachable, a refused login (or TLS handshake), a client that cannot
    read these brokers."""
    if spec.kafka.client == "tensorflow-io":
        missing = tensorflow_io_missing()
        if missing is not None:
            return "KafkaClientUnsupported", missing
    refused = connection_refusal(connection)
    if refused is not None:
        unreachable = refused.startswith(UNREACHABLE)
        return ("KafkaUnreachable" if unreachable else "KafkaLoginRefused"), refused
    if spec.kafka.client == "tensorflow-io":
        unsupported = tensorflow_io_refusal(connection)
        if unsupported is not None:
            return "KafkaClientUnsupported", unsupported
    return None


def run_phases(
    name: str,
    spec: StreamingTrainingJobSpec,
    connection: KafkaConnection,
    artifacts: Artifacts,
    *,
    progress: bool = True,
    on_report: Callable[[PodReport], None] | None = None,
) -> list[PodReport]:
    """Run train -> evaluate -> online as the spec asks; stop at the first failed phase. A phase
    of several replicas runs as that many processes (`workload.local_group`). With `serve`,
    serving starts once there is a model (before online learning, which runs beside it) as
    processes of their own (`workload.local_serving`), and the run ends when serving does
    (idle for `serve.streamTimeoutMs`, or Ctrl-C)."""
    reports: list[PodReport] = []
    serving = None
    try:
        for index, mode in enumerate(spec.phases):
            if mode == "online" and spec.serve is not None:
                serving = _serve_locally(name, spec, connection, artifacts)
            if replicas_of(mode, spec) > 1:
                report = run_local_group(mode, name, spec, connection.bootstrap_servers, artifacts)
            else:
                report = run_mode(mode, name, spec, connection, artifacts, progress=progress,
                                  first_phase=index == 0)
            reports.append(report)
            if on_report is not None:
                on_report(report)
            if not report.ok:
                if serving is not None:
                    serving.stop()
                break
        else:
            if spec.serve is not None and serving is None:
                serving = _serve_locally(name, spec, connection, artifacts)
        if serving is not None:
            report = serving.wait()
            reports.append(report)
            if on_report is not None:
                on_report(report)
    except BaseException:
        if serving is not None:
            serving.stop()
        raise
    return reports


def _serve_locally(name: str, spec: StreamingTrainingJobSpec, connection: KafkaConnection,
                   artifacts: Artifacts) -> LocalServing:
    from workload.local_serving import LocalServing

    return LocalServing(name, spec, connection.bootstrap_servers, artifacts)


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
    source, model_file = env.get(MODEL_SOURCE_ENV), env.get(MODEL_FILE_ENV)
    return Artifacts(root, location=env.get(OUTPUT_URI_ENV) or None,
                     source=Path(source) if source else None,
                     model_file=Path(model_file) if model_file else None)


def local_folders(spec: StreamingTrainingJobSpec, output: Path,
                  source: Path | None = None) -> Artifacts:
    """A local run's folders: `output`, and the source model in `source`, or else for
    `model.source.job` the folder beside `output` named after that job (where a local run of
    it writes by default); `model.file` is read relative to the current folder."""
    named = spec.model.source
    if source is None and named is not None:
        if named.job is None:
            raise ValueError("spec.model.source.path names a folder on a volume claim: "
                             "give the local copy with --source-dir")
        source = output.resolve().parent / named.job
    model_file = Path(spec.model.file.path).resolve() if spec.model.file is not None else None
    return Artifacts(output, source=source, model_file=model_file)
