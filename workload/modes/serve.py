"""Serve mode: predict each record of a topic into another topic, exactly once, as records arrive.

A serving replica is a member of `serve.consumerGroup` on `serve.inputTopic`
and a transactional producer (`workload.kafka.transactions`). Each record is
decoded in the job's `data` layout without needing a label
(`workload.data.unlabelled`: numeric features and categorical values, the
model's inputs by `InputLayout`); a good one is scored and answered with one
record on `serve.outputTopic`: the input's key and headers, and a JSON value

    {"prediction": {"class": 1, "probabilities": {"0": 0.28, "1": 0.72}},
     "modelVersion": "trained-3fa2c19b0d4e", "partition": 0, "offset": 41}

(the prediction's shape is the task's, `workload.modes.prediction`). A bad
record is answered with a dead letter when `data.deadLetterTopic` is set
(in the same transaction, so exactly once too) and counted by reason; it
never stops serving. Outputs of input partition `p` go to output partition
`p` modulo the output's partitions, so each partition's predictions keep
their order.

A transaction is committed, with the consumer group's offsets after the
records it answers, every `serve.batchSize` records or once its first
record may have waited `serve.maxLatencyMs`, whichever comes first (a
record that came in during the previous commit has waited since then:
`workload.kafka.arrivals`); between transactions is where a replica may
change models. A downstream `read_committed` consumer
therefore sees exactly one prediction per good input record, through kills,
broker restarts and rebalances. An abortable error aborts the transaction
and answers its records again; a fatal one (the producer was fenced) ends
the process with a failed report, to be restarted.

Stopping: SIGTERM (or `stop_event`) commits the open transaction and leaves
the group; `serve.streamTimeoutMs` (local runs) stops after that long
without a record.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from confluent_kafka import Message

from workload import progress as live
from workload.artifacts import Artifacts, write_json_atomic
from workload.data.decode import BAD_REASONS, sum_counts
from workload.data.unlabelled import features_decoder
from workload.kafka.admin import ensure_topic, topic_partitions, topic_with_partitions
from workload.kafka.connection import KafkaConnection
from workload.kafka.dead_letter import dead_letter_headers
from workload.kafka.transactions import (
    ExactlyOnceLink,
    TransactionAborted,
    TransactionFatal,
)
from workload.model.inputs import InputLayout
from workload.modes.serving_model import ModelSource, NoModelToServe, ServedModel
from workload.modes.signals import stop_on_sigterm
from workload.spec import FOREVER, ServeSpec, StreamingTrainingJobSpec
from workload.status import Metrics, PodReport

log = logging.getLogger(__name__)

READ_RECORDS = 8192
"""Records read, decoded and scored at a time (at most; fewer when a transaction is nearly
full)."""

POLL_S = 0.5
"""Seconds one read waits for records when no transaction is open (a stop is noticed within
this)."""

GATHER_S = 0.01
"""Seconds a read in an open transaction gathers records for after its first one, so that a
trickle is scored and answered a slice at a time rather than a record at a time (answers are not
visible before the commit anyway). One record at a time cost the replica 0.7 ms of CPU per record
at 1,000 records/s (70 % of a core); the transaction's first record is answered at once, which
registers its output partition with the transaction early."""

JOIN_ALLOWANCE_S = 60.0
"""Seconds the group join may take before idleness is counted (as in online mode)."""


def transactional_id(job: str, replica: str) -> str:
    """The `transactional.id` of a serving replica: the job (its uid in a cluster) and the
    replica, the same across restarts of the replica."""
    return f"streamtrain-serve-{job}-{replica}"


@dataclass
class Tally:
    """What a replica has answered: committed, and in its open transaction."""

    served: int = 0
    bad_by_reason: dict[str, int] = field(default_factory=dict)
    pending_served: int = 0
    pending_bad: dict[str, int] = field(default_factory=dict)
    first_read: float | None = None
    """`time.monotonic()` when the first record was read."""
    last_commit: float | None = None
    """`time.monotonic()` of the last commit that made records visible."""

    def settle(self, committed: bool) -> None:
        """The open transaction ended: its counts become final, or are dropped."""
        if committed:
            self.served += self.pending_served
            sum_counts(self.bad_by_reason, self.pending_bad)
            if self.pending_served or self.pending_bad:
                self.last_commit = time.monotonic()
        self.pending_served = 0
        self.pending_bad = {}

    @property
    def bad(self) -> int:
        """Bad records answered in committed transactions."""
        return sum(self.bad_by_reason.values())


class Server:
    """One serving replica: reads, scores, answers and commits."""

    def __init__(self, spec: StreamingTrainingJobSpec, connection: KafkaConnection,
                 models: ModelSource, txn_id: str, transactional: bool = True) -> None:
        assert spec.serve is not None
        self._serve: ServeSpec = spec.serve
        self._dead_letters = spec.data.dead_letter_topic
        self._decode = features_decoder(spec.data, self._serve.input_topic)
        self._layout = InputLayout.of(spec.data)
        self._models = models
        self.tally = Tally()
        inputs = len(topic_partitions(connection, self._serve.input_topic))
        self._outputs = topic_with_partitions(connection, self._serve.output_topic, inputs)
        if self._dead_letters is not None:
            ensure_topic(connection, self._dead_letters, 1)
        self._link = ExactlyOnceLink(connection, self._serve.input_topic,
                                     self._serve.consumer_group, txn_id,
                                     on_settled=self.tally.settle, transactional=transactional)

    @property
    def model(self) -> ServedModel:
        """The model served now."""
        return self._models.current

    def run(self, stop: threading.Event, show: Callable[[Tally], None]) -> None:
        """Serve until `stop` is set or the input is idle for `streamTimeoutMs`."""
        serve, link = self._serve, self._link
        latency_s = serve.max_latency_ms / 1000
        last_record = time.monotonic() + JOIN_ALLOWANCE_S
        joined = False
        try:
            while not stop.is_set():
                wait = POLL_S if link.waiting_since is None else max(
                    0.0, latency_s - (time.monotonic() - link.waiting_since))
                room = min(READ_RECORDS, max(1, serve.batch_size - link.pending))
                messages = link.poll(room, wait, 0.0 if link.waiting_since is None
                                     else min(GATHER_S, wait))
                now = time.monotonic()
                if not joined and link.rebalances:
                    joined, last_record = True, min(last_record, now)
                try:
                    if messages:
                        if self.tally.first_read is None:
                            self.tally.first_read = now
                        self._answer(messages)
                        last_record = now
                    if link.due(serve.batch_size, latency_s):
                        link.commit()
                        show(self.tally)
                    else:
                        link.serve()
                except TransactionAborted:
                    show(self.tally)
                if link.opened_at is None and self._models.refresh():  # between transactions
                    log.info("now serving model %s (%s)", self.model.version, self.model.runtime)
                    show(self.tally)
                if not messages and _idle(serve, last_record, now):
                    break
        finally:
            link.close()
            show(self.tally)

    def _answer(self, messages: list[Message]) -> None:
        """Score `messages` and queue their answers in the open transaction."""
        values = [message.value() or b"" for message in messages]
        decoded = self._decode([b""] * len(values), values)  # serving reads no label
        outputs = self.model.predict(self._layout.of_decoded(decoded))
        payloads = self.model.task.payloads(outputs)
        version, outputs_count = self.model.version, self._outputs
        good = decoded.good
        answered = [message for message, fine in zip(messages, good.tolist(), strict=True)
                    if fine]
        self._link.produce_all(self._serve.output_topic, (
            (f'{{"prediction":{payload},"modelVersion":"{version}","partition":{partition},'
             f'"offset":{message.offset()}}}'.encode(), message.key(), message.headers(),
             partition % outputs_count)
            for message, payload, partition in zip(
                answered, payloads, (message.partition() or 0 for message in answered),
                strict=True)))
        if self._dead_letters is not None and len(answered) < len(messages):
            self._link.produce_all(self._dead_letters, (
                (values[index], messages[index].key(), [
                    *(headers_of(messages[index]) or []),
                    *dead_letter_headers(BAD_REASONS[decoded.reasons[index] - 1],
                                         self._serve.input_topic, decoded.missing.get(index))],
                 -1)
                for index in np.flatnonzero(~good).tolist()))
        self._link.consumed(messages)
        self.tally.pending_served += len(answered)
        sum_counts(self.tally.pending_bad, decoded.counts())


def headers_of(message: Message) -> list[tuple[str, str | bytes | None]] | None:
    """A consumed record's headers, in order (`None`: it has none)."""
    headers = message.headers()
    if isinstance(headers, dict):  # confluent-kafka hands consumed headers over as a list
        return list(headers.items())
    return headers


def _idle(serve: ServeSpec, last_record: float, now: float) -> bool:
    return (serve.stream_timeout_ms != FOREVER
            and (now - last_record) * 1000 >= serve.stream_timeout_ms)


def run_serve(name: str, spec: StreamingTrainingJobSpec, connection: KafkaConnection,
              artifacts: Artifacts, *, progress: bool = True,
              stop_event: threading.Event | None = None, job_uid: str | None = None,
              replica: str = "0", transactional: bool = True) -> PodReport:
    """Serve `spec.serve.inputTopic` until stopped (or idle for `streamTimeoutMs`).

    `replica` names this replica among the job's serving replicas (its `transactional.id`
    is made of it and the job's uid, or its name for a local run). `transactional` False is
    the benchmark's at-least-once baseline (`ExactlyOnceLink`).
    """
    if spec.serve is None:
        return PodReport(mode="serve", ok=False, message="spec.serve is not set")
    stop = stop_event or threading.Event()
    started = time.monotonic()
    with stop_on_sigterm(stop):
        try:
            models = ModelSource(artifacts, InputLayout.of(spec.data))
        except NoModelToServe as missing:
            return PodReport(mode="serve", ok=False, message=str(missing))
        txn_id = transactional_id(job_uid or name, replica)
        server: Server | None = None
        try:
            server = Server(spec, connection, models, txn_id, transactional)
            with _status(progress, lambda: server.model if server else None) as show:
                server.run(stop, show)
        except TransactionFatal as fatal:
            served = server.tally.served if server is not None else 0
            return PodReport(mode="serve", ok=False, message=f"serving stopped: {fatal}",
                             metrics=Metrics(records_served=served))
    return _report(name, spec, artifacts, server.tally, server.model, replica,
                   time.monotonic() - started)


def _report(name: str, spec: StreamingTrainingJobSpec, artifacts: Artifacts, tally: Tally,
            model: ServedModel, replica: str, elapsed: float) -> PodReport:
    """The replica's report (and, for replica 0, the results file)."""
    assert spec.serve is not None
    total = tally.served + tally.bad
    rate = total / elapsed if elapsed > 0 and total else None
    metrics = Metrics(records_served=tally.served, bad_records=tally.bad,
                      bad_records_by_reason=dict(sorted(tally.bad_by_reason.items())))
    if replica == "0":
        write_json_atomic(artifacts.results("serve"), {
            "job": name, "mode": "serve", "ok": True, "inputTopic": spec.serve.input_topic,
            "outputTopic": spec.serve.output_topic, "consumerGroup": spec.serve.consumer_group,
            "modelVersion": model.version, "model": str(model.path), "runtime": model.runtime,
            "recordsThisRun": total, "seconds": elapsed, "recordsPerSecond": rate,
            "servingSeconds": (tally.last_commit - tally.first_read
                               if tally.first_read is not None and tally.last_commit is not None
                               else None),
            "metrics": metrics.model_dump(mode="json", by_alias=True, exclude_none=True),
        })
    return PodReport(mode="serve", ok=True, metrics=metrics, model_uri=artifacts.uri(model.path),
                     records_per_second=rate)


@contextlib.contextmanager
def _status(enabled: bool, model: Callable[[], ServedModel | None]
            ) -> Iterator[Callable[[Tally], None]]:
    """A one-line live status (records served) when enabled; the live progress channel gets the
    same figure and the version served and its runtime (`model()`)."""
    def report(tally: Tally) -> None:
        served = model()
        live.report(records=tally.served, model_version=served.version if served else None,
                    runtime=served.runtime if served else None)

    if not enabled:
        yield report
        return
    from rich.progress import Progress, TextColumn

    with Progress(TextColumn("{task.description}"), transient=True) as bar:
        task = bar.add_task("serve: waiting for records")

        def show(tally: Tally) -> None:
            report(tally)
            bar.update(task, description=f"serve: {tally.served} predictions, "
                                         f"{tally.bad} bad records")

        yield show

