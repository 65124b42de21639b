"""Serving figures: throughput with and without transactions, latency at 1,000 records/s, start-up.

Registers four measurements with the benchmark harness (imported by
`bench.input_pipeline`), all on the local Kafka 4 broker and all but
`serve_categorical` with the default model (the tutorial's network, robust
preprocessing) exported as the trainer exports it (Keras file and its LiteRT
scorer):
- `serve_rps`: one replica (`run_serve` in this process, LiteRT, no
  TensorFlow in its scoring) serving the test topic (two partitions) into a
  new topic, transactions at the default `serve.batchSize` and
  `maxLatencyMs`: records over the time from its first record read to its
  last commit; `serve_plain_rps` the same loop without transactions
  (outputs flushed, then the offsets committed: at-least-once, the anchors'
  way); `serve_txn_ratio` the first over the second;
- `serve_p50_ms`, `serve_p99_ms`: from a record's produce time (a header the
  prediction carries back) to its prediction being read by a
  `read_committed` consumer, records produced at 1,000 per second for
  `LATENCY_SECONDS` into a replica running as a pod runs it
  (`streamtrain run-mode serve`, its own process), after `WARMUP_SECONDS`
  at the same rate whose records are timed apart as `serve_warmup_p99_ms`
  (a broker started for the benchmark spends its first seconds compiling
  the transaction path: commits of 100-280 ms there, 6 ms at the median
  after, which a broker serving for days no longer shows). The reader is a plain
  consumer as a downstream user would run one: `read_committed`, a group
  of its own, `fetch.wait.max.ms` 10 (what a latency-minded reader sets);
  a record is timed as soon as `poll` hands over the first of its batch
  (`_read`);
- `serve_categorical_rps`: the same one replica with transactions serving the
  tickets family (JSON requests, three categorical fields, six queues) with a
  multiclass model trained on it for one epoch and exported as the trainer
  exports it (its LiteRT scorer takes the fields' raw strings); the decoding
  is JSON's, so it is not the figure above with strings alone changed;
- `serve_first_prediction_s`: from starting `streamtrain run-mode serve` (a
  new process, as a pod's container starts, records already waiting) to the
  first prediction a `read_committed` consumer reads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, Message, Producer

from bench.harness import TARGETS, BenchContext, Target, measurement
from workload.artifacts import Artifacts, file_digest
from workload.contract import BOOTSTRAP_ENV, JOB_NAME_ENV, JOB_SPEC_ENV, TERMINATION_LOG_ENV
from workload.datagen.records import encode
from workload.datagen.synthetic import generate
from workload.datagen.task_families import TICKETS
from workload.kafka.admin import ensure_topic
from workload.kafka.producer import produce_messages
from workload.model.build import build_model
from workload.model.litert import export_litert
from workload.model.profile import TrainingProfile
from workload.model.statistics import feature_statistics
from workload.modes.serve import run_serve
from workload.runner import run_phases
from workload.spec import DataSpec, ModelSpec, StreamingTrainingJobSpec, dump_spec, parse_spec

TARGETS.extend([
    Target("serve_rps", None, 50_000),
    Target("serve_rps", "serve_plain_rps", 0.8),
    Target("serve_p99_ms", None, 250, upper=True),
    Target("serve_first_prediction_s", None, 2.0, upper=True),
])

LATENCY_RATE = 1000
"""Records per second produced for the latency figures."""

LATENCY_SECONDS = 20
"""Seconds of producing at that rate for `serve_p50_ms` and `serve_p99_ms`."""

WARMUP_SECONDS = 5
"""Seconds of producing at that rate first, timed apart (`serve_warmup_p99_ms`)."""

CATEGORICAL_TRAIN_ROWS = 5_000
"""Tickets the categorical model is trained on (one epoch)."""

CATEGORICAL_REQUESTS = 100_000
"""Tickets served for `serve_categorical_rps`."""

SENT_HEADER = "bench.sent-ns"
"""Header holding a record's produce time (`time.time_ns()`), copied to its prediction."""

INDEX_HEADER = "bench.index"
"""Header holding a record's place in the stream (warm-up records first)."""


def _served_model(context: BenchContext) -> Path:
    """An output folder with the default model and its LiteRT scorer, as a trainer leaves it."""
    folder = Path(tempfile.mkdtemp(prefix="streamtrain-bench-serve-"))
    artifacts = Artifacts(folder).prepare()
    features = context.data.features.astype(np.float32)
    model = build_model(ModelSpec(), DataSpec(features=features.shape[1]),
                        TrainingProfile(feature_statistics(features)))
    model.save(artifacts.keras_model)
    outcome = export_litert(model, artifacts.keras_model, file_digest(artifacts.keras_model),
                            features)
    if not outcome.ok:
        raise RuntimeError(f"the default model has no LiteRT scorer: {outcome.detail}")
    return folder


def _spec(context: BenchContext, folder: Path, source: str, **serve: Any
          ) -> StreamingTrainingJobSpec:
    return StreamingTrainingJobSpec.model_validate({
        "kafka": {"bootstrapServers": context.connection.bootstrap_servers},
        "serve": {"inputTopic": source, "outputTopic": f"{source}-out-{uuid.uuid4().hex[:6]}",
                  "consumerGroup": f"bench-serve-{uuid.uuid4().hex[:8]}", **serve},
        "model": {"output": {"path": str(folder)}},
    })


@measurement("serving: one replica with transactions at the default size, and without")
def serve_throughput(context: BenchContext) -> dict[str, float]:
    folder = _served_model(context)
    rates: dict[bool, float] = {}
    for transactional in (True, False, True, False):  # the better of two passes of each
        spec = _spec(context, folder, context.test_topic, streamTimeoutMs=1000)
        report = run_serve("bench", spec, context.connection, Artifacts(folder), progress=False,
                           transactional=transactional)
        if not report.ok:
            raise RuntimeError(report.message)
        results = json.loads(Artifacts(folder).results("serve").read_text())
        served = report.metrics.records_served or 0
        rate = served / results["servingSeconds"]
        rates[transactional] = max(rates.get(transactional, 0.0), rate)
    return {"serve_rps": rates[True], "serve_plain_rps": rates[False],
            "serve_txn_ratio": rates[True] / rates[False]}


@measurement("serving: a model with categorical fields (tickets, JSON), with transactions")
def serve_categorical(context: BenchContext) -> dict[str, float]:
    data = TICKETS.data_spec()
    rows = TICKETS.generate(CATEGORICAL_TRAIN_ROWS + CATEGORICAL_REQUESTS, seed=context.seed + 9)
    stamp = uuid.uuid4().hex[:8]
    train, source = f"bench-tickets-train-{stamp}", f"bench-tickets-requests-{stamp}"
    produce_messages(context.connection, train,
                     encode(rows.slice(0, CATEGORICAL_TRAIN_ROWS), data), 1)
    produce_messages(context.connection, source,
                     encode(rows.slice(CATEGORICAL_TRAIN_ROWS, rows.rows), data), 2)
    folder = Path(tempfile.mkdtemp(prefix="streamtrain-bench-tickets-"))
    job = {"kafka": {"bootstrapServers": context.connection.bootstrap_servers},
           "data": data.model_dump(mode="json", by_alias=True, exclude_none=True),
           "model": {"task": "multiclass", "output": {"path": str(folder)}}}
    (trained,) = run_phases("bench-tickets", parse_spec({**job, "train": {
        "topic": train, "epochs": 1}}), context.connection, Artifacts(folder), progress=False)
    if not trained.ok:
        raise RuntimeError(trained.message)
    spec = parse_spec({**job, "serve": {
        "inputTopic": source, "outputTopic": f"{source}-out",
        "consumerGroup": f"bench-serve-{stamp}", "streamTimeoutMs": 5000}})
    # Idle counts from the assignment; a broker's first group waits seconds more for its offsets.
    report = run_serve("bench-tickets", spec, context.connection, Artifacts(folder),
                       progress=False)
    if not report.ok:
        raise RuntimeError(report.message)
    results = json.loads(Artifacts(folder).results("serve").read_text())
    served = report.metrics.records_served or 0
    if results["runtime"] != "litert" or not served:
        raise RuntimeError(f"tickets: {served} served by {results['runtime']}")
    return {"serve_categorical_rps": served / results["servingSeconds"]}


def _pod_environment(spec: StreamingTrainingJobSpec, scratch: Path) -> dict[str, str]:
    """What a serving pod's container gets (the spec, the job, the Kafka address)."""
    return {**os.environ, JOB_SPEC_ENV: json.dumps(dump_spec(spec)), JOB_NAME_ENV: "bench",
            BOOTSTRAP_ENV: spec.kafka.bootstrap_servers or "",
            TERMINATION_LOG_ENV: str(scratch / "termination-log")}


def _start_replica(spec: StreamingTrainingJobSpec, folder: Path) -> subprocess.Popen[bytes]:
    """`streamtrain run-mode serve` as a pod runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "workload.cli", "run-mode", "serve", "--output-dir", str(folder)],
        env=_pod_environment(spec, folder), stdout=subprocess.DEVNULL,
        stderr=(folder / "serve.log").open("ab"))


def _reader(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    consumer.subscribe([topic])
    return consumer


def _stop(replica: subprocess.Popen[bytes]) -> None:
    replica.send_signal(signal.SIGTERM)
    try:
        replica.wait(60)
    except subprocess.TimeoutExpired:
        replica.kill()
        replica.wait()


@measurement("serving: produce to visible (read_committed) at 1,000 records/s")
def serve_latency(context: BenchContext) -> dict[str, float]:
    folder = _served_model(context)
    source = f"bench-serve-latency-{uuid.uuid4().hex[:8]}"
    ensure_topic(context.connection, source, 2)
    spec = _spec(context, folder, source)
    assert spec.serve is not None
    ensure_topic(context.connection, spec.serve.output_topic, 2)
    warmup = LATENCY_RATE * WARMUP_SECONDS
    rows = [message.value for message in encode(generate(
        warmup + LATENCY_RATE * LATENCY_SECONDS + 1, seed=context.seed + 7))]
    producer = Producer({"bootstrap.servers": context.connection.bootstrap_servers,
                         "linger.ms": 0, "enable.idempotence": True})
    reader = _reader(context.connection.bootstrap_servers, spec.serve.output_topic)
    replica = _start_replica(spec, folder)
    latencies: list[tuple[int, int]] = []
    try:
        producer.produce(source, rows[0], headers=[(SENT_HEADER, str(time.time_ns()))])
        producer.flush(10)
        _wait_for(reader, 1, 120)  # the replica is up and has answered
        done = threading.Event()

        def produce() -> None:
            start = time.monotonic()
            for index, value in enumerate(rows[1:]):
                delay = start + index / LATENCY_RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                producer.produce(source, value, partition=index % 2,
                                 headers=[(SENT_HEADER, str(time.time_ns())),
                                          (INDEX_HEADER, str(index))])
                producer.poll(0)
            producer.flush(30)
            done.set()

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        latencies = _latencies(reader, len(rows) - 1,
                               WARMUP_SECONDS + LATENCY_SECONDS + 60)
        thread.join(30)
    finally:
        _stop(replica)
        reader.close()
    measured = np.array([nanoseconds for index, nanoseconds in latencies if index >= warmup])
    warming = np.array([nanoseconds for index, nanoseconds in latencies if index < warmup])
    p50, p99 = np.percentile(measured / 1e6, [50, 99])
    return {"serve_p50_ms": float(p50), "serve_p99_ms": float(p99),
            "serve_warmup_p99_ms": float(np.percentile(warming / 1e6, 99))}


def _read(reader: Consumer, timeout_s: float) -> list[Message]:
    """What the reader has, as soon as it has anything (waiting at most `timeout_s` for the first
    record): `consume(n, timeout)` alone holds what has come back until `n` records have come or
    the timeout has passed, which added up to 50 ms of the reader's own to each latency."""
    first = reader.poll(timeout_s)
    return [] if first is None else [first, *reader.consume(1000, 0)]


def _wait_for(reader: Consumer, count: int, timeout_s: float) -> None:
    seen, deadline = 0, time.monotonic() + timeout_s
    while seen < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no prediction within {timeout_s} s")
        seen += sum(1 for message in _read(reader, 0.1) if message.error() is None)


def _latencies(reader: Consumer, count: int, timeout_s: float) -> list[tuple[int, int]]:
    """Each record's place in the stream and the nanoseconds from its produce to its
    prediction being read."""
    found: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < count and time.monotonic() < deadline:
        for message in _read(reader, 0.05):
            if message.error() is None:
                headers = dict(message.headers() or [])
                found.append((int(headers[INDEX_HEADER] or 0),
                               time.time_ns() - int(headers[SENT_HEADER] or 0)))
    if len(found) < count:
        raise TimeoutError(f"{len(found)} of {count} predictions within {timeout_s} s")
    return found


@measurement("serving: process start to first prediction")
def serve_start(context: BenchContext) -> dict[str, float]:
    folder = _served_model(context)
    source = f"bench-serve-start-{uuid.uuid4().hex[:8]}"
    ensure_topic(context.connection, source, 2)
    spec = _spec(context, folder, source)
    assert spec.serve is not None
    ensure_topic(context.connection, spec.serve.output_topic, 2)
    producer = Producer({"bootstrap.servers": context.connection.bootstrap_servers})
    for index, message in enumerate(encode(generate(1000, seed=context.seed + 8))):
        producer.produce(source, message.value, partition=index % 2)
    producer.flush(30)
    reader = _reader(context.connection.bootstrap_servers, spec.serve.output_topic)
    _wait_for_assignment(reader)
    started = time.monotonic()
    replica = _start_replica(spec, folder)
    try:
        _wait_for(reader, 1, 120)
        first = time.monotonic() - started
    finally:
        _stop(replica)
        reader.close()
    return {"serve_first_prediction_s": first}


def _wait_for_assignment(reader: Consumer) -> None:
    """Until the reader holds its partitions (so its own join is not timed)."""
    deadline = time.monotonic() + 60
    while not reader.assignment():
        if time.monotonic() > deadline:
            raise TimeoutError("the reader got no partitions")
        reader.consume(1, 0.1)
